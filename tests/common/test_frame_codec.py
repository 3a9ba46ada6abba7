"""DataFrame payloads: what the encoder produces decodes back, and nothing else decodes."""

from __future__ import annotations

import gc
import os
import subprocess
import sys
import weakref

import pytest
import zstandard
from hypothesis import given, settings
from hypothesis import strategies as st

from common import frame_codec
from common.frame_codec import FrameDecoder, FrameEncoder, FrameError
from common.pb.migrate.v1 import receiver_pb2 as pb

MiB = 1 << 20
MAX_RAW = 4 * MiB
TEXT = b"the quick brown fox jumps over the lazy dog\n" * 2000
COMPRESSED = (pb.ENCODING_ZSTD_STREAM_START, pb.ENCODING_ZSTD_STREAM_NEXT)


def _zstd(raw: bytes, *, size_in_header: bool = True) -> bytes:
    return zstandard.ZstdCompressor(level=3, write_content_size=size_in_header).compress(raw)


@given(raw=st.binary(max_size=64 * 1024), level=st.integers(min_value=0, max_value=6))
@settings(deadline=None)
def test_round_trip(raw: bytes, level: int) -> None:
    encoding, payload = FrameEncoder(level).encode(raw)
    assert encoding in (pb.ENCODING_RAW, pb.ENCODING_ZSTD_STREAM_START)
    assert FrameDecoder(MAX_RAW).decode(encoding, payload, len(raw)) == raw


@pytest.mark.parametrize("level", range(7))
def test_round_trip_of_text_compresses_unless_level_0(level: int) -> None:
    encoding, payload = FrameEncoder(level).encode(TEXT)
    if level == 0:
        assert (encoding, payload) == (pb.ENCODING_RAW, TEXT)
    else:
        assert encoding == pb.ENCODING_ZSTD_STREAM_START
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
    assert encoder.encode(text, source=8)[0] in COMPRESSED
    assert [encoder.encode(os.urandom(64 << 10), source=7)[0] for _ in range(2)] == [
        pb.ENCODING_RAW
    ] * 2
    assert encoder.encode(text, source=None)[0] in COMPRESSED
    # ...while the same file's next frames go raw untried, even if they would compress...
    for _ in range(2):
        encoder.encode(os.urandom(64 << 10), source=7)
    assert [encoder.encode(text, source=7)[0] for _ in range(16)] == [pb.ENCODING_RAW] * 16
    # ...then one is tried again, and compressed.
    assert encoder.encode(text, source=7)[0] in COMPRESSED


# -- the streaming context: one per Transfer stream ------------------------------

FRAME_KINDS = {
    "text": lambda i: (b"line %d of a config file, mostly alike\n" % i) * 900,
    "random": lambda i: os.urandom(32 << 10),
    "zeros": lambda i: bytes(40 << 10),
    "empty": lambda i: b"",
}


@given(
    steps=st.lists(
        st.tuples(st.sampled_from(sorted(FRAME_KINDS)), st.sampled_from([None, 0, 1, 3, 9])),
        max_size=40,
    ),
    source=st.sampled_from([None, 5]),
)
@settings(deadline=None, max_examples=60)
def test_both_ends_stay_in_step_across_raw_frames_misses_and_level_changes(
    steps: list[tuple[str, int | None]], source: int | None
) -> None:
    encoder, decoder = FrameEncoder(3), FrameDecoder(MAX_RAW)
    for i, (kind, level) in enumerate(steps):
        if level is not None:
            encoder.set_level(level)
        raw = FRAME_KINDS[kind](i)
        encoding, payload = encoder.encode(raw, source)
        assert decoder.decode(encoding, payload, len(raw)) == raw


def test_frames_larger_than_zstds_output_buffer_decode_whole() -> None:
    # zstd keeps back output that does not fit its output buffer (128 KiB by
    # default) until more input comes: 1 MiB of zeros once decoded to 917504 bytes.
    encoder, decoder = FrameEncoder(3), FrameDecoder(16 * MiB)
    for raw in (bytes(MiB), TEXT * 12, bytes(3 * MiB), os.urandom(MiB), bytes(16 * MiB)):
        assert decoder.decode(*encoder.encode(raw), len(raw)) == raw


