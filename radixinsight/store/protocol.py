"""Pure pieces of the ClickHouse HTTP protocol, as clickhouse-connect speaks it.

Kept free of sockets and chDB so each rule can be tested alone. The rules come
from clickhouse-connect 1.12 (`driver/_backend/httpcommon.py`, `http_sync.py`).
"""

from __future__ import annotations

import json
import re
import zlib
from collections.abc import Iterable, Iterator
from dataclasses import dataclass, field

import lz4.frame

try:  # Python 3.14 ships zstd; older ones get it from backports.zstd (a clickhouse-connect dep)
    from compression import zstd  # type: ignore[import-not-found]
except ImportError:  # pragma: no cover - depends on the interpreter
    from backports import zstd

# URL parameters the HTTP layer consumes; everything else (bar param_*) is an engine setting.
TRANSPORT_PARAMS = frozenset(
    {
        "query", "database", "default_format", "user", "password", "buffer_size",
        "session_id", "session_timeout", "session_check", "query_id", "quota_key",
        "compress", "decompress", "wait_end_of_query", "client_protocol_version", "role",
        "send_progress_in_http_headers", "http_headers_progress_interval_ms",
        "enable_http_compression", "http_zlib_compression_level",
    }
)
BIND_PREFIX = "param_"

_CODE_RE = re.compile(r"Code: (\d+)")
_NAME_RE = re.compile(r"\(([A-Z][A-Z0-9_]+)\)")
# ClickHouse answers these codes with a 4xx status; everything else is a 500.
_STATUS_BY_CODE = {62: 400, 27: 400, 60: 404, 81: 404, 516: 403, 373: 409}

UNKNOWN_EXCEPTION = 1002


@dataclass(frozen=True)
class RequestParams:
    """A request's URL parameters sorted into what each layer needs."""

    query: str = ""
    database: str | None = None
    session_id: str | None = None
    session_timeout_s: float = 60.0
    query_id: str = ""
    default_format: str = "TabSeparated"
    settings: dict[str, str] = field(default_factory=dict)
    bind_params: dict[str, str] = field(default_factory=dict)


def parse_params(params: dict[str, str]) -> RequestParams:
    """Split flat URL parameters into transport values, engine settings and bind params."""
    settings = {k: v for k, v in params.items()
                if k not in TRANSPORT_PARAMS and not k.startswith(BIND_PREFIX)}
    binds = {k[len(BIND_PREFIX):]: v for k, v in params.items() if k.startswith(BIND_PREFIX)}
    try:
        timeout = float(params.get("session_timeout", 60))
    except ValueError:
        timeout = 60.0
    return RequestParams(
        query=params.get("query", ""),
        database=params.get("database") or None,
        session_id=params.get("session_id") or None,
        session_timeout_s=timeout,
        query_id=params.get("query_id", ""),
        default_format=params.get("default_format", "TabSeparated"),
        settings=settings,
        bind_params=binds,
    )


def decompress_stream(chunks: Iterable[bytes], encoding: str | None) -> Iterator[bytes]:
    """Undo a request's Content-Encoding chunk by chunk.

    clickhouse-connect compresses each Native block as its own lz4 (or zstd)
    frame, so a body is a run of concatenated frames: restart the decoder on
    the unused tail of every finished frame.
    """
    encoding = (encoding or "").strip().lower()
    if encoding in ("", "identity"):
        yield from chunks
        return
    new_decoder = _DECODERS.get(encoding)
    if new_decoder is None:
        raise ProtocolError(f"Unsupported Content-Encoding '{encoding}'", code=UNKNOWN_EXCEPTION)
    decoder = new_decoder()
    for chunk in chunks:
        data = chunk
        while data:
            out = decoder.decompress(data)
            if out:
                yield out
            if not decoder.eof:
                break
            data = decoder.unused_data
            decoder = new_decoder()


class _Lz4Decoder:
    """lz4.frame's decompressor with the zlib-style eof/unused_data surface."""

    def __init__(self) -> None:
        self._d = lz4.frame.LZ4FrameDecompressor()

    def decompress(self, data: bytes) -> bytes:
        return self._d.decompress(data)

    @property
    def eof(self) -> bool:
        return self._d.eof

    @property
    def unused_data(self) -> bytes:
        return self._d.unused_data


_DECODERS = {
    "lz4": _Lz4Decoder,
    "zstd": zstd.ZstdDecompressor,
    "gzip": lambda: zlib.decompressobj(wbits=31),
    "x-gzip": lambda: zlib.decompressobj(wbits=31),
    "deflate": lambda: zlib.decompressobj(),
}


class ProtocolError(Exception):
    """A request this server cannot interpret; carries a ClickHouse error code."""

    def __init__(self, message: str, code: int = UNKNOWN_EXCEPTION):
        super().__init__(message)
        self.code = code


