"""The python-rapidjson-backed reader (gateway/codec/reader.py) against TF Serving's messages.

- Each class of malformed body gets TF Serving's "JSON Parse error: <rapidjson reason> at
  offset: <n>" (or parses, where TF Serving's rapidjson call accepts it).
- The shims the module docstring lists (trailing data, NUL, BOM, invalid UTF-8, duplicate
  keys, long numbers, deep nesting) give what the hand-written reader gave.
- Property: any byte string parses to the same value as the hand-written reader it replaced
  gave, or raises a ServingError with the same message; never another exception. The old
  reader is read from git history (`HAND_WRITTEN_READER`), not kept in the tree; without
  git history that comparison is skipped and only "ServingError or a value" is checked.
"""

from __future__ import annotations

import math
import subprocess
import sys
import threading
import types
from pathlib import Path
from typing import Any

import pytest
from hypothesis import given, settings
from hypothesis import strategies as st

from clients.types import ServingError
from gateway.codec import JsonLimits, parse_body
from gateway.codec.values import json_value_to_string

HAND_WRITTEN_READER = "cd8a89e^:gateway/codec/reader.py"  # the last commit that had it
UNLIMITED = JsonLimits(max_depth=10**7)
EMPTY = "JSON Parse error: The document is empty"
TOO_BIG = "Number too big to be stored in double."


def error_of(body: bytes, limits: JsonLimits = UNLIMITED) -> str:
    with pytest.raises(ServingError) as caught:
        parse_body(body, limits)
    return caught.value.message


def at(reason: str, offset: int) -> str:
    return f"JSON Parse error: {reason} at offset: {offset}"


def comparable(value: Any) -> Any:
    """`value` with NaN, -0.0 and int vs float told apart, so == compares like `is`."""
    if isinstance(value, float):
        return ("float", "nan" if math.isnan(value) else value, math.copysign(1.0, value))
    if isinstance(value, bool) or value is None or isinstance(value, str):
        return value
    if isinstance(value, int):
        return ("int", value)
    if isinstance(value, list):
        return [comparable(item) for item in value]
    return ("object", [(key, comparable(item)) for key, item in value.items()])


def load_hand_written_reader() -> types.ModuleType | None:
    """The reader this module's shims replaced, from git history; None without it."""
    root = Path(__file__).resolve().parents[1]
    try:
        source = subprocess.run(
            ["git", "show", HAND_WRITTEN_READER],
            cwd=root,
            capture_output=True,
            check=True,
            text=True,
        ).stdout
    except (OSError, subprocess.CalledProcessError):
        return None
    module = types.ModuleType("hand_written_reader")
    exec(compile(source, HAND_WRITTEN_READER, "exec"), module.__dict__)
    return module


OLD = load_hand_written_reader()


def outcome(parse: Any, body: bytes) -> tuple[str, Any]:
    try:
        return "value", comparable(parse(body, UNLIMITED))
    except ServingError as error:
        return "error", error.message


# ---------------------------------------------------------------- malformed-body classes