def test_a_frame_compresses_against_the_frames_before_it() -> None:
    files = [os.urandom(16 << 10) * 2 for _ in range(4)]  # each compresses only against itself
    encoder, decoder = FrameEncoder(3), FrameDecoder(MAX_RAW)
    first = encoder.encode(files[0] + files[1])
    again = encoder.encode(files[1] + files[0])  # all of it seen before
    assert first[0] == pb.ENCODING_ZSTD_STREAM_START
    assert again[0] == pb.ENCODING_ZSTD_STREAM_NEXT
    assert len(again[1]) < len(first[1]) // 20
    assert decoder.decode(*first, 64 << 10) == files[0] + files[1]
    assert decoder.decode(*again, 64 << 10) == files[1] + files[0]


def test_a_frame_sent_raw_after_compressing_it_restarts_the_context() -> None:
    encoder = FrameEncoder(3)
    assert encoder.encode(TEXT)[0] == pb.ENCODING_ZSTD_STREAM_START
    assert encoder.encode(os.urandom(MiB))[0] == pb.ENCODING_RAW
    assert encoder.encode(TEXT)[0] == pb.ENCODING_ZSTD_STREAM_START
    assert encoder.encode(TEXT)[0] == pb.ENCODING_ZSTD_STREAM_NEXT
    encoder.set_level(5)
    assert encoder.encode(TEXT)[0] == pb.ENCODING_ZSTD_STREAM_START
    encoder.set_level(0)
    assert encoder.encode(TEXT) == (pb.ENCODING_RAW, TEXT)


def _stream(*frames: bytes, level: int = 3, window_log: int = 0) -> list[bytes]:
    params = zstandard.ZstdCompressionParameters.from_level(level, window_log=window_log)
    context = zstandard.ZstdCompressor(compression_params=params).compressobj()
    return [context.compress(f) + context.flush(zstandard.COMPRESSOBJ_FLUSH_BLOCK) for f in frames]


def _rle_blocks(count: int) -> bytes:
    """zstd blocks that each decode to 128 KiB of one byte from 4 bytes of payload."""
    header = ((128 << 10) << 3) | (1 << 1)  # block size, block type RLE, not the last
    return (header.to_bytes(3, "little") + b"A") * count


def test_next_without_a_started_context_is_refused() -> None:
    _start, following = _stream(TEXT, TEXT)
    with pytest.raises(FrameError, match="not started"):
        FrameDecoder(MAX_RAW).decode(pb.ENCODING_ZSTD_STREAM_NEXT, following, len(TEXT))


def test_a_failed_frame_ends_the_context_and_a_start_begins_a_new_one() -> None:
    decoder = FrameDecoder(MAX_RAW)
    start, following = _stream(TEXT, TEXT)
    decoder.decode(pb.ENCODING_ZSTD_STREAM_START, start, len(TEXT))
    with pytest.raises(FrameError):
        decoder.decode(pb.ENCODING_ZSTD_STREAM_NEXT, following, len(TEXT) - 1)
    with pytest.raises(FrameError, match="not started"):
        decoder.decode(pb.ENCODING_ZSTD_STREAM_NEXT, following, len(TEXT))
    again, then = _stream(TEXT, b"more")
    assert decoder.decode(pb.ENCODING_ZSTD_STREAM_START, again, len(TEXT)) == TEXT
    assert decoder.decode(pb.ENCODING_ZSTD_STREAM_NEXT, then, 4) == b"more"


BAD_STREAM_FRAMES: list[tuple[str, bytes, int]] = [
    ("shorter-than-declared", _stream(TEXT)[0], len(TEXT) + 1),
    ("longer-than-declared", _stream(TEXT)[0], len(TEXT) - 1),
    ("rle-bomb", _stream(b"x")[0] + _rle_blocks(8192), MiB),
    ("bomb-declared-zero", _stream(b"x")[0] + _rle_blocks(16), 0),
    ("garbage", b"this is not zstd at all", 23),
    ("truncated-header", _stream(TEXT)[0][:3], len(TEXT)),
    ("window-over-8MiB", _stream(TEXT, window_log=27)[0], len(TEXT)),
]


@pytest.mark.parametrize(
    ("payload", "raw_size"),
    [case[1:] for case in BAD_STREAM_FRAMES],
    ids=[case[0] for case in BAD_STREAM_FRAMES],
)
def test_bad_start_frame_raises_frame_error(payload: bytes, raw_size: int) -> None:
    with pytest.raises(FrameError):
        FrameDecoder(MAX_RAW).decode(pb.ENCODING_ZSTD_STREAM_START, payload, raw_size)