_INSERT_START = re.compile(rb"\s*(?:--[^\n]*\n\s*)*INSERT\s", re.IGNORECASE)
_FORMAT_TAIL = re.compile(
    r"^(?P<head>.*?)\s+FORMAT\s+(?P<fmt>\w+)\s*;?\s*$", re.IGNORECASE | re.DOTALL)


def split_insert_format(sql: str) -> tuple[str, str] | None:
    """`INSERT ... FORMAT Native` -> ("INSERT ...", "Native"); None for any other statement.

    Only a FORMAT clause outside quotes counts, so a column named `format` is safe.
    """
    if not _INSERT_START.match(sql.encode()):
        return None
    match = _FORMAT_TAIL.match(sql)
    if match is None or _inside_quotes(sql, match.start("fmt")):
        return None
    return match.group("head").strip(), match.group("fmt")


def find_insert_data(head: bytes) -> int | None:
    """Offset where the data of an `INSERT ... FORMAT X\\n<data>` body starts.

    ClickHouse reads the statement up to the format name plus one line break;
    the rest of the body is data. None when `head` is no such statement (yet).
    """
    if not _INSERT_START.match(head):
        return None
    pos, quote = 0, None
    while pos < len(head):
        ch = head[pos:pos + 1]
        if quote:
            if ch == b"\\":
                pos += 1
            elif ch == quote:
                quote = None
        elif ch in (b"'", b'"', b"`"):
            quote = ch
        elif head[pos:pos + 6].upper() == b"FORMAT" and head[pos - 1:pos].isspace():
            match = re.match(rb"FORMAT\s+\w+[ \t]*(\r?\n)?", head[pos:], re.IGNORECASE)
            if match and (match.group(1) or match.end() < len(head[pos:])):
                return pos + match.end()
        pos += 1
    return None


def _inside_quotes(sql: str, offset: int) -> bool:
    quote = None
    escaped = False
    for ch in sql[:offset]:
        if escaped:
            escaped = False
        elif ch == "\\" and quote:
            escaped = True
        elif quote:
            quote = None if ch == quote else quote
        elif ch in "'\"`":
            quote = ch
    return quote is not None


_TRAILING_FORMAT = re.compile(r"\bFORMAT\s+(\w+)\s*;?\s*$", re.IGNORECASE)


def trailing_format(sql: str) -> str | None:
    """The output format a statement names itself (`... FORMAT Native`), if any."""
    match = _TRAILING_FORMAT.search(sql)
    if match is None or _inside_quotes(sql, match.start(1)):
        return None
    return match.group(1)


def parse_multipart(body: bytes, content_type: str) -> dict[str, str]:
    """Text fields of a multipart/form-data body (clickhouse-connect sends the query
    and bind parameters this way when they are too long for a URL)."""
    from email.parser import BytesParser
    from email.policy import HTTP

    message = BytesParser(policy=HTTP).parsebytes(
        f"Content-Type: {content_type}\r\n\r\n".encode() + body)
    fields: dict[str, str] = {}
    for part in message.iter_parts():
        name = part.get_param("name", header="content-disposition")
        if part.get_filename():
            raise ProtocolError("External data tables are not supported by this store server")
        if name:
            fields[str(name)] = part.get_payload(decode=True).decode()
    return fields


def error_code(message: str) -> int:
    """ClickHouse error code in an exception text, 1002 (UNKNOWN_EXCEPTION) if none."""
    match = _CODE_RE.search(message)
    return int(match.group(1)) if match else UNKNOWN_EXCEPTION


def error_status(code: int) -> int:
    """HTTP status ClickHouse would send for an error code."""
    return _STATUS_BY_CODE.get(code, 500)


def error_body(message: str, code: int, version: str) -> bytes:
    """A ClickHouse-style error text: `Code: N. DB::Exception: ... (version V)`."""
    text = message.strip() or "Unknown error"
    if not text.startswith("Code:"):
        text = f"Code: {code}. DB::Exception: {text}"
    if "(version " not in text:
        text = f"{text} (version {version})"
    return (text + "\n").encode()


def summary_header(
    read_rows: int = 0, read_bytes: int = 0, written_rows: int = 0, written_bytes: int = 0,
    result_rows: int = 0, elapsed_ns: int = 0,
) -> str:
    """The `X-ClickHouse-Summary` JSON (ClickHouse sends every number as a string)."""
    return json.dumps({
        "read_rows": str(read_rows), "read_bytes": str(read_bytes),
        "written_rows": str(written_rows), "written_bytes": str(written_bytes),
        "total_rows_to_read": str(read_rows), "result_rows": str(result_rows),
        "result_bytes": "0", "elapsed_ns": str(elapsed_ns),
    }, separators=(",", ":"))
