from google.protobuf.internal import containers as _containers
from google.protobuf.internal import enum_type_wrapper as _enum_type_wrapper
from google.protobuf import descriptor as _descriptor
from google.protobuf import message as _message
from collections.abc import Iterable as _Iterable, Mapping as _Mapping
from typing import ClassVar as _ClassVar, Optional as _Optional, Union as _Union

DESCRIPTOR: _descriptor.FileDescriptor

class EntryKind(int, metaclass=_enum_type_wrapper.EnumTypeWrapper):
    __slots__ = ()
    ENTRY_KIND_UNSPECIFIED: _ClassVar[EntryKind]
    ENTRY_KIND_FILE: _ClassVar[EntryKind]
    ENTRY_KIND_DIRECTORY: _ClassVar[EntryKind]
    ENTRY_KIND_SYMLINK: _ClassVar[EntryKind]
    ENTRY_KIND_CHAR_DEVICE: _ClassVar[EntryKind]
    ENTRY_KIND_BLOCK_DEVICE: _ClassVar[EntryKind]
    ENTRY_KIND_FIFO: _ClassVar[EntryKind]
    ENTRY_KIND_HARDLINK: _ClassVar[EntryKind]

class Action(int, metaclass=_enum_type_wrapper.EnumTypeWrapper):
    __slots__ = ()
    ACTION_UNSPECIFIED: _ClassVar[Action]
    ACTION_SKIP: _ClassVar[Action]
    ACTION_SEND: _ClassVar[Action]
    ACTION_DONE: _ClassVar[Action]
    ACTION_FAILED: _ClassVar[Action]
    ACTION_DELTA: _ClassVar[Action]

class Encoding(int, metaclass=_enum_type_wrapper.EnumTypeWrapper):
    __slots__ = ()
    ENCODING_UNSPECIFIED: _ClassVar[Encoding]
    ENCODING_RAW: _ClassVar[Encoding]
    ENCODING_ZSTD: _ClassVar[Encoding]
    ENCODING_ZSTD_STREAM_START: _ClassVar[Encoding]
    ENCODING_ZSTD_STREAM_NEXT: _ClassVar[Encoding]

class DifferenceKind(int, metaclass=_enum_type_wrapper.EnumTypeWrapper):
    __slots__ = ()
    DIFFERENCE_KIND_UNSPECIFIED: _ClassVar[DifferenceKind]
    DIFFERENCE_KIND_MISSING: _ClassVar[DifferenceKind]
    DIFFERENCE_KIND_EXTRA: _ClassVar[DifferenceKind]
    DIFFERENCE_KIND_CONTENT: _ClassVar[DifferenceKind]
    DIFFERENCE_KIND_METADATA: _ClassVar[DifferenceKind]
    DIFFERENCE_KIND_TYPE: _ClassVar[DifferenceKind]
ENTRY_KIND_UNSPECIFIED: EntryKind
ENTRY_KIND_FILE: EntryKind
ENTRY_KIND_DIRECTORY: EntryKind
ENTRY_KIND_SYMLINK: EntryKind
ENTRY_KIND_CHAR_DEVICE: EntryKind
ENTRY_KIND_BLOCK_DEVICE: EntryKind
ENTRY_KIND_FIFO: EntryKind
ENTRY_KIND_HARDLINK: EntryKind
ACTION_UNSPECIFIED: Action
ACTION_SKIP: Action
ACTION_SEND: Action
ACTION_DONE: Action
ACTION_FAILED: Action
ACTION_DELTA: Action
ENCODING_UNSPECIFIED: Encoding
ENCODING_RAW: Encoding
ENCODING_ZSTD: Encoding
ENCODING_ZSTD_STREAM_START: Encoding
ENCODING_ZSTD_STREAM_NEXT: Encoding
DIFFERENCE_KIND_UNSPECIFIED: DifferenceKind
DIFFERENCE_KIND_MISSING: DifferenceKind
DIFFERENCE_KIND_EXTRA: DifferenceKind
DIFFERENCE_KIND_CONTENT: DifferenceKind
DIFFERENCE_KIND_METADATA: DifferenceKind
DIFFERENCE_KIND_TYPE: DifferenceKind

