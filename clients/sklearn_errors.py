"""The one place where foreign exceptions of the scikit-learn backend become `ServingError`.

scikit-learn, numpy, skops, joblib and the OS raise their own exception types, with
messages that may hold file system paths. `to_serving_error` maps them to a canonical
code and a message that is safe to show to a caller.
"""

from __future__ import annotations

import re
from typing import Literal

from sklearn.exceptions import NotFittedError

from clients.types import Code, ServingError

Phase = Literal["load", "request"]

# A file system path: starts at the beginning or after a space, quote or bracket (so never
# inside a URL or "a/b"), with a leading "/", "\", "~/" or a drive letter, and runs to the
# next space, quote or bracket.
_PATH = re.compile(r"""(?<![\w./\\:-])(?:[A-Za-z]:[\\/]|~?[\\/])[^\s'"()\[\]<>,;]*""")


def scrub_message(text: str) -> str:
    """`text` on one line, with every file system path replaced by "<path>"."""
    return " ".join(_PATH.sub("<path>", text).split())


def to_serving_error(exc: BaseException, phase: Phase) -> ServingError:
    """Translate any exception raised while loading or running a model into a `ServingError`.

    While loading, a missing file is NOT_FOUND and anything else unreadable is DATA_LOSS.
    While serving a request, an unfitted estimator is FAILED_PRECONDITION, ValueError and
    TypeError (what estimators raise for bad input, NaN included) are INVALID_ARGUMENT and
    anything else is INTERNAL.
    """
    if isinstance(exc, ServingError):
        return exc
    message = scrub_message(str(exc)) or type(exc).__name__
    code = _code_for(exc, phase)
    if code in (Code.INTERNAL, Code.DATA_LOSS):
        message = f"{type(exc).__name__}: {message}"
    return ServingError(code, message)


def _code_for(exc: BaseException, phase: Phase) -> Code:
    if isinstance(exc, MemoryError):
        return Code.RESOURCE_EXHAUSTED
    if phase == "load":
        return Code.NOT_FOUND if isinstance(exc, FileNotFoundError) else Code.DATA_LOSS
    if isinstance(exc, NotFittedError):
        return Code.FAILED_PRECONDITION
    if isinstance(exc, ValueError | TypeError):
        return Code.INVALID_ARGUMENT
    return Code.INTERNAL