MALFORMED = [
    ("empty", b"", EMPTY),
    ("whitespace only", b" \t\n\r", at("The document is empty.", 4)),
    ("truncated object", b'{"a": 1', at("Missing a comma or '}' after an object member.", 7)),
    ("truncated after a key", b'{"a"', at("Missing a colon after a name of object member.", 4)),
    ("truncated array", b'{"a": [1, 2', at("Missing a comma or ']' after an array element.", 11)),
    ("truncated string", b'{"a": "abc', at("Missing a closing quotation mark in string.", 10)),
    ("truncated number", b'{"a": 1.', at("Miss fraction part in number.", 8)),
    ("truncated exponent", b'{"a": 1e+', at("Miss exponent in number.", 9)),
    ("trailing comma in an object", b'{"a": 1,}', at("Missing a name for object member.", 8)),
    ("trailing comma in an array", b'{"a": [1,]}', at("Invalid value.", 9)),
    ("lowercase nan (read as null)", b'{"a": nan}', at("Invalid value.", 7)),
    ("-nan", b'{"a": -nan}', at("Invalid value.", 7)),
    ("Nan", b'{"a": Nan}', at("Invalid value.", 8)),
    ("Infinit", b'{"a": Infinit}', at("Invalid value.", 13)),
    ("infinity", b'{"a": infinity}', at("Invalid value.", 6)),
    ("bad escape", b'{"a": "x\\q"}', at("Invalid escape character in string.", 8)),
    ("\\x escape", b'{"a": "\\x41"}', at("Invalid escape character in string.", 7)),
    ("bad hex", b'{"a": "\\u12G4"}', at("Incorrect hex digit after \\u escape in string.", 7)),
    ("lone high surrogate", b'{"a": "\\ud800"}', at("The surrogate pair in string is invalid.", 7)),
    ("lone low surrogate", b'{"a": "\\udc00"}', at("The surrogate pair in string is invalid.", 7)),
    (
        "high surrogate, then no low one",
        b'{"a": "\\ud800\\u0041"}',
        at("The surrogate pair in string is invalid.", 7),
    ),
    ("invalid UTF-8 outside a string", b'{"a": \xff}', at("Invalid value.", 6)),
    (
        "invalid UTF-8 after a number",
        b'{"a": 1\xff}',
        at("Missing a comma or '}' after an object member.", 7),
    ),
    (
        "offset past invalid UTF-8 in a string",
        b'{"k": "\xff\xfe", "a": x}',
        at("Invalid value.", 17),
    ),
    ("a BOM, then nothing", b"\xef\xbb\xbf", at("The document is empty.", 3)),
    ("a BOM counts in the offset", b'\xef\xbb\xbf{"a": x}', at("Invalid value.", 9)),
    ("a second BOM is not skipped", b"\xef\xbb\xbf\xef\xbb\xbf{}", at("Invalid value.", 3)),
    ("1e400", b'{"a": 1e400}', at(TOO_BIG, 6)),
    ("-1e400", b'{"a": -1e400}', at(TOO_BIG, 6)),
    ("1.8e308 (finite exponent, infinite double)", b'{"a": [1.8e308]}', at(TOO_BIG, 7)),
    ("0e400, when orjson refuses the body", b'{"a": [NaN, 0e400]}', at(TOO_BIG, 12)),
    ("400-digit integer", b'{"a": ' + b"1" * 400 + b"}", at(TOO_BIG, 6)),
    ("5000-digit integer (past int()'s limit)", b'{"a": [' + b"1" * 5000 + b"]}", at(TOO_BIG, 7)),
    ("too big comes before a later syntax error", b'{"a": [1.8e308, x]}', at(TOO_BIG, 7)),
    ("control character in a string", b'{"a": "\x01"}', at("Invalid encoding in string.", 7)),
    ("unit separator in a string", b'{"a": "x\x1f"}', at("Invalid encoding in string.", 8)),
    (
        "NUL in a string ends the document",
        b'{"a": "x\x00"}',
        at("Missing a closing quotation mark in string.", 8),
    ),
    ("deep and unterminated", b'{"a": ' + b"[" * 3000, at("Invalid value.", 3006)),
    ("deep, error at the bottom", b'{"a": ' + b"[" * 3000 + b"x", at("Invalid value.", 3006)),
    ("not an object", b"[1] x", "JSON Value: [\n    1\n] Is not object"),
    ("NaN alone", b"NaN", "JSON Value: NaN Is not object"),
]
CASE_NAMES = [case[0] for case in MALFORMED]


@pytest.mark.parametrize(("body", "message"), [case[1:] for case in MALFORMED], ids=CASE_NAMES)
def test_malformed_body_gets_tf_servings_message(body: bytes, message: str) -> None:
    assert error_of(body) == message


@pytest.mark.skipif(OLD is None, reason="no git history to read the hand-written reader from")
@pytest.mark.parametrize("body", [case[1] for case in MALFORMED], ids=CASE_NAMES)
def test_malformed_body_gets_the_hand_written_readers_message(body: bytes) -> None:
    assert OLD is not None
    assert outcome(parse_body, body) == outcome(OLD.parse_body, body)


