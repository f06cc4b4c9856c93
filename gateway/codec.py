"""TF Serving's REST JSON <-> numpy codec: the public entry point.

Pure functions only: no I/O, no grpc, no TensorFlow. Every failure is a `ServingError`
carrying TF Serving's status code and message (see shared/docs/TFSERVING-REST-SPEC.md,
sections 2-5). The work is split by concern:

- `gateway.json_limits`: `JsonLimits` (nesting depth, element count, string size);
- `gateway.json_reader`: body parsing (orjson, with an exact rapidjson-compatible fallback);
- `gateway.json_values`: JSON value helpers, b64, the request JSON quoted in errors;
- `gateway.json_tensor` / `gateway.predict_request`: predict request -> tensors;
- `gateway.json_numbers` / `gateway.tensor_text` / `gateway.predict_response`: tensors -> JSON;
- `gateway.examples_json`: classify / regress.
"""

from __future__ import annotations

from gateway.examples_json import decode_examples, encode_classify, encode_regress
from gateway.json_limits import JsonLimits
from gateway.json_numbers import format_float
from gateway.json_reader import parse_body
from gateway.json_values import signature_name_of
from gateway.predict_request import RequestFormat, decode_predict
from gateway.predict_response import encode_error, encode_predict

__all__ = [
    "JsonLimits",
    "RequestFormat",
    "decode_examples",
    "decode_predict",
    "encode_classify",
    "encode_error",
    "encode_predict",
    "encode_regress",
    "format_float",
    "parse_body",
    "signature_name_of",
]
