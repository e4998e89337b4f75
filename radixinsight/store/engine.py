"""One chDB data directory, shared by many HTTP requests.

chDB hosts one engine per process but any number of connection handles to it;
handles run queries concurrently (the GIL is released) while each handle must
be used by one thread at a time. So: one handle per HTTP session (clickhouse-
connect sends a session_id per client by default), a fresh handle for a
session-less request, and a lock per handle. SET/USE state is per handle,
which gives ClickHouse's session semantics for free.
"""

from __future__ import annotations

import threading
import time
from collections.abc import Iterable
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import chdb

from radixinsight.store.protocol import ProtocolError, RequestParams

SESSION_IS_LOCKED = 373


@dataclass
class QueryOutcome:
    body: bytes
    result_format: str | None
    read_rows: int = 0
    read_bytes: int = 0
    elapsed_ns: int = 0


@dataclass
class InsertOutcome:
    written_rows: int
    written_bytes: int
    elapsed_ns: int


@dataclass
class _Handle:
    conn: Any
    lock: threading.Lock = field(default_factory=threading.Lock)
    settings: dict[str, str] = field(default_factory=dict)  # applied from URL params
    database: str | None = None
    timeout_s: float = 60.0
    last_used: float = field(default_factory=time.monotonic)


def _quote_value(value: str) -> str:
    return "'" + str(value).replace("\\", "\\\\").replace("'", "\\'") + "'"


def _quote_ident(name: str) -> str:
    return "`" + name.replace("\\", "\\\\").replace("`", "\\`") + "`"


def _check_setting_name(name: str) -> str:
    if not name.replace("_", "a").isalnum():
        raise ProtocolError(f"Invalid setting name '{name}'", code=115)  # UNKNOWN_SETTING
    return name


class ChdbEngine:
    """Thread-safe access to one chDB directory through per-session handles."""

    def __init__(self, path: Path):
        path.mkdir(parents=True, exist_ok=True)
        self.path = path
        self._conn_str = str(path)
        self._root = chdb.connect(self._conn_str)  # keeps the engine up between requests
        self._sessions: dict[str, _Handle] = {}
        self._sessions_lock = threading.Lock()
        self.version, self.timezone = (
            self._root.query("SELECT version(), timezone()", "TabSeparated").bytes()
            .decode().strip().split("\t")
        )

    def close(self) -> None:
        with self._sessions_lock:
            handles, self._sessions = list(self._sessions.values()), {}
        for handle in handles:
            with handle.lock:
                handle.conn.close()
        self._root.close()

    # ---- handles --------------------------------------------------------

    def _acquire(self, req: RequestParams) -> tuple[_Handle, bool]:
        """The handle for a request, locked; True when it must be closed after use."""
        if req.session_id is None:
            handle = _Handle(chdb.connect(self._conn_str))
            handle.lock.acquire()
            return handle, True
        now = time.monotonic()
        with self._sessions_lock:
            self._expire_sessions(now)
            handle = self._sessions.get(req.session_id)
            if handle is None:
                handle = _Handle(chdb.connect(self._conn_str))
                self._sessions[req.session_id] = handle
            handle.timeout_s = req.session_timeout_s
            handle.last_used = now
        if not handle.lock.acquire(timeout=5):
            raise ProtocolError(
                f"Session {req.session_id} is locked by a concurrent client. (SESSION_IS_LOCKED)",
                code=SESSION_IS_LOCKED,
            )
        return handle, False

    def _expire_sessions(self, now: float) -> None:
        for sid, handle in list(self._sessions.items()):
            if now - handle.last_used > handle.timeout_s and handle.lock.acquire(blocking=False):
                del self._sessions[sid]
                handle.conn.close()
                handle.lock.release()

    def _release(self, handle: _Handle, close: bool) -> None:
        handle.last_used = time.monotonic()
        if close:
            handle.conn.close()
        handle.lock.release()

    def _prepare(self, handle: _Handle, req: RequestParams) -> None:
        """Bring the handle's database and URL settings to what this request asks for."""
        if req.database and req.database != handle.database:
            handle.conn.query(f"USE {_quote_ident(req.database)}", "TabSeparated")
            handle.database = req.database
        for name in [n for n in handle.settings if n not in req.settings]:
            handle.conn.query(f"SET {_check_setting_name(name)} = DEFAULT", "TabSeparated")
            del handle.settings[name]
        for name, value in req.settings.items():
            if handle.settings.get(name) != value:
                handle.conn.query(
                    f"SET {_check_setting_name(name)} = {_quote_value(value)}", "TabSeparated")
                handle.settings[name] = value

    # ---- operations -----------------------------------------------------

    def query(self, sql: str, req: RequestParams, fmt: str | None) -> QueryOutcome:
        """Run one statement. `fmt` None: the caller's default format, and the
        result format is reported only when the statement yields a result set."""
        handle, close = self._acquire(req)
        try:
            self._prepare(handle, req)
            run_fmt = fmt or _with_names(req.default_format)
            result = handle.conn.query(sql, run_fmt, params=req.bind_params)
            body = result.bytes() or b""
            result_format = fmt
            if fmt is None:
                body, result_format = _strip_names(body, req.default_format)
            return QueryOutcome(body, result_format, *_stats(result))
        finally:
            self._release(handle, close)

    def insert(self, statement: str, fmt: str, data: Iterable[bytes],
               req: RequestParams) -> InsertOutcome:
        """Stream `data` (already decompressed) into `INSERT ...` through chDB's inserter."""
        handle, close = self._acquire(req)
        try:
            self._prepare(handle, req)
            inserter = handle.conn.send_insert(statement, fmt)
            try:
                for chunk in data:
                    if chunk:
                        inserter.append(chunk)
                result = inserter.finish()
            except BaseException:
                inserter.cancel()
                raise
            return InsertOutcome(result.rows_written, result.bytes_written,
                                 int(result.elapsed * 1e9))
        finally:
            self._release(handle, close)


def _with_names(default_format: str) -> str:
    # ClickHouse reports X-ClickHouse-Format only for statements with a result set;
    # chDB has no such flag, but a *WithNames format prints a header line exactly then.
    return "TabSeparatedWithNames" if default_format in ("TabSeparated", "TSV") else default_format


def _strip_names(body: bytes, default_format: str) -> tuple[bytes, str | None]:
    if default_format not in ("TabSeparated", "TSV"):
        return body, default_format if body else None
    if not body:
        return b"", None
    newline = body.find(b"\n")
    return (body[newline + 1:] if newline >= 0 else b""), "TabSeparated"


def _stats(result: Any) -> tuple[int, int, int]:
    try:
        return result.rows_read(), result.bytes_read(), int(result.elapsed() * 1e9)
    except Exception:  # older chDB results lack statistics: report zeros
        return 0, 0, 0
