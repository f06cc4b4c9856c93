"""Input limits of the codec (JsonLimits): nesting depth, element count, string size.

Each breach is INVALID_ARGUMENT (HTTP 400) with a message naming the limit, the actual
value and the setting that raises it. Within the limits, TF Serving's behaviour and
messages are unchanged (tests/test_codec.py).
"""

from __future__ import annotations

import base64
from typing import Any

import orjson
import pytest

from clients.types import Code, DType, ServingError, TensorSpec
from gateway.codec import JsonLimits, decode_examples, decode_predict, parse_body
from gateway.codec.limits import nesting_depth
from gateway.settings import Settings

F, S = DType.DT_FLOAT, DType.DT_STRING


def sig(**dtypes: DType) -> dict[str, TensorSpec]:
    return {name: TensorSpec(f"{name}:0", dtype, None) for name, dtype in dtypes.items()}


def error_of(call: Any, *args: Any) -> str:
    with pytest.raises(ServingError) as caught:
        call(*args)
    assert caught.value.code is Code.INVALID_ARGUMENT
    return caught.value.message


def nested(depth: int) -> bytes:
    """A body whose JSON nests `depth` levels: the object plus depth - 1 lists."""
    return b'{"inputs": ' + b"[" * (depth - 1) + b"1" + b"]" * (depth - 1) + b"}"


# ------------------------------------------------------------------ settings


def test_defaults_equal_the_settings_defaults() -> None:
    settings = Settings()
    assert JsonLimits() == JsonLimits.from_settings(settings)
    assert JsonLimits() == JsonLimits(64, 16 * 2**20, 16 * 2**20)


def test_from_settings_reads_the_three_settings() -> None:
    settings = Settings(max_json_depth=3, max_tensor_elements=4, max_string_bytes=5)
    assert JsonLimits.from_settings(settings) == JsonLimits(3, 4, 5)


# ------------------------------------------------------------------ nesting depth


def test_depth_at_the_limit_is_accepted_and_one_more_is_refused() -> None:
    assert parse_body(nested(64))
    assert error_of(parse_body, nested(65)) == (
        "Request nests JSON 65 levels deep; the gateway allows 64 (max_json_depth)"
    )


def test_tf_servings_half_a_million_levels_get_a_400() -> None:
    depth = 500_000
    body = b'{"unused": ' + b"[" * depth + b"]" * depth + b', "inputs": [1]}'
    assert error_of(parse_body, body) == (
        "Request nests JSON 500001 levels deep; the gateway allows 64 (max_json_depth)"
    )


def test_depth_is_checked_before_parsing_on_the_exact_reader_path_too() -> None:
    deep_with_nan = b'{"a": ' + b"[" * 70 + b"NaN" + b"]" * 70 + b"}"
    assert "71 levels deep" in error_of(parse_body, deep_with_nan)
    unterminated = b'{"a": ' + b"[" * 70
    assert "71 levels deep" in error_of(parse_body, unterminated)
    shallow_but_invalid = b'{"a": [1,]}'
    assert error_of(parse_body, shallow_but_invalid) == (
        "JSON Parse error: Invalid value. at offset: 9"
    )


def test_the_limit_comes_from_the_limits_argument() -> None:
    limits = JsonLimits(max_depth=2)
    assert parse_body(b'{"a": [1]}', limits)
    assert error_of(parse_body, b'{"a": [[1]]}', limits) == (
        "Request nests JSON 3 levels deep; the gateway allows 2 (max_json_depth)"
    )


@pytest.mark.parametrize(
    ("body", "depth"),
    [
        (b"{}", 1),
        (b"\xef\xbb\xbf  {}", 1),
        (b'{"a": [[1], {"b": [2]}]}', 4),
        (b'{"a": "[[[[[[{{{{"}', 1),  # brackets inside strings do not count
        (b'{"a": "\\"[[[[", "b": [1]}', 2),  # nor after an escaped quote
        (b'{"a": "\\\\", "b": [[1]]}', 3),  # an escaped backslash ends no string
        (b'{"a": 1} [[[[[[[[[[', 1),  # bytes after the first value are ignored
        (b'{"a": [1]}\x00[[[[[[[[', 2),  # and bytes after a NUL
        (b"5 [[[[[[[[", 0),
        (b"", 0),
    ],
)
def test_nesting_depth(body: bytes, depth: int) -> None:
    assert nesting_depth(body) == depth


# ------------------------------------------------------------------ element count


def test_columnar_tensor_over_the_limit() -> None:
    limits = JsonLimits(max_elements=5)
    assert decode_predict(parse_body(b'{"inputs": [[1, 2], [4, 5]]}'), sig(x=F), limits)
    doc = parse_body(b'{"inputs": [[1, 2, 3], [4, 5, 6]]}')
    assert error_of(decode_predict, doc, sig(x=F), limits) == (
        "Request has 6 tensor elements; the gateway allows 5 (max_tensor_elements)"
    )