class HelloRequest(_message.Message):
    __slots__ = ("protocol_version", "sender_version", "source_hostname", "exclude_rules", "mirror_deletions", "compare_content", "probe")
    PROTOCOL_VERSION_FIELD_NUMBER: _ClassVar[int]
    SENDER_VERSION_FIELD_NUMBER: _ClassVar[int]
    SOURCE_HOSTNAME_FIELD_NUMBER: _ClassVar[int]
    EXCLUDE_RULES_FIELD_NUMBER: _ClassVar[int]
    MIRROR_DELETIONS_FIELD_NUMBER: _ClassVar[int]
    COMPARE_CONTENT_FIELD_NUMBER: _ClassVar[int]
    PROBE_FIELD_NUMBER: _ClassVar[int]
    protocol_version: int
    sender_version: str
    source_hostname: str
    exclude_rules: _containers.RepeatedScalarFieldContainer[bytes]
    mirror_deletions: bool
    compare_content: bool
    probe: bool
    def __init__(self, protocol_version: _Optional[int] = ..., sender_version: _Optional[str] = ..., source_hostname: _Optional[str] = ..., exclude_rules: _Optional[_Iterable[bytes]] = ..., mirror_deletions: _Optional[bool] = ..., compare_content: _Optional[bool] = ..., probe: _Optional[bool] = ...) -> None: ...

class HelloResponse(_message.Message):
    __slots__ = ("protocol_version", "receiver_version", "session_id", "receiver_time_unix_ns", "max_frame_raw_bytes", "max_message_bytes", "free_bytes", "free_inodes", "receiver_is_root", "sync_group_bytes", "target_os_id", "target_os_like", "target_os_version")
    PROTOCOL_VERSION_FIELD_NUMBER: _ClassVar[int]
    RECEIVER_VERSION_FIELD_NUMBER: _ClassVar[int]
    SESSION_ID_FIELD_NUMBER: _ClassVar[int]
    RECEIVER_TIME_UNIX_NS_FIELD_NUMBER: _ClassVar[int]
    MAX_FRAME_RAW_BYTES_FIELD_NUMBER: _ClassVar[int]
    MAX_MESSAGE_BYTES_FIELD_NUMBER: _ClassVar[int]
    FREE_BYTES_FIELD_NUMBER: _ClassVar[int]
    FREE_INODES_FIELD_NUMBER: _ClassVar[int]
    RECEIVER_IS_ROOT_FIELD_NUMBER: _ClassVar[int]
    SYNC_GROUP_BYTES_FIELD_NUMBER: _ClassVar[int]
    TARGET_OS_ID_FIELD_NUMBER: _ClassVar[int]
    TARGET_OS_LIKE_FIELD_NUMBER: _ClassVar[int]
    TARGET_OS_VERSION_FIELD_NUMBER: _ClassVar[int]
    protocol_version: int
    receiver_version: str
    session_id: str
    receiver_time_unix_ns: int
    max_frame_raw_bytes: int
    max_message_bytes: int
    free_bytes: int
    free_inodes: int
    receiver_is_root: bool
    sync_group_bytes: int
    target_os_id: str
    target_os_like: str
    target_os_version: str
    def __init__(self, protocol_version: _Optional[int] = ..., receiver_version: _Optional[str] = ..., session_id: _Optional[str] = ..., receiver_time_unix_ns: _Optional[int] = ..., max_frame_raw_bytes: _Optional[int] = ..., max_message_bytes: _Optional[int] = ..., free_bytes: _Optional[int] = ..., free_inodes: _Optional[int] = ..., receiver_is_root: _Optional[bool] = ..., sync_group_bytes: _Optional[int] = ..., target_os_id: _Optional[str] = ..., target_os_like: _Optional[str] = ..., target_os_version: _Optional[str] = ...) -> None: ...

class Xattr(_message.Message):
    __slots__ = ("name", "value")
    NAME_FIELD_NUMBER: _ClassVar[int]
    VALUE_FIELD_NUMBER: _ClassVar[int]
    name: bytes
    value: bytes
    def __init__(self, name: _Optional[bytes] = ..., value: _Optional[bytes] = ...) -> None: ...