def test_the_offset_survives_parsing_inside_an_except_block() -> None:
    body = b'{"a": [' + b"1" * 5000 + b"]}"
    try:
        raise KeyError("being handled")  # python-rapidjson's int() error is chained to it
    except KeyError:
        assert error_of(body) == at(TOO_BIG, 7)


# ------------------------------------------------------------- what TF Serving accepts


def test_nan_and_infinity_tokens_and_rapidjsons_spellings() -> None:
    doc = parse_body(b'{"a": [NaN, -NaN, Infinity, -Infinity, Inf, -Inf, 1]}')
    values = doc["a"]
    assert isinstance(values, list)
    assert math.isnan(values[0]) and math.isnan(values[1])
    assert values[2:6] == [math.inf, -math.inf, math.inf, -math.inf]
    assert values[6] == 1 and type(values[6]) is int


@pytest.mark.parametrize(
    "body",
    [
        b'{"a": 1} x',
        b'{"a": 1}}',
        b'{"a": 1} {"b": 2}',
        b'{"a": 1}\xff\xfe',  # invalid UTF-8 after the value is never read
        b'{"a": 1}\x00{"b": ',
        b'{"a": 1}   \n',
    ],
)
def test_bytes_after_the_first_value_are_ignored(body: bytes) -> None:
    assert parse_body(body) == {"a": 1}


@pytest.mark.parametrize("bom", [b"\xef\xbb\xbf", b"\xef", b"\xbb", b"\xbf", b"\xef\xbf"])
def test_bom_bytes_are_skipped_one_by_one_like_encodedinputstream(bom: bytes) -> None:
    assert parse_body(bom + b' {"a": NaN}').keys() == {"a"}


def test_invalid_utf8_in_strings_is_kept_as_surrogate_escapes() -> None:
    doc = parse_body(b'{"a": NaN, "\xff key": "x\xfe\xc3\xa9\xed\xa0\x80", "n": ["\xff"]}')
    assert doc["\udcff key"] == "x\udcfe\u00e9\udced\udca0\udc80"
    assert doc["n"] == ["\udcff"]
    assert doc["\udcff key"].encode("utf-8", "surrogateescape") == b"x\xfe\xc3\xa9\xed\xa0\x80"


def test_invalid_utf8_placeholders_do_not_collide_with_the_bodys_own_characters() -> None:
    body = (
        b'{"raw": "\xf4\x8f\xbf\xbf\xf4\x8f\xbf\xbe", "escaped": "\\udbff\\udfff", '
        b'"bytes": "\xff\xfe", "n": NaN}'
    )
    doc = parse_body(body)
    assert doc["raw"] == "\U0010ffff\U0010fffe"
    assert doc["escaped"] == "\U0010ffff"
    assert doc["bytes"] == "\udcff\udcfe"


def test_the_first_duplicate_key_wins_at_every_level() -> None:
    doc = parse_body(
        b'{"a": NaN, "k": 1, "o": {"x": 1, "x": 2, "y": 3}, "k": 2, "\xff": 1, "\xff": 2}'
    )
    assert doc["k"] == 1
    assert list(doc) == ["a", "k", "o", "\udcff"]
    assert doc["o"] == {"x": 1, "y": 3}
    assert doc["\udcff"] == 1


@pytest.mark.parametrize(
    ("token", "expected"),
    [
        (b"18446744073709551615", 2**64 - 1),
        (b"-9223372036854775808", -(2**63)),
        (b"18446744073709551616", 1.8446744073709552e19),
        (b"-9223372036854775809", -9.223372036854776e18),
        (b"1" + b"0" * 300, 1e300),
        (b"12345678901234567890.5e3", 1.2345678901234568e22),
        (b"1.7976931348623157e308", 1.7976931348623157e308),
        (b"0.1e309", 1e308),
    ],
)
def test_long_numbers_as_rapidjson_stores_them(token: bytes, expected: float) -> None:
    for body in (b'{"n": NaN, "v": ' + token + b"}", b'{"v": [[' + token + b", NaN]]}"):
        value = parse_body(body)["v"]
        while isinstance(value, list):
            value = value[0]
        assert value == expected and type(value) is type(expected)


