"""ClickHouse HTTP interface over one embedded chDB directory.

chDB has no server and a data directory can be opened by one process only, so
the process that owns the store serves it here and every other process uses an
unmodified clickhouse-connect client against `http://127.0.0.1:8123`.
Request shapes handled (see clickhouse-connect's `_backend/httpcommon.py`):
SQL in the body or in `?query=`; `INSERT ... FORMAT X` followed by data in the
body, or in `?query=` with the data as body (insert_arrow); Content-Encoding
lz4/zstd/gzip/deflate; bind parameters as `param_*`; settings as parameters.
"""

from __future__ import annotations

import argparse
import logging
import signal
import socket
import sys
import threading
import uuid
from collections.abc import Iterable, Iterator
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer
from pathlib import Path
from typing import Any
from urllib.parse import parse_qsl, urlsplit

from radixinsight.store.engine import ChdbEngine, InsertOutcome, QueryOutcome
from radixinsight.store.protocol import (
    ProtocolError,
    RequestParams,
    decompress_stream,
    error_body,
    error_code,
    error_status,
    find_insert_data,
    parse_multipart,
    parse_params,
    split_insert_format,
    summary_header,
    trailing_format,
)

log = logging.getLogger(__name__)

_READ_SIZE = 1 << 20
_MAX_STATEMENT_BYTES = 1 << 20  # an INSERT statement longer than this is not looked for
_CONTENT_TYPES = {
    "Native": "application/octet-stream", "RowBinary": "application/octet-stream",
    "Arrow": "application/octet-stream", "ArrowStream": "application/octet-stream",
    "Parquet": "application/octet-stream", "JSON": "application/json; charset=UTF-8",
    "JSONEachRow": "application/x-ndjson; charset=UTF-8",
}


class _Handler(BaseHTTPRequestHandler):
    protocol_version = "HTTP/1.1"  # keep-alive: clickhouse-connect pools connections
    server: _HttpServer

    def setup(self) -> None:
        super().setup()
        # Without it, header and body writes wait on delayed ACKs: 52 ms -> 5 ms per request.
        self.connection.setsockopt(socket.IPPROTO_TCP, socket.TCP_NODELAY, 1)

    def log_message(self, format: str, *args: Any) -> None:
        log.debug("%s " + format, self.address_string(), *args)

    def do_GET(self) -> None:
        self._dispatch()

    def do_POST(self) -> None:
        self._dispatch()

    def do_HEAD(self) -> None:
        self._reply(200, b"", {})

    # ---- request handling ---------------------------------------------------

    def _dispatch(self) -> None:
        url = urlsplit(self.path)
        if url.path in ("/ping", "/replicas_status"):
            self._drain()
            self._reply(200, b"Ok.\n", {"Content-Type": "text/html; charset=UTF-8"})
            return
        if url.path not in ("", "/"):
            self._drain()
            self._reply(404, b"There is no handle " + url.path.encode() + b"\n", {})
            return
        params = dict(parse_qsl(url.query, keep_blank_values=True))
        query_id = params.get("query_id") or str(uuid.uuid4())
        engine = self.server.engine
        body = self._body()
        try:
            content_type = self.headers.get("Content-Type", "")
            if content_type.startswith("multipart/form-data"):
                params.update(parse_multipart(b"".join(body), content_type))
                body = iter(())
            req = parse_params(params)
            data = decompress_stream(body, self.headers.get("Content-Encoding"))
            outcome = _execute(engine, req, data)
        except Exception as ex:  # every failure becomes a ClickHouse error response
            self._drain_iter(body)
            self._reply_error(ex, query_id)
            return
        headers = {"X-ClickHouse-Query-Id": query_id, "X-ClickHouse-Timezone": engine.timezone,
                   "X-ClickHouse-Server-Display-Name": "radixinsight-store"}
        if isinstance(outcome, InsertOutcome):
            headers["X-ClickHouse-Summary"] = summary_header(
                written_rows=outcome.written_rows, written_bytes=outcome.written_bytes,
                elapsed_ns=outcome.elapsed_ns)
            self._reply(200, b"", headers)
            return
        headers["X-ClickHouse-Summary"] = summary_header(
            read_rows=outcome.read_rows, read_bytes=outcome.read_bytes,
            elapsed_ns=outcome.elapsed_ns)
        if outcome.result_format:
            headers["X-ClickHouse-Format"] = outcome.result_format
        headers["Content-Type"] = _CONTENT_TYPES.get(
            outcome.result_format or "", "text/tab-separated-values; charset=UTF-8")
        self._reply(200, outcome.body, headers)

    def _body(self) -> Iterator[bytes]:
        """The raw request body as chunks (Content-Length or chunked transfer)."""
        if "chunked" in self.headers.get("Transfer-Encoding", "").lower():
            return _read_chunked(self.rfile)
        return _read_length(self.rfile, int(self.headers.get("Content-Length") or 0))

    def _drain(self) -> None:
        self._drain_iter(self._body())

    @staticmethod
    def _drain_iter(chunks: Iterable[bytes]) -> None:
        for _ in chunks:
            pass

    def _reply_error(self, ex: Exception, query_id: str) -> None:
        message = str(ex)
        code = getattr(ex, "code", None) or error_code(message)
        log.info("query %s failed: %s", query_id, message)
        body = error_body(message, code, self.server.engine.version)
        self._reply(error_status(code), body, {
            "X-ClickHouse-Exception-Code": str(code), "X-ClickHouse-Query-Id": query_id,
            "Content-Type": "text/plain; charset=UTF-8"})

    def _reply(self, status: int, body: bytes, headers: dict[str, str]) -> None:
        self.send_response(status)
        for name, value in headers.items():
            self.send_header(name, value)
        self.send_header("Content-Length", str(len(body)))
        self.end_headers()
        if body and self.command != "HEAD":
            self.wfile.write(body)


