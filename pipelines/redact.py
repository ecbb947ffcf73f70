"""Credentials out of what is displayed: URLs in Dagster metadata, log lines, failure messages and pod specs.

A URL such as MLFLOW_TRACKING_URI=https://user:token@mlflow.example.com works (MLflow sends the userinfo
as Basic auth) but must never be shown or written into a Kubernetes object. `redact_url` drops the
`user:password@` part of every URL in a text and masks the values of secret-looking query parameters
(`?token=`, `X-Amz-Signature=`...); `split_userinfo` separates one URL from its credentials, so they can
travel as MLFLOW_TRACKING_USERNAME / MLFLOW_TRACKING_PASSWORD (which MLflow reads) from a Secret.
"""

from __future__ import annotations

import re
from urllib.parse import unquote

MASK = "***"
# scheme://userinfo@ ; greedy up to the last "@" before the path, like URL parsers (a password may hold "@").
_USERINFO = re.compile(r"(?P<scheme>\b[A-Za-z][A-Za-z0-9+.-]*://)(?P<userinfo>[^/?#\s@]*(?:@[^/?#\s@]*)*)@")
# ?name=value or &name=value where the name says it is a secret (password, token, signature, key...).
_SECRET_PARAM = re.compile(
    r"(?P<name>[?&;][A-Za-z0-9_.-]*(?:pass(?:word|wd)?|pwd|secret|token|signature|sig|credential|key)[A-Za-z0-9_.-]*=)"
    r"(?P<value>[^&#\s]*)",
    re.IGNORECASE,
)


def redact_url(text: str) -> str:
    """`text` with the userinfo of every URL removed and secret query values replaced by ***."""
    text = _USERINFO.sub(lambda m: m.group("scheme"), text)
    return _SECRET_PARAM.sub(lambda m: m.group("name") + (MASK if m.group("value") else ""), text)


def split_userinfo(url: str) -> tuple[str, str | None, str | None]:
    """(url without userinfo, user, password): user and password percent-decoded, None when absent."""
    m = _USERINFO.match(url)
    if not m:
        return url, None, None
    user, sep, password = m.group("userinfo").partition(":")
    clean = url[: m.start()] + m.group("scheme") + url[m.end() :]
    return clean, unquote(user) or None, unquote(password) if sep else None
