"""A whole predict body decoded in one call, for a worker process (`gateway.offload`).

A big body is parsed once, away from the event loop, so the signature it names cannot be
looked up in between: the caller passes the inputs of every signature of the addressed
version and gets back the name the body used with its tensors, decoded against that
signature. Errors come in TF Serving's order: the body's JSON, then (on the caller's
side, from the name) the signature, then the tensors.
"""

from __future__ import annotations

from collections.abc import Mapping
from dataclasses import dataclass

from clients.types import DEFAULT_SIGNATURE, TensorSpec
from gateway.codec.decode_body import decode_predict_document, parse_predict
from gateway.codec.decode_predict import RequestFormat, Tensors
from gateway.codec.limits import JsonLimits


@dataclass(frozen=True)
class WholePredict:
    """The signature name a body used and, when that signature exists, its tensors."""

    signature_name: str
    tensors: Tensors | None
    request_format: RequestFormat | None


def decode_predict_whole(
    body: bytes,
    signature_inputs: Mapping[str, Mapping[str, TensorSpec]],
    limits: JsonLimits,
) -> WholePredict:
    """Parse `body` and decode it against the signature it names, among `signature_inputs`
    (signature name -> its inputs); no tensors when it names none of them."""
    document = parse_predict(body, limits)
    name = document.signature_name
    inputs = signature_inputs.get(name or DEFAULT_SIGNATURE)
    if inputs is None:
        return WholePredict(name, None, None)
    tensors, request_format = decode_predict_document(document, inputs, limits)
    return WholePredict(name, tensors, request_format)


def check_body(body: bytes, limits: JsonLimits) -> None:
    """Raise the body's JSON error, if it has one (its model could not be looked up)."""
    parse_predict(body, limits)
