"""gRPC settings both ends must agree on: message sizes, keepalive, metadata."""

from __future__ import annotations

MiB = 1 << 20

# The sender cuts content into frames of about this many raw bytes. 1 MiB
# messages reach 1.0-1.25 GB/s through grpcio on loopback where 64 KiB ones
# reach 0.26-0.37 GB/s (DESIGN.md).
DEFAULT_CHUNK_BYTES = 1 * MiB
# The largest raw frame a receiver accepts; --chunk-size may not exceed it.
MAX_FRAME_RAW_BYTES = 16 * MiB
# A frame's payload is at most its raw size (raw frames are never inflated),
# so this leaves room for piece headers and the other fields.
MAX_MESSAGE_BYTES = MAX_FRAME_RAW_BYTES + 4 * MiB

# The token travels as `authorization: Bearer <token>` on every call.
AUTH_METADATA_KEY = "authorization"
AUTH_SCHEME = "Bearer "

# NAT gateways and VPN concentrators drop idle TCP flows after a few minutes
# (often 350 s on cloud NAT), so both ends ping every 10 s even while idle,
# which also notices a dead link within 10 + 10 s instead of TCP's minutes.
# The receiver permits pings every 5 s, so a sender's never trip its
# `too_many_pings` guard.
_KEEPALIVE_TIME_MS = 10_000
_KEEPALIVE_TIMEOUT_MS = 10_000
_MIN_PING_INTERVAL_MS = 5_000

_SIZE_OPTIONS = [
    ("grpc.max_send_message_length", MAX_MESSAGE_BYTES),
    ("grpc.max_receive_message_length", MAX_MESSAGE_BYTES),
]

CHANNEL_OPTIONS = [
    *_SIZE_OPTIONS,
    ("grpc.keepalive_time_ms", _KEEPALIVE_TIME_MS),
    ("grpc.keepalive_timeout_ms", _KEEPALIVE_TIMEOUT_MS),
    ("grpc.keepalive_permit_without_calls", 1),
    ("grpc.http2.max_pings_without_data", 0),
    # Each stream gets its own connection (issue: parallel streams on separate
    # HTTP/2 connections), so channels must not be shared behind our back.
    ("grpc.use_local_subchannel_pool", 1),
]

SERVER_OPTIONS = [
    *_SIZE_OPTIONS,
    ("grpc.keepalive_time_ms", _KEEPALIVE_TIME_MS),
    ("grpc.keepalive_timeout_ms", _KEEPALIVE_TIMEOUT_MS),
    ("grpc.keepalive_permit_without_calls", 1),
    ("grpc.http2.min_recv_ping_interval_without_data_ms", _MIN_PING_INTERVAL_MS),
    ("grpc.http2.max_ping_strikes", 0),
]
