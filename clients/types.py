"""Protocol-neutral types shared by every layer: errors, dtypes, signatures, statuses.

This module is the bottom of the dependency graph (routers -> gateway -> clients).
It imports only the standard library and numpy, never grpc, protobuf or TensorFlow,
so any layer may use it without paying for those imports.
"""

from __future__ import annotations

import enum
from collections.abc import Mapping, Sequence
from dataclasses import dataclass, field
from typing import Literal


class Code(enum.IntEnum):
    """Canonical status codes, numbered as in gRPC and absl::StatusCode."""

    OK = 0
    CANCELLED = 1
    UNKNOWN = 2
    INVALID_ARGUMENT = 3
    DEADLINE_EXCEEDED = 4
    NOT_FOUND = 5
    ALREADY_EXISTS = 6
    PERMISSION_DENIED = 7
    RESOURCE_EXHAUSTED = 8
    FAILED_PRECONDITION = 9
    ABORTED = 10
    OUT_OF_RANGE = 11
    UNIMPLEMENTED = 12
    INTERNAL = 13
    UNAVAILABLE = 14
    DATA_LOSS = 15
    UNAUTHENTICATED = 16


class ServingError(Exception):
    """A failure with a canonical code and a message meant for the caller.

    Every foreign exception (grpc.RpcError, scikit-learn errors, TensorFlow errors)
    is translated into this type at one place in its client, so the layers above
    deal with a single error type.
    """

    def __init__(self, code: Code, message: str) -> None:
        super().__init__(message)
        self.code = code
        self.message = message

    def __reduce__(self) -> tuple[type[ServingError], tuple[Code, str]]:
        """Pickle as (code, message): the error crosses from codec worker processes."""
        return (type(self), (self.code, self.message))

    def __repr__(self) -> str:
        return f"ServingError({self.code.name}, {self.message!r})"


def invalid_argument(message: str) -> ServingError:
    """Shorthand for the most common error: the caller sent something wrong."""
    return ServingError(Code.INVALID_ARGUMENT, message)


class DType(enum.IntEnum):
    """TensorFlow's DataType enum (tensorflow/core/framework/types.proto), same numbers."""

    DT_INVALID = 0
    DT_FLOAT = 1
    DT_DOUBLE = 2
    DT_INT32 = 3
    DT_UINT8 = 4
    DT_INT16 = 5
    DT_INT8 = 6
    DT_STRING = 7
    DT_COMPLEX64 = 8
    DT_INT64 = 9
    DT_BOOL = 10
    DT_QINT8 = 11
    DT_QUINT8 = 12
    DT_QINT32 = 13
    DT_BFLOAT16 = 14
    DT_QINT16 = 15
    DT_QUINT16 = 16
    DT_UINT16 = 17
    DT_COMPLEX128 = 18
    DT_HALF = 19
    DT_RESOURCE = 20
    DT_VARIANT = 21
    DT_UINT32 = 22
    DT_UINT64 = 23


@dataclass(frozen=True)
class TensorSpec:
    """One input or output of a signature, as in TF Serving's TensorInfo.

    `shape` is None for an unknown rank; a dimension of -1 is unknown.
    `name` is the tensor's name inside the model (e.g. "x:0"), shown in metadata.
    """

    name: str
    dtype: DType
    shape: tuple[int, ...] | None


@dataclass(frozen=True)
class Signature:
    """A SignatureDef: named inputs and outputs (alias -> spec) and its method name."""

    inputs: Mapping[str, TensorSpec]
    outputs: Mapping[str, TensorSpec]
    method_name: str
    # SignatureDef.defaults is a map of TensorProto; we only ever need to show it,
    # so backends pass it through already rendered as JSON-ready values.
    defaults: Mapping[str, object] = field(default_factory=dict)


PREDICT_METHOD = "tensorflow/serving/predict"
CLASSIFY_METHOD = "tensorflow/serving/classify"
REGRESS_METHOD = "tensorflow/serving/regress"
DEFAULT_SIGNATURE = "serving_default"


