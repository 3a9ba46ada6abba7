"""DataFrame payloads: what the encoder produces decodes back, and nothing else decodes."""

from __future__ import annotations

import os

import pytest
import zstandard
from hypothesis import given, settings
from hypothesis import strategies as st

from common.frame_codec import FrameDecoder, FrameEncoder, FrameError
from common.pb.migrate.v1 import receiver_pb2 as pb

MiB = 1 << 20
MAX_RAW = 4 * MiB
TEXT = b"the quick brown fox jumps over the lazy dog\n" * 2000


def _zstd(raw: bytes, *, size_in_header: bool = True) -> bytes:
    return zstandard.ZstdCompressor(level=3, write_content_size=size_in_header).compress(raw)


@given(raw=st.binary(max_size=64 * 1024), level=st.integers(min_value=0, max_value=6))
@settings(deadline=None)
def test_round_trip(raw: bytes, level: int) -> None:
    encoding, payload = FrameEncoder(level).encode(raw)
    assert encoding in (pb.ENCODING_RAW, pb.ENCODING_ZSTD)
    assert FrameDecoder(MAX_RAW).decode(encoding, payload, len(raw)) == raw


@pytest.mark.parametrize("level", range(7))
def test_round_trip_of_text_compresses_unless_level_0(level: int) -> None:
    encoding, payload = FrameEncoder(level).encode(TEXT)
    if level == 0:
        assert (encoding, payload) == (pb.ENCODING_RAW, TEXT)
    else:
        assert encoding == pb.ENCODING_ZSTD
        assert len(payload) < len(TEXT) // 10
    assert FrameDecoder(MAX_RAW).decode(encoding, payload, len(TEXT)) == TEXT


@pytest.mark.parametrize(
    "raw", [os.urandom(MiB), os.urandom(100), b""], ids=["1MiB", "100B", "empty"]
)
def test_incompressible_data_goes_raw(raw: bytes) -> None:
    encoding, payload = FrameEncoder(3).encode(raw)
    assert (encoding, payload) == (pb.ENCODING_RAW, raw)


def test_frame_of_exactly_the_maximum_decodes() -> None:
    raw = bytes(MAX_RAW)
    assert FrameDecoder(MAX_RAW).decode(pb.ENCODING_ZSTD, _zstd(raw), MAX_RAW) == raw


BAD_FRAMES: list[tuple[str, int, bytes, int]] = [
    # A bomb: far more output than declared, with and without the size in its header.
    ("bomb-size-in-header", pb.ENCODING_ZSTD, _zstd(bytes(64 * MiB)), MiB),
    ("bomb-no-size", pb.ENCODING_ZSTD, _zstd(bytes(64 * MiB), size_in_header=False), MiB),
    ("bomb-declared-zero", pb.ENCODING_ZSTD, _zstd(bytes(64 * MiB), size_in_header=False), 0),
    # Declared over the decoder's maximum, even though the payload agrees.
    ("over-max-zstd", pb.ENCODING_ZSTD, _zstd(bytes(MAX_RAW + 1)), MAX_RAW + 1),
    ("over-max-raw", pb.ENCODING_RAW, bytes(MAX_RAW + 1), MAX_RAW + 1),
    # Sizes that disagree with the content.
    ("zstd-shorter-than-declared", pb.ENCODING_ZSTD, _zstd(TEXT), len(TEXT) + 1),
    ("zstd-longer-than-declared", pb.ENCODING_ZSTD, _zstd(TEXT), len(TEXT) - 1),
    (
        "zstd-no-size-shorter",
        pb.ENCODING_ZSTD,
        _zstd(TEXT, size_in_header=False),
        len(TEXT) + 1,
    ),
    ("raw-shorter-than-declared", pb.ENCODING_RAW, b"abc", 4),
    ("raw-longer-than-declared", pb.ENCODING_RAW, b"abc", 2),
    # Not zstd at all, or zstd cut short or trampled.
    ("garbage", pb.ENCODING_ZSTD, b"this is not a zstd frame", 24),
    ("empty-zstd", pb.ENCODING_ZSTD, b"", 0),
    ("truncated", pb.ENCODING_ZSTD, _zstd(TEXT)[:-8], len(TEXT)),
    ("trampled", pb.ENCODING_ZSTD, _zstd(TEXT)[:12] + bytes(64) + _zstd(TEXT)[76:], len(TEXT)),
    # Encodings the contract does not define.
    ("unspecified-encoding", pb.ENCODING_UNSPECIFIED, b"abc", 3),
    ("unknown-encoding", 99, b"abc", 3),
]


@pytest.mark.parametrize(
    ("encoding", "payload", "raw_size"),
    [case[1:] for case in BAD_FRAMES],
    ids=[case[0] for case in BAD_FRAMES],
)
def test_bad_frame_raises_frame_error(encoding: int, payload: bytes, raw_size: int) -> None:
    with pytest.raises(FrameError):
        FrameDecoder(MAX_RAW).decode(encoding, payload, raw_size)


@given(payload=st.binary(max_size=512), raw_size=st.integers(min_value=0, max_value=MAX_RAW))
@settings(deadline=None)
def test_arbitrary_zstd_payload_decodes_to_its_size_or_raises_frame_error(
    payload: bytes, raw_size: int
) -> None:
    try:
        raw = FrameDecoder(MAX_RAW).decode(pb.ENCODING_ZSTD, payload, raw_size)
    except FrameError:
        return
    assert len(raw) == raw_size


def test_after_incompressible_frames_a_few_go_raw_untried_then_compression_is_tried_again() -> None:
    encoder = FrameEncoder(3)
    text = b"the quick brown fox jumps over the lazy dog\n" * 2000
    noise = [encoder.encode(os.urandom(64 << 10), source=7)[0] for _ in range(2)]
    assert noise == [pb.ENCODING_RAW] * 2
    # Another file, or a frame of several, is tried at once...
    assert encoder.encode(text, source=8)[0] == pb.ENCODING_ZSTD
    assert [encoder.encode(os.urandom(64 << 10), source=7)[0] for _ in range(2)] == [
        pb.ENCODING_RAW
    ] * 2
    assert encoder.encode(text, source=None)[0] == pb.ENCODING_ZSTD
    # ...while the same file's next frames go raw untried, even if they would compress...
    for _ in range(2):
        encoder.encode(os.urandom(64 << 10), source=7)
    assert [encoder.encode(text, source=7)[0] for _ in range(16)] == [pb.ENCODING_RAW] * 16
    # ...then one is tried again, and compressed.
    assert encoder.encode(text, source=7)[0] == pb.ENCODING_ZSTD
