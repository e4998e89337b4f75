"""Open the store: embedded chDB (`chdb:///dir`) or a ClickHouse HTTP endpoint."""

from __future__ import annotations

import fcntl
import os
from pathlib import Path
from urllib.parse import parse_qs, unquote, urlsplit

import clickhouse_connect
from clickhouse_connect.driver.client import Client

STORE_ENV = "RADIX_STORE"


class StoreError(RuntimeError):
    """The store cannot be opened; the message says what to do about it."""


def default_url() -> str:
    """`RADIX_STORE` if set, else the embedded store under the working directory."""
    return os.environ.get(STORE_ENV) or f"chdb://{Path.cwd() / '.radixinsight' / 'store'}"


def connect(url: str | None = None) -> Client:
    """A clickhouse-connect client for `url` (see `default_url` when None).

    `chdb:///abs/dir[?database=db]` runs chDB in this process; `http(s)://host:port[/db]`
    (or `?database=db`) talks to a ClickHouse server or `radixinsight store serve`.
    """
    url = url or default_url()
    parts = urlsplit(url)
    if parts.scheme == "chdb":
        return _connect_chdb(url, parts.path)
    if parts.scheme in ("http", "https"):
        return _connect_http(url)
    raise StoreError(f"Unsupported store URL '{url}': use chdb:///abs/dir or http(s)://host:port")


def _connect_chdb(url: str, path: str) -> Client:
    if not path or path in ("/memory", "/:memory:"):
        return clickhouse_connect.get_client(dsn=url)
    Path(path).mkdir(parents=True, exist_ok=True)
    try:
        return clickhouse_connect.get_client(dsn=url)
    except Exception as ex:
        if _locked_elsewhere(Path(path)):
            raise StoreError(
                f"The chDB store {path} is open in another process (it holds {path}/status). "
                "A chDB directory has one owner: run `radixinsight store serve --path "
                f"{path}` there and connect with --store http://127.0.0.1:8123 "
                "(or RADIX_STORE=http://127.0.0.1:8123)."
            ) from ex
        raise StoreError(
            f"Cannot open the chDB store {path}: {ex or type(ex).__name__}. "
            "chDB opens one data directory per process."
        ) from ex


def _locked_elsewhere(path: Path) -> bool:
    """True when some process holds ClickHouse's flock on `<dir>/status`."""
    status = path / "status"
    if not status.exists():
        return False
    with open(status, "rb") as handle:
        try:
            fcntl.flock(handle, fcntl.LOCK_EX | fcntl.LOCK_NB)
        except OSError:
            return True
        fcntl.flock(handle, fcntl.LOCK_UN)
    return False


def _connect_http(url: str) -> Client:
    parts = urlsplit(url)
    database = parse_qs(parts.query).get("database", [None])[0]
    if not database and parts.path.strip("/"):
        database = unquote(parts.path.strip("/").split("/")[0])
    return clickhouse_connect.get_client(
        interface=parts.scheme,
        host=parts.hostname or "127.0.0.1",
        port=parts.port or (8443 if parts.scheme == "https" else 8123),
        username=unquote(parts.username) if parts.username else "default",
        password=unquote(parts.password) if parts.password else "",
        database=database,
    )
