"""TF Serving's REST JSON <-> numpy codec: the package's public entry point.

Pure functions only: no I/O, no grpc, no TensorFlow. Every failure is a `ServingError`
carrying TF Serving's status code and message (see shared/docs/TFSERVING-REST-SPEC.md,
sections 2-5). The work is split by concern:

- `limits`: `JsonLimits` (nesting depth, element count, string size);
- `reader`: body parsing (orjson, with an exact rapidjson-compatible fallback);
- `values`: JSON value helpers, b64, the request JSON quoted in errors;
- `decode_fast` / `decode_tensor` / `decode_predict`: predict request -> tensors;
- `decode_body`: the lazy entry points for a predict body, `parse_predict` (signature name
  first) then `decode_predict_document`: big numeric tensors go from the bytes to buffers
  (pysimdjson) when that provably equals the exact path above, which handles the rest;
- `encode_numbers` / `encode_text` / `encode_predict`: tensors -> JSON;
- `encode_model`: model status and metadata -> JSON;
- `examples`: classify / regress, both directions.
"""

from __future__ import annotations

from gateway.codec.decode_body import PredictDocument, decode_predict_document, parse_predict
from gateway.codec.decode_predict import RequestFormat, decode_predict
from gateway.codec.encode_numbers import format_float
from gateway.codec.encode_predict import encode_error, encode_predict
from gateway.codec.examples import decode_examples, encode_classify, encode_regress
from gateway.codec.limits import JsonLimits
from gateway.codec.reader import parse_body
from gateway.codec.values import signature_name_of

__all__ = [
    "JsonLimits",
    "PredictDocument",
    "RequestFormat",
    "decode_examples",
    "decode_predict",
    "decode_predict_document",
    "encode_classify",
    "encode_error",
    "encode_predict",
    "encode_regress",
    "format_float",
    "parse_body",
    "parse_predict",
    "signature_name_of",
]
