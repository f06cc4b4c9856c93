"""TF Serving's REST URL grammar, matched on the raw (still percent-encoded) path.

POST /v1/models/<name>[/versions/<n> | /labels/<label>]:(predict|classify|regress)
GET  /v1/models[/<name>][/versions/<n> | /labels/<label>][/metadata]

`GET /v1/models` alone lists the models (KServe V1's "list models"; TF Serving answers
400 "Missing model name in request." there).

Patterns ignore case but the verb must be lower case; the path includes the query
string, as in TF Serving (see TFSERVING-REST-SPEC.md, R1-R7).
"""

from __future__ import annotations

import functools
import re
from dataclasses import dataclass
from typing import Literal

from clients.types import Code, ServingError, invalid_argument

RouteKind = Literal["predict", "classify", "regress", "status", "metadata", "list"]

_POST = re.compile(
    r"/v1/models/([^/:]+)(?:/versions/([0-9]+)|/labels/([^/:]+))?:(classify|regress|predict)",
    re.IGNORECASE,
)
_GET = re.compile(
    r"/v1/models(?:/([^/:]+))?(?:/versions/([0-9]+)|/labels/([^/:]+))?(?:/(metadata))?",
    re.IGNORECASE,
)
_BAD_ESCAPE = re.compile(r"%(?![0-9A-Fa-f]{2})")
_ESCAPE = re.compile(r"(?:%[0-9A-Fa-f]{2})+")
_INT64_MAX = 2**63 - 1


@dataclass(frozen=True)
class V1Route:
    """What a /v1/ URL asks for."""

    kind: RouteKind
    name: str | None
    version: int | None = None
    label: str | None = None


_CACHED_PATH_LENGTH = 256  # longer paths are parsed every time, so the cache stays small


def parse_v1_path(method: str, path: str) -> V1Route:
    """Match `path` (raw path plus `?query`) for `method`, or raise TF Serving's 400."""
    if len(path) <= _CACHED_PATH_LENGTH:
        return _parse_cached(method, path)
    return _parse(method, path)


@functools.lru_cache(maxsize=1024)  # a handful of paths carry all the traffic
def _parse_cached(method: str, path: str) -> V1Route:
    return _parse(method, path)


def _parse(method: str, path: str) -> V1Route:
    if method == "POST":
        match = _POST.fullmatch(path)
        verb = match.group(4) if match else None
        if match and verb in ("predict", "classify", "regress"):
            return _route(verb, match)  # type: ignore[arg-type]
    elif method == "GET":
        match = _GET.fullmatch(path)
        if match:
            if match.group(1) is None:
                if match.lastindex is None:  # nothing after /v1/models
                    return V1Route(kind="list", name=None)
                raise invalid_argument("Missing model name in request.")
            return _route("metadata" if match.group(4) == "metadata" else "status", match)
    raise invalid_argument(f"Malformed request: {method} {path}")


def _route(kind: RouteKind, match: re.Match[str]) -> V1Route:
    raw_name, raw_version, raw_label = match.group(1), match.group(2), match.group(3)
    return V1Route(
        kind=kind,
        name=_decode(raw_name, "model name"),
        version=None if raw_version is None else _version(raw_version),
        label=None if raw_label is None else _decode(raw_label, "label"),
    )


def _version(digits: str) -> int:
    version = int(digits)
    if version > _INT64_MAX:
        raise invalid_argument(f"Failed to convert version: {digits} to numeric.")
    return version


def _decode(text: str, what: str) -> str:
    """Percent-decode `%XX` sequences only (a '+' stays a plus), as UTF-8."""
    if _BAD_ESCAPE.search(text):
        raise invalid_argument(f"Failed to decode {what}: {text}")
    try:
        return _ESCAPE.sub(lambda m: bytes.fromhex(m.group(0).replace("%", "")).decode(), text)
    except UnicodeDecodeError:
        raise ServingError(Code.INVALID_ARGUMENT, f"Failed to decode {what}: {text}") from None
