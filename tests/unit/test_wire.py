"""Unit tests of rtoc.wire: msgpack headers and raw numpy data frames."""

from __future__ import annotations

import msgpack
import numpy as np
import pytest
from hypothesis import given
from hypothesis import strategies as st

from rtoc import wire

json_values = st.recursive(
    st.none() | st.booleans() | st.integers(-(2**63), 2**64 - 1)
    | st.floats(allow_nan=False) | st.text() | st.binary(),
    lambda inner: st.lists(inner, max_size=4) | st.dictionaries(st.text(), inner, max_size=4),
    max_leaves=20,
)


@given(st.dictionaries(st.text(), json_values, max_size=6))
def test_pack_unpack_round_trip(obj: dict) -> None:
    assert wire.unpack(wire.pack(obj)) == obj


def test_pack_turns_numpy_scalars_and_arrays_into_python_values() -> None:
    obj = {"f": np.float64(1.5), "f32": np.float32(0.25), "i": np.int32(-3), "u": np.uint64(2**63),
           "b": np.bool_(True), "a": np.arange(3, dtype=np.int16), "nested": [np.float64(2.0)]}
    back = wire.unpack(wire.pack(obj))
    assert back == {"f": 1.5, "f32": 0.25, "i": -3, "u": 2**63, "b": True, "a": [0, 1, 2],
                    "nested": [2.0]}
    assert type(back["b"]) is bool and type(back["i"]) is int and type(back["f"]) is float


def test_pack_refuses_objects() -> None:
    with pytest.raises(TypeError):
        wire.pack({"x": object()})


def test_unpack_keeps_int_map_keys() -> None:
    assert wire.unpack(msgpack.packb({1: "a"})) == {1: "a"}


@pytest.mark.parametrize("data", [
    b"",                          # nothing
    b"\xc1",                      # the one byte msgpack never uses
    b"\x93\x01\x02\x03",          # an array, not a map
    b"\x01",                      # an int
    b"\x81\xa1a",                 # a map cut short
    b"\x80\x80",                  # two messages
    b"\x81\x90\x01",              # a map keyed by an (unhashable) array
    b"\xd4\x01\x00",              # an extension type
    b"\x81\xa1a\xd4\x01\x00",       # an extension type inside a map
    b"\x91" * 5000 + b"\x80",     # nested deeper than msgpack allows
    b"\x81\xa1a\xc7\x05\x00",     # an extension cut short
])
def test_unpack_garbage_raises_value_error(data: bytes) -> None:
    with pytest.raises(ValueError):
        wire.unpack(data)


def test_unpack_turns_the_timestamp_extension_into_plain_seconds() -> None:
    # msgpack decodes its built-in timestamp (type -1) without asking ext_hook; it must
    # still come out as a plain type, never a msgpack object
    assert wire.unpack(b"\x81\xa1t\xd6\xff\x00\x00\x00\x01") == {"t": 1.0}


def test_unpack_refuses_oversized_messages_before_decoding() -> None:
    with pytest.raises(ValueError, match="exceeds"):
        wire.unpack(b"\x80" + b"\x00" * wire.MAX_MESSAGE)


@given(st.binary(max_size=64))
def test_unpack_of_any_bytes_is_a_dict_or_value_error(data: bytes) -> None:
    try:
        obj = wire.unpack(data)
    except ValueError:
        return
    assert isinstance(obj, dict)


def _f64(values: list[float]) -> np.ndarray:
    return np.asarray(values, dtype=np.float64)


@given(st.lists(st.tuples(st.floats(allow_nan=False), st.floats(allow_nan=False)), max_size=50),
       st.integers(0, 2**32), st.integers(0, 2**63), st.integers(0, 2**40), st.booleans(),
       st.text(min_size=1))
def test_data_frames_parse_data_round_trip(samples: list[tuple[float, float]], sig: int, seq: int,
                                          lost: int, replace: bool, name: str) -> None:
    t = _f64([s[0] for s in samples])
    y = _f64([s[1] for s in samples])
    frames = wire.data_frames(name, sig, seq, t, y, lost, replace)
    # what ZeroMQ delivers: bytes per frame
    got_name, header, t2, y2 = wire.parse_data([bytes(f) for f in frames])
    assert got_name == name
    assert header["v"] == wire.VERSION
    assert (header["sig"], header["seq"], header["n"], header["lost"]) == (sig, seq, len(t), lost)
    assert header.get("replace", False) is replace
    np.testing.assert_array_equal(t2, t)
    np.testing.assert_array_equal(y2, y)
    assert t2.dtype == np.dtype("<f8")


def test_data_frames_topic_and_no_replace_flag_by_default() -> None:
    frames = wire.data_frames("Dev.S", 3, 10, _f64([1.0]), _f64([2.0]))
    assert frames[0] == b"data/Dev.S"
    assert "replace" not in wire.unpack(frames[1])


def test_parse_data_accepts_memoryviews() -> None:
    frames = wire.data_frames("Dev.S", 3, 10, _f64([1.0, 2.0]), _f64([3.0, 4.0]))
    name, header, t, y = wire.parse_data([memoryview(bytes(f)) for f in frames])
    assert name == "Dev.S" and header["n"] == 2
    assert t.tolist() == [1.0, 2.0] and y.tolist() == [3.0, 4.0]


def _good() -> list[bytes]:
    return [bytes(f) for f in wire.data_frames("Dev.S", 1, 0, _f64([1.0, 2.0]), _f64([3.0, 4.0]))]


def _with(index: int, frame: bytes) -> list[bytes]:
    frames = _good()
    frames[index] = frame
    return frames


@pytest.mark.parametrize("frames", [
    _good()[:3],                                                            # too few frames
    _good() + [b""],                                                        # too many
    [],
    _with(0, b"event"),                                                     # not a data topic
    _with(0, b"data/\xff\xfe"),                                             # topic not UTF-8
    _with(1, b"\xc1"),                                                      # header not msgpack
    _with(1, b"\x93\x01\x02\x03"),                                          # header not a map
    _with(1, wire.pack({"v": 1, "sig": 1, "seq": 0, "n": 3, "lost": 0})),   # n too large
    _with(1, wire.pack({"v": 1, "sig": 1, "seq": 0, "lost": 0})),           # n missing
    _with(2, np.zeros(3).tobytes()),                                        # t longer than y
    _with(3, np.zeros(1).tobytes()),                                        # y shorter
    _with(2, b"\x00" * 12),                                                 # not whole float64s
], ids=lambda f: f"{len(f)}-frames")
def test_parse_data_refuses_malformed_messages(frames: list[bytes]) -> None:
    with pytest.raises(ValueError):
        wire.parse_data(frames)


headers = st.binary(max_size=40) | st.dictionaries(
    st.sampled_from(["v", "sig", "seq", "n", "lost", "replace"]),
    st.none() | st.integers(-2, 4) | st.floats() | st.text(max_size=3), max_size=6).map(wire.pack)


@given(st.sampled_from([b"data/Dev.S", b"data/", b"event"]) | st.binary(max_size=12), headers,
       st.lists(st.binary(max_size=40), min_size=0, max_size=4))
def test_parse_data_of_any_frames_succeeds_or_raises_value_error(topic: bytes, header: bytes,
                                                                  rest: list[bytes]) -> None:
    frames = [topic, header, *rest]
    try:
        name, hdr, t, y = wire.parse_data(frames)
    except ValueError:
        return
    assert len(frames) == 4 and hdr["n"] == len(t) == len(y)