class Entry(_message.Message):
    __slots__ = ("id", "path", "kind", "mode", "uid", "gid", "mtime_ns", "size", "link_target", "rdev", "xattrs", "ctime_ns", "content_xxh3_128")
    ID_FIELD_NUMBER: _ClassVar[int]
    PATH_FIELD_NUMBER: _ClassVar[int]
    KIND_FIELD_NUMBER: _ClassVar[int]
    MODE_FIELD_NUMBER: _ClassVar[int]
    UID_FIELD_NUMBER: _ClassVar[int]
    GID_FIELD_NUMBER: _ClassVar[int]
    MTIME_NS_FIELD_NUMBER: _ClassVar[int]
    SIZE_FIELD_NUMBER: _ClassVar[int]
    LINK_TARGET_FIELD_NUMBER: _ClassVar[int]
    RDEV_FIELD_NUMBER: _ClassVar[int]
    XATTRS_FIELD_NUMBER: _ClassVar[int]
    CTIME_NS_FIELD_NUMBER: _ClassVar[int]
    CONTENT_XXH3_128_FIELD_NUMBER: _ClassVar[int]
    id: int
    path: bytes
    kind: EntryKind
    mode: int
    uid: int
    gid: int
    mtime_ns: int
    size: int
    link_target: bytes
    rdev: int
    xattrs: _containers.RepeatedCompositeFieldContainer[Xattr]
    ctime_ns: int
    content_xxh3_128: bytes
    def __init__(self, id: _Optional[int] = ..., path: _Optional[bytes] = ..., kind: _Optional[_Union[EntryKind, str]] = ..., mode: _Optional[int] = ..., uid: _Optional[int] = ..., gid: _Optional[int] = ..., mtime_ns: _Optional[int] = ..., size: _Optional[int] = ..., link_target: _Optional[bytes] = ..., rdev: _Optional[int] = ..., xattrs: _Optional[_Iterable[_Union[Xattr, _Mapping]]] = ..., ctime_ns: _Optional[int] = ..., content_xxh3_128: _Optional[bytes] = ...) -> None: ...

class PlanRequest(_message.Message):
    __slots__ = ("session_id", "entries")
    SESSION_ID_FIELD_NUMBER: _ClassVar[int]
    ENTRIES_FIELD_NUMBER: _ClassVar[int]
    session_id: str
    entries: _containers.RepeatedCompositeFieldContainer[Entry]
    def __init__(self, session_id: _Optional[str] = ..., entries: _Optional[_Iterable[_Union[Entry, _Mapping]]] = ...) -> None: ...

class Decision(_message.Message):
    __slots__ = ("id", "action", "resume_offset", "error", "block_size", "block_hashes", "base_size")
    ID_FIELD_NUMBER: _ClassVar[int]
    ACTION_FIELD_NUMBER: _ClassVar[int]
    RESUME_OFFSET_FIELD_NUMBER: _ClassVar[int]
    ERROR_FIELD_NUMBER: _ClassVar[int]
    BLOCK_SIZE_FIELD_NUMBER: _ClassVar[int]
    BLOCK_HASHES_FIELD_NUMBER: _ClassVar[int]
    BASE_SIZE_FIELD_NUMBER: _ClassVar[int]
    id: int
    action: Action
    resume_offset: int
    error: str
    block_size: int
    block_hashes: _containers.RepeatedScalarFieldContainer[int]
    base_size: int
    def __init__(self, id: _Optional[int] = ..., action: _Optional[_Union[Action, str]] = ..., resume_offset: _Optional[int] = ..., error: _Optional[str] = ..., block_size: _Optional[int] = ..., block_hashes: _Optional[_Iterable[int]] = ..., base_size: _Optional[int] = ...) -> None: ...

class PlanResponse(_message.Message):
    __slots__ = ("decisions",)
    DECISIONS_FIELD_NUMBER: _ClassVar[int]
    decisions: _containers.RepeatedCompositeFieldContainer[Decision]
    def __init__(self, decisions: _Optional[_Iterable[_Union[Decision, _Mapping]]] = ...) -> None: ...