@dataclass(frozen=True)
class ModelSpec:
    """Which model a request is for: a name and at most one of version and label."""

    name: str
    version: int | None = None
    label: str | None = None
    signature_name: str = ""

    def addressed(self) -> str:
        """The version as addressed, for labels: "3", "label:stable" or "latest"."""
        if self.version is not None:
            return str(self.version)
        return "latest" if self.label is None else f"label:{self.label}"

    def describe(self) -> str:
        """TF Serving's wording for a servable request, e.g. "Latest(iris)"."""
        if self.version is not None:
            return f"Specific({self.name}, {self.version})"
        if self.label is not None:
            return f"Label({self.name}, {self.label})"
        return f"Latest({self.name})"


@dataclass(frozen=True)
class ModelMetadata:
    """A resolved model version and its signatures.

    `extra` holds backend-specific metadata shown beside `signature_def`
    (for scikit-learn: estimator class, versions it was saved with, mismatches).
    """

    name: str
    version: int
    signatures: Mapping[str, Signature]
    extra: Mapping[str, object] = field(default_factory=dict)


def shape_fits(actual: tuple[int, ...], declared: tuple[int, ...]) -> bool:
    """Whether a tensor of shape `actual` fits a declared shape (-1: any size)."""
    return len(actual) == len(declared) and all(
        want in (-1, got) for got, want in zip(actual, declared, strict=True)
    )


class ModelState(enum.IntEnum):
    """ModelVersionStatus.State from TF Serving's get_model_status.proto."""

    UNKNOWN = 0
    START = 10
    LOADING = 20
    AVAILABLE = 30
    UNLOADING = 40
    END = 50


@dataclass(frozen=True)
class VersionStatus:
    """The state of one model version, with the error that ended it if any."""

    version: int
    state: ModelState
    error_code: Code = Code.OK
    error_message: str = ""


FeatureKind = Literal["bytes", "float", "int64"]


@dataclass(frozen=True)
class Feature:
    """One tf.train.Feature: a kind and its flat list of values.

    `kind` is None for an empty list (a feature with no kind, as TF Serving allows).
    """

    kind: FeatureKind | None
    values: tuple[bytes, ...] | tuple[float, ...] | tuple[int, ...]


Example = Mapping[str, Feature]


@dataclass(frozen=True)
class ExampleBatch:
    """The `examples` (and optional `context`) of a classify or regress request."""

    examples: tuple[Example, ...]
    context: Example | None = None


@dataclass(frozen=True)
class Classification:
    """One example's classification: (label, score) pairs. Label is "" without classes."""

    classes: tuple[tuple[str, float], ...]


@dataclass(frozen=True)
class VersionPolicy:
    """Which versions under a base path to serve, as TF Serving's ServableVersionPolicy.

    kind "latest" serves the `num_versions` highest versions (TF Serving's default: 1),
    "all" serves every version, "specific" serves exactly `versions`.
    """

    kind: Literal["latest", "all", "specific"] = "latest"
    num_versions: int = 1
    versions: tuple[int, ...] = ()


@dataclass(frozen=True)
class ModelSource:
    """Where a model's versions live on disk (`base_path/<version>/`) and how they are addressed."""

    name: str
    base_path: str
    version_policy: VersionPolicy = field(default_factory=VersionPolicy)
    version_labels: Mapping[str, int] = field(default_factory=dict)
    allow_pickle: bool = False  # sklearn: may joblib/pickle artifacts load?
    sha256: Mapping[int, str] = field(default_factory=dict)  # sklearn: version -> pinned digest


def why_unavailable(statuses: Sequence[VersionStatus]) -> str | None:
    """None when one of `statuses` is AVAILABLE, else why the model cannot serve."""
    if any(status.state == ModelState.AVAILABLE for status in statuses):
        return None
    failures = sorted(
        {
            f"version {status.version}: {status.error_message}"
            for status in statuses
            if status.error_code != Code.OK
        }
    )
    if failures:
        return "no AVAILABLE version; " + "; ".join(failures)
    states = ", ".join(
        sorted({f"version {status.version} {status.state.name}" for status in statuses})
    )
    return f"no AVAILABLE version ({states or 'no versions found'})"