def _execute(engine: ChdbEngine, req: RequestParams,
             data: Iterator[bytes]) -> QueryOutcome | InsertOutcome:
    """Route one request: a data-carrying INSERT streams into chDB, anything else runs as SQL."""
    if req.query:
        insert = split_insert_format(req.query)
        if insert is not None:
            return engine.insert(insert[0], insert[1], data, req)
        rest = b"".join(data).decode()
        sql = f"{req.query}\n{rest}" if rest else req.query
        return engine.query(sql, req, trailing_format(sql))
    head, offset, rest = _peek_statement(data)
    if offset is not None:
        insert = split_insert_format(head[:offset].decode())
        if insert is not None:
            return engine.insert(insert[0], insert[1], _prepend(head[offset:], rest), req)
    sql = (head + b"".join(rest)).decode()
    if not sql.strip():
        raise ProtocolError("Empty query", code=62)
    return engine.query(sql, req, trailing_format(sql))


def _peek_statement(data: Iterator[bytes]) -> tuple[bytes, int | None, Iterator[bytes]]:
    """Read just enough of the body to find where an INSERT's inline data begins."""
    head = b""
    for chunk in data:
        head += chunk
        offset = find_insert_data(head)
        if offset is not None or len(head) > _MAX_STATEMENT_BYTES:
            return head, offset, data
    return head, find_insert_data(head + b"\n"), data


def _prepend(first: bytes, rest: Iterator[bytes]) -> Iterator[bytes]:
    if first:
        yield first
    yield from rest


def _read_length(rfile: Any, length: int) -> Iterator[bytes]:
    while length > 0:
        chunk = rfile.read(min(length, _READ_SIZE))
        if not chunk:
            raise ConnectionError("client closed the connection mid-body")
        length -= len(chunk)
        yield chunk


def _read_chunked(rfile: Any) -> Iterator[bytes]:
    while True:
        size = int(rfile.readline(65537).split(b";")[0].strip() or b"0", 16)
        if size == 0:
            while rfile.readline(65537) not in (b"\r\n", b"\n", b""):
                pass  # trailers
            return
        yield rfile.read(size)
        rfile.readline()


class _HttpServer(ThreadingHTTPServer):
    daemon_threads = True
    allow_reuse_address = True
    engine: ChdbEngine


class StoreServer:
    """A ClickHouse-compatible HTTP server owning one chDB directory.

    `port=0` picks a free port (read it back from `.port`). Runs in a thread of
    the calling process, which therefore must not open another chDB directory.
    """

    def __init__(self, path: Path, host: str = "127.0.0.1", port: int = 8123):
        self.path = Path(path)
        self._httpd = _HttpServer((host, port), _Handler)
        self._httpd.engine = ChdbEngine(self.path)
        self._thread: threading.Thread | None = None

    @property
    def host(self) -> str:
        return str(self._httpd.server_address[0])

    @property
    def port(self) -> int:
        return int(self._httpd.server_address[1])

    @property
    def url(self) -> str:
        return f"http://{self.host}:{self.port}"

    def start(self) -> StoreServer:
        self._thread = threading.Thread(target=self._httpd.serve_forever,
                                        name="store-server", daemon=True)
        self._thread.start()
        return self

    def serve_forever(self) -> None:
        self._httpd.serve_forever()

    def stop(self) -> None:
        if self._thread is not None:
            self._httpd.shutdown()
            self._thread.join(timeout=10)
        self._httpd.server_close()
        self._httpd.engine.close()

    def __enter__(self) -> StoreServer:
        return self.start()

    def __exit__(self, *exc: object) -> None:
        self.stop()


def serve(path: Path, host: str = "127.0.0.1", port: int = 8123) -> None:
    """Serve the store at `path` until interrupted (`radixinsight store serve`)."""
    server = StoreServer(path, host, port)
    # SIGTERM (from a supervisor or a test fixture) shuts down as cleanly as Ctrl-C.
    signal.signal(signal.SIGTERM, _raise_interrupt)
    # One parseable line, so a parent process can learn the port when it asked for 0.
    print(f"radixinsight store serving {server.path} on {server.url}", flush=True)
    try:
        server.serve_forever()
    except KeyboardInterrupt:
        pass
    finally:
        server.stop()


def _raise_interrupt(signum: int, frame: object) -> None:
    raise KeyboardInterrupt


def main(argv: list[str] | None = None) -> None:
    parser = argparse.ArgumentParser(prog="radixinsight store serve")
    parser.add_argument("--path", type=Path, default=Path.cwd() / ".radixinsight" / "store")
    parser.add_argument("--host", default="127.0.0.1")
    parser.add_argument("--port", type=int, default=8123)
    args = parser.parse_args(argv)
    logging.basicConfig(level=logging.WARNING, stream=sys.stderr)
    serve(args.path, args.host, args.port)


if __name__ == "__main__":
    main()