def test_long_integers_become_doubles_at_the_root_too() -> None:
    double = json_value_to_string(1.8446744073709552e19)
    assert error_of(b"18446744073709551616 NaN") == f"JSON Value: {double} Is not object"


def test_minus_nan_is_rapidjsons_nan_with_the_sign_clear() -> None:
    values = parse_body(b'{"a": [-NaN, NaN, {"b": -NaN}]}')["a"]
    assert isinstance(values, list)
    for value in (values[0], values[1], values[2]["b"]):
        assert math.isnan(value) and math.copysign(1.0, value) == 1.0


@pytest.mark.parametrize("depth", [511, 512, 5_000, 200_000])
def test_deep_bodies_orjson_refuses_parse_without_a_crash(depth: int) -> None:
    recursion_limit, stack_size = sys.getrecursionlimit(), threading.stack_size()
    body = b'{"a": ' + b"[" * depth + b"NaN" + b"]" * depth + b', "b": {"c": ' + b"[" * depth
    body += b"-Inf" + b"]" * depth + b"}}"
    doc = parse_body(body, UNLIMITED)
    value = doc["a"]
    for _ in range(depth):
        assert isinstance(value, list) and len(value) == 1
        value = value[0]
    assert math.isnan(value)
    assert (sys.getrecursionlimit(), threading.stack_size()) == (recursion_limit, stack_size)


def test_deep_objects_in_the_helper_thread_keep_the_first_key() -> None:
    depth = 3_000
    body = b'{"a": NaN, "d": ' + b'{"k": ' * depth + b"2" + b', "k": 0}' * depth + b"}"
    value = parse_body(body, UNLIMITED)["d"]
    for _ in range(depth):
        assert isinstance(value, dict) and list(value) == ["k"]
        value = value["k"]
    assert value == 2


def test_the_depth_limit_still_comes_first() -> None:
    assert error_of(b'{"a": ' + b"[" * 70 + b"NaN", JsonLimits()) == (
        "Request nests JSON 71 levels deep; the gateway allows 64 (max_json_depth)"
    )


# --------------------------------------------------------------------------- property

TOKENS = [
    b"{", b"}", b"[", b"]", b",", b":", b" ", b"\n", b'"a"', b'"b"', b'"', b"\\",
    b'"\\u00e9"', b'"\\ud83d\\ude00"', b'"\\ud800"', b'"\\q"', b'"\\u12"', b'"\\udbff\\udfff"',
    b'"\xff"', b'"\xc3\xa9"', b'"\xf4\x8f\xbf\xbf"', b"\xff", b"\xc3", b"\xed\xa0\x80",
    b"\xef\xbb\xbf", b"\x00", b"\x01", b"x",
    b"0", b"1", b"-1", b"-0", b"01", b"+1", b"-", b"1.5", b"1.", b"1e", b"1E+5", b"1.5e-3",
    b"1e400", b"1.8e308", b"0e400", b"1e-400", b"1e0308", b"12345678901234567890.5e3",
    b"18446744073709551615", b"18446744073709551616", b"-9223372036854775809", b"9" * 30,
    b"1" + b"0" * 400,
    b"NaN", b"-NaN", b"Infinity", b"-Infinity", b"Inf", b"-Inf", b"nan", b"Nan", b"Infinit",
    b"true", b"tru", b"false", b"null", b"nul",
]  # fmt: skip
JSON_SOUP = st.lists(st.sampled_from(TOKENS), max_size=14).map(b"".join)
BODIES = (
    st.binary(max_size=60)
    | JSON_SOUP
    | JSON_SOUP.map(lambda soup: b'{"v": ' + soup)
    | JSON_SOUP.map(lambda soup: b'{"v": [' + soup + b"]}")
)


@settings(max_examples=1500, deadline=None)
@given(body=BODIES)
def test_any_bytes_parse_as_before_or_raise_a_serving_error(body: bytes) -> None:
    new = outcome(parse_body, body)  # any exception but ServingError fails the test
    kind, result = new
    assert kind == "value" or (isinstance(result, str) and result)
    if OLD is not None:
        assert new == outcome(OLD.parse_body, body)