class Piece(_message.Message):
    __slots__ = ("file_id", "offset", "length", "xxh3_64")
    FILE_ID_FIELD_NUMBER: _ClassVar[int]
    OFFSET_FIELD_NUMBER: _ClassVar[int]
    LENGTH_FIELD_NUMBER: _ClassVar[int]
    XXH3_64_FIELD_NUMBER: _ClassVar[int]
    file_id: int
    offset: int
    length: int
    xxh3_64: int
    def __init__(self, file_id: _Optional[int] = ..., offset: _Optional[int] = ..., length: _Optional[int] = ..., xxh3_64: _Optional[int] = ...) -> None: ...

class DataFrame(_message.Message):
    __slots__ = ("encoding", "payload", "raw_size", "pieces")
    ENCODING_FIELD_NUMBER: _ClassVar[int]
    PAYLOAD_FIELD_NUMBER: _ClassVar[int]
    RAW_SIZE_FIELD_NUMBER: _ClassVar[int]
    PIECES_FIELD_NUMBER: _ClassVar[int]
    encoding: Encoding
    payload: bytes
    raw_size: int
    pieces: _containers.RepeatedCompositeFieldContainer[Piece]
    def __init__(self, encoding: _Optional[_Union[Encoding, str]] = ..., payload: _Optional[bytes] = ..., raw_size: _Optional[int] = ..., pieces: _Optional[_Iterable[_Union[Piece, _Mapping]]] = ...) -> None: ...

class FileEnd(_message.Message):
    __slots__ = ("file_id", "size", "xxh3_128", "unchanged")
    FILE_ID_FIELD_NUMBER: _ClassVar[int]
    SIZE_FIELD_NUMBER: _ClassVar[int]
    XXH3_128_FIELD_NUMBER: _ClassVar[int]
    UNCHANGED_FIELD_NUMBER: _ClassVar[int]
    file_id: int
    size: int
    xxh3_128: bytes
    unchanged: bool
    def __init__(self, file_id: _Optional[int] = ..., size: _Optional[int] = ..., xxh3_128: _Optional[bytes] = ..., unchanged: _Optional[bool] = ...) -> None: ...

class TransferRequest(_message.Message):
    __slots__ = ("session_id", "frame", "ends", "abandoned_file_ids", "restarts")
    SESSION_ID_FIELD_NUMBER: _ClassVar[int]
    FRAME_FIELD_NUMBER: _ClassVar[int]
    ENDS_FIELD_NUMBER: _ClassVar[int]
    ABANDONED_FILE_IDS_FIELD_NUMBER: _ClassVar[int]
    RESTARTS_FIELD_NUMBER: _ClassVar[int]
    session_id: str
    frame: DataFrame
    ends: _containers.RepeatedCompositeFieldContainer[FileEnd]
    abandoned_file_ids: _containers.RepeatedScalarFieldContainer[int]
    restarts: _containers.RepeatedCompositeFieldContainer[Entry]
    def __init__(self, session_id: _Optional[str] = ..., frame: _Optional[_Union[DataFrame, _Mapping]] = ..., ends: _Optional[_Iterable[_Union[FileEnd, _Mapping]]] = ..., abandoned_file_ids: _Optional[_Iterable[int]] = ..., restarts: _Optional[_Iterable[_Union[Entry, _Mapping]]] = ...) -> None: ...

class FileAck(_message.Message):
    __slots__ = ("file_id", "durable_offset", "committed", "error")
    FILE_ID_FIELD_NUMBER: _ClassVar[int]
    DURABLE_OFFSET_FIELD_NUMBER: _ClassVar[int]
    COMMITTED_FIELD_NUMBER: _ClassVar[int]
    ERROR_FIELD_NUMBER: _ClassVar[int]
    file_id: int
    durable_offset: int
    committed: bool
    error: str
    def __init__(self, file_id: _Optional[int] = ..., durable_offset: _Optional[int] = ..., committed: _Optional[bool] = ..., error: _Optional[str] = ...) -> None: ...

class TransferResponse(_message.Message):
    __slots__ = ("acks", "raw_bytes_durable")
    ACKS_FIELD_NUMBER: _ClassVar[int]
    RAW_BYTES_DURABLE_FIELD_NUMBER: _ClassVar[int]
    acks: _containers.RepeatedCompositeFieldContainer[FileAck]
    raw_bytes_durable: int
    def __init__(self, acks: _Optional[_Iterable[_Union[FileAck, _Mapping]]] = ..., raw_bytes_durable: _Optional[int] = ...) -> None: ...