def test_elements_are_counted_across_all_inputs() -> None:
    limits = JsonLimits(max_elements=5)
    ok = parse_body(b'{"inputs": {"a": [1, 2], "b": [1, 2, 3]}}')
    tensors, _ = decode_predict(ok, sig(a=F, b=F), limits)
    assert tensors["b"].tolist() == [1, 2, 3]
    over = parse_body(b'{"inputs": {"a": [1, 2, 3], "b": [1, 2, 3]}}')
    assert "has 6 tensor elements" in error_of(decode_predict, over, sig(a=F, b=F), limits)
    first_alone_too_big = parse_body(b'{"inputs": {"a": [1, 2, 3, 4, 5, 6], "b": [1, 2]}}')
    message = error_of(decode_predict, first_alone_too_big, sig(a=F, b=F), limits)
    assert "has 8 tensor elements" in message  # the inputs not converted yet are counted


def test_row_format_counts_every_row() -> None:
    limits = JsonLimits(max_elements=5)
    rows = {"instances": [[1.0, 2.0]] * 3}
    message = error_of(decode_predict, rows, sig(x=F), limits)
    assert message == "Request has 6 tensor elements; the gateway allows 5 (max_tensor_elements)"
    objects = {"instances": [{"a": 1.0, "b": [1.0, 2.0]}] * 2}
    assert "has 6 tensor elements" in error_of(decode_predict, objects, sig(a=F, b=F), limits)


def test_row_by_row_path_counts_too() -> None:
    limits = JsonLimits(max_elements=2)
    b64 = {"b64": base64.b64encode(b"x").decode()}
    rows = {"instances": [b64, "plain", b64]}  # mixed kinds: decoded row by row
    assert error_of(decode_predict, rows, sig(x=S), limits) == (
        "Request has 3 tensor elements; the gateway allows 2 (max_tensor_elements)"
    )


def test_examples_count_feature_values_with_the_context() -> None:
    limits = JsonLimits(max_elements=4)
    assert decode_examples({"examples": [{"a": [1, 2]}, {"a": 3}], "context": {"c": 1}}, limits)
    doc = {"examples": [{"a": [1, 2]}, {"a": 3, "b": [1.5]}], "context": {"c": 1}}
    assert error_of(decode_examples, doc, limits) == (
        "Request has 5 feature values; the gateway allows 4 (max_tensor_elements)"
    )


def test_within_the_limit_tf_serving_errors_are_unchanged() -> None:
    limits = JsonLimits(max_elements=3)
    doc = parse_body(b'{"inputs": [[1, 2], [3]]}')
    assert error_of(decode_predict, doc, sig(x=F), limits) == (
        "Encountered list at unexpected size: 1 at level: 1 expected size: 2"
    )


# ------------------------------------------------------------------ string size


@pytest.mark.parametrize(
    "body",
    [
        b'{"inputs": ["0123456789", "01234567890"]}',  # fast path
        b'{"inputs": ["0123456789", {"b64": "AAAA"}, "01234567890"]}',  # exact path
        b'{"instances": [["0123456789"], ["01234567890"]]}',
    ],
)
def test_a_string_longer_than_the_limit(body: bytes) -> None:
    limits = JsonLimits(max_string_bytes=10)
    message = error_of(decode_predict, parse_body(body), sig(x=S), limits)
    assert message.endswith(
        "Request has a string of 11 bytes; the gateway allows 10 (max_string_bytes)"
    )


def test_string_size_is_in_utf8_bytes() -> None:
    limits = JsonLimits(max_string_bytes=10)
    doc = parse_body(orjson.dumps({"inputs": ["é" * 5, "é" * 6]}))
    assert "a string of 12 bytes" in error_of(decode_predict, doc, sig(x=S), limits)


def test_base64_text_is_limited_before_decoding() -> None:
    limits = JsonLimits(max_string_bytes=10)
    short = {"inputs": [{"b64": base64.b64encode(b"123456").decode()}]}  # 8 characters
    tensors, _ = decode_predict(short, sig(x=S), limits)
    assert tensors["x"].tolist() == [b"123456"]
    long = {"inputs": [{"b64": base64.b64encode(b"1234567").decode()}]}  # 12 characters
    assert error_of(decode_predict, long, sig(x=S), limits) == (
        "Request has a base64 string of 12 bytes; the gateway allows 10 (max_string_bytes)"
    )


def test_example_strings_are_limited() -> None:
    limits = JsonLimits(max_string_bytes=3)
    assert decode_examples({"examples": [{"a": "abc"}]}, limits)
    assert "a string of 4 bytes" in error_of(decode_examples, {"examples": [{"a": "abcd"}]}, limits)
    b64 = {"examples": [{"a": {"b64": base64.b64encode(b"abcd").decode()}}]}
    assert "a base64 string of 8 bytes" in error_of(decode_examples, b64, limits)
