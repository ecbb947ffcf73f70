"""Spark needs Java 17 or newer; say so plainly before anything starts."""

from __future__ import annotations

import os
import re
import shutil
import subprocess

from pipelines.errors import StackError

MIN_JAVA = 17


def java_binary() -> str | None:
    home = os.environ.get("JAVA_HOME")
    if home and os.path.exists(os.path.join(home, "bin", "java")):
        return os.path.join(home, "bin", "java")
    return shutil.which("java")


def check_java(minimum: int = MIN_JAVA) -> int:
    """Return the Java major version, or raise one clear sentence saying what to install."""
    binary = java_binary()
    if binary is None:
        raise StackError(
            f"Java {minimum} or newer is required by Spark but no `java` was found on PATH or in JAVA_HOME; "
            f"install a JDK (for example `apt-get install openjdk-{minimum}-jre-headless`) and retry"
        )
    try:
        out = subprocess.run([binary, "-version"], capture_output=True, text=True, timeout=20)
    except (OSError, subprocess.TimeoutExpired) as exc:
        raise StackError(f"could not run `{binary} -version` ({exc}); check your Java installation") from None
    match = re.search(r'version "(\d+)(?:\.(\d+))?', out.stderr + out.stdout)
    if not match:
        raise StackError(f"could not read the Java version from `{binary} -version`; install Java {minimum}+")
    major = int(match.group(1))
    if major == 1 and match.group(2):  # "1.8" style
        major = int(match.group(2))
    if major < minimum:
        raise StackError(
            f"Java {major} found at {binary}, but Spark needs Java {minimum} or newer; "
            f"install openjdk-{minimum} and point JAVA_HOME at it"
        )
    return major