class FinishRequest(_message.Message):
    __slots__ = ("session_id",)
    SESSION_ID_FIELD_NUMBER: _ClassVar[int]
    session_id: str
    def __init__(self, session_id: _Optional[str] = ...) -> None: ...

class FinishResponse(_message.Message):
    __slots__ = ("hardlinks", "directories", "warnings", "failed", "deleted")
    HARDLINKS_FIELD_NUMBER: _ClassVar[int]
    DIRECTORIES_FIELD_NUMBER: _ClassVar[int]
    WARNINGS_FIELD_NUMBER: _ClassVar[int]
    FAILED_FIELD_NUMBER: _ClassVar[int]
    DELETED_FIELD_NUMBER: _ClassVar[int]
    hardlinks: int
    directories: int
    warnings: _containers.RepeatedScalarFieldContainer[str]
    failed: int
    deleted: int
    def __init__(self, hardlinks: _Optional[int] = ..., directories: _Optional[int] = ..., warnings: _Optional[_Iterable[str]] = ..., failed: _Optional[int] = ..., deleted: _Optional[int] = ...) -> None: ...

class StatusRequest(_message.Message):
    __slots__ = ("session_id",)
    SESSION_ID_FIELD_NUMBER: _ClassVar[int]
    session_id: str
    def __init__(self, session_id: _Optional[str] = ...) -> None: ...

class StatusResponse(_message.Message):
    __slots__ = ("session_id", "entries_planned", "files_to_send", "files_committed", "bytes_durable", "finished", "bytes_to_send")
    SESSION_ID_FIELD_NUMBER: _ClassVar[int]
    ENTRIES_PLANNED_FIELD_NUMBER: _ClassVar[int]
    FILES_TO_SEND_FIELD_NUMBER: _ClassVar[int]
    FILES_COMMITTED_FIELD_NUMBER: _ClassVar[int]
    BYTES_DURABLE_FIELD_NUMBER: _ClassVar[int]
    FINISHED_FIELD_NUMBER: _ClassVar[int]
    BYTES_TO_SEND_FIELD_NUMBER: _ClassVar[int]
    session_id: str
    entries_planned: int
    files_to_send: int
    files_committed: int
    bytes_durable: int
    finished: bool
    bytes_to_send: int
    def __init__(self, session_id: _Optional[str] = ..., entries_planned: _Optional[int] = ..., files_to_send: _Optional[int] = ..., files_committed: _Optional[int] = ..., bytes_durable: _Optional[int] = ..., finished: _Optional[bool] = ..., bytes_to_send: _Optional[int] = ...) -> None: ...

class VerifyRequest(_message.Message):
    __slots__ = ("session_id", "entries")
    SESSION_ID_FIELD_NUMBER: _ClassVar[int]
    ENTRIES_FIELD_NUMBER: _ClassVar[int]
    session_id: str
    entries: _containers.RepeatedCompositeFieldContainer[Entry]
    def __init__(self, session_id: _Optional[str] = ..., entries: _Optional[_Iterable[_Union[Entry, _Mapping]]] = ...) -> None: ...

class Difference(_message.Message):
    __slots__ = ("path", "kind", "detail")
    PATH_FIELD_NUMBER: _ClassVar[int]
    KIND_FIELD_NUMBER: _ClassVar[int]
    DETAIL_FIELD_NUMBER: _ClassVar[int]
    path: bytes
    kind: DifferenceKind
    detail: str
    def __init__(self, path: _Optional[bytes] = ..., kind: _Optional[_Union[DifferenceKind, str]] = ..., detail: _Optional[str] = ...) -> None: ...

class VerifyResponse(_message.Message):
    __slots__ = ("differences", "checked")
    DIFFERENCES_FIELD_NUMBER: _ClassVar[int]
    CHECKED_FIELD_NUMBER: _ClassVar[int]
    differences: _containers.RepeatedCompositeFieldContainer[Difference]
    checked: int
    def __init__(self, differences: _Optional[_Iterable[_Union[Difference, _Mapping]]] = ..., checked: _Optional[int] = ...) -> None: ...
