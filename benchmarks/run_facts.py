"""What every benchmark report records about the run: when, on what, under which load, with which Python and
torch (so results from different sessions are compared knowing the conditions)."""

from __future__ import annotations

import os
import platform
import time
from typing import Any


def run_facts(load_before: float) -> dict[str, Any]:
    import torch

    return {
        "when": time.strftime("%Y-%m-%d %H:%M UTC", time.gmtime()),
        "machine": f"{platform.machine()}, {os.cpu_count()} CPUs shared with other work",
        "load_average_before": load_before,
        "load_average_after": os.getloadavg()[0],
        "python": platform.python_version(),
        "torch": torch.__version__,
    }