@given(payload=st.binary(max_size=512), raw_size=st.integers(min_value=0, max_value=MAX_RAW))
@settings(deadline=None)
def test_arbitrary_next_payload_decodes_to_its_size_or_raises_frame_error(
    payload: bytes, raw_size: int
) -> None:
    decoder = FrameDecoder(MAX_RAW)
    (start,) = _stream(TEXT)
    decoder.decode(pb.ENCODING_ZSTD_STREAM_START, start, len(TEXT))
    try:
        raw = decoder.decode(pb.ENCODING_ZSTD_STREAM_NEXT, payload, raw_size)
    except FrameError:
        return
    assert len(raw) == raw_size


# A NEXT of 1 MiB of RLE blocks would decode to 32 GiB. The decoder may hold about
# the largest frame it accepts (its output buffer) but nothing like the bomb.
_BOMB_CHILD = """
import resource, time
from common.frame_codec import FrameDecoder, FrameError
from common.pb.migrate.v1 import receiver_pb2 as pb
from tests.common.test_frame_codec import MiB, TEXT, _rle_blocks, _stream

decoder = FrameDecoder(16 * MiB)
(start,) = _stream(TEXT)
decoder.decode(pb.ENCODING_ZSTD_STREAM_START, start, len(TEXT))
bomb = _rle_blocks(MiB // 4)
before = resource.getrusage(resource.RUSAGE_SELF).ru_maxrss
began = time.monotonic()
try:
    decoder.decode(pb.ENCODING_ZSTD_STREAM_NEXT, bomb, MiB)
    print("decoded")
except FrameError:
    grown = resource.getrusage(resource.RUSAGE_SELF).ru_maxrss - before
    print("refused", grown * 1024, time.monotonic() - began)
"""


def test_a_next_frame_that_expands_far_past_its_size_is_refused_with_bounded_memory() -> None:
    root = os.path.dirname(os.path.dirname(os.path.dirname(os.path.abspath(__file__))))
    done = subprocess.run(
        [sys.executable, "-c", _BOMB_CHILD],
        cwd=root,
        capture_output=True,
        text=True,
        timeout=120,
        check=True,
    )
    verdict, grown, seconds = done.stdout.split()
    assert verdict == "refused"
    # The output buffer (the largest frame, 16 MiB) and one copy of it, at most.
    assert int(grown) < 40 * MiB
    # 32 GiB would take tens of seconds to produce even as memset: this stopped early.
    assert float(seconds) < 5


@pytest.mark.parametrize("level", [19, 22])
def test_the_highest_levels_stay_within_the_receivers_window(level: int) -> None:
    # zstd's own window for level 22 is 128 MiB; the receiver takes 8 MiB at most.
    encoder, decoder = FrameEncoder(level), FrameDecoder(MAX_RAW)
    for i in range(3):
        raw = TEXT[i:] * 12
        assert decoder.decode(*encoder.encode(raw), len(raw)) == raw


def test_an_encoder_holds_one_compressor_whatever_levels_it_visited(
    monkeypatch: pytest.MonkeyPatch,
) -> None:
    """Each compressor keeps its match tables (about 16 MiB at level 9): one kept per
    level visited would multiply that by every level a stream climbs through."""
    made: list[weakref.ref[object]] = []
    real = frame_codec._compressor

    class Tracked:
        def __init__(self, level: int) -> None:
            self._inner = real(level)

        def compressobj(self) -> object:
            return self._inner.compressobj()

    def tracked(level: int) -> object:
        compressor = Tracked(level)
        made.append(weakref.ref(compressor))
        return compressor

    monkeypatch.setattr(frame_codec, "_compressor", tracked)
    encoder = FrameEncoder(1)
    text = b"the same words again and again " * 4096
    for level in (1, 2, 3, 4, 5, 6, 7, 8, 9, 3):
        encoder.set_level(level)
        encoding, _ = encoder.encode(text)
        assert encoding == pb.ENCODING_ZSTD_STREAM_START
    gc.collect()
    assert len(made) == 10
    assert sum(ref() is not None for ref in made) == 1
