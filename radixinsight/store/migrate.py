"""Versioned ClickHouse migrations: `schemas/clickhouse/NNNN_name.sql`, applied in order.

Each applied file is recorded in `schema_migrations` with its SHA-256; a file that
changed after it was applied is refused (write a new migration instead). chDB and
ClickHouse have no transactional DDL, so statements use IF NOT EXISTS and a file
that failed halfway can simply be run again once fixed.
"""

from __future__ import annotations

import hashlib
import re
from dataclasses import dataclass
from pathlib import Path

from clickhouse_connect.driver.client import Client

MIGRATIONS_DIR = Path(__file__).resolve().parents[2] / "schemas" / "clickhouse"
_FILE_RE = re.compile(r"^(\d{4})_([a-z0-9_]+)\.sql$")

_CREATE_LEDGER = """
CREATE TABLE IF NOT EXISTS schema_migrations
(
    version    UInt32,
    name       String,
    checksum   String,
    applied_at DateTime64(3, 'UTC') DEFAULT now64(3)
)
ENGINE = MergeTree
ORDER BY version
"""


class MigrationError(RuntimeError):
    """The migration files and the database disagree; nothing further was applied."""


@dataclass(frozen=True)
class Migration:
    version: int
    name: str
    sql: str
    checksum: str

    @property
    def filename(self) -> str:
        return f"{self.version:04d}_{self.name}.sql"


def load_migrations(directory: Path = MIGRATIONS_DIR) -> list[Migration]:
    """All migration files in version order; a repeated version number is an error."""
    found: dict[int, Migration] = {}
    for path in sorted(directory.glob("*.sql")):
        match = _FILE_RE.match(path.name)
        if match is None:
            raise MigrationError(f"{path.name}: migration files are named NNNN_lower_name.sql")
        raw = path.read_bytes()
        migration = Migration(int(match.group(1)), match.group(2), raw.decode(),
                              hashlib.sha256(raw).hexdigest())
        if migration.version in found:
            raise MigrationError(
                f"{path.name} and {found[migration.version].filename} share version "
                f"{migration.version:04d}")
        found[migration.version] = migration
    return [found[v] for v in sorted(found)]


def split_statements(sql: str) -> list[str]:
    """Statements separated by `;`, ignoring `;` inside quotes and `--` comments."""
    statements, current, quote, i = [], [], None, 0
    while i < len(sql):
        ch = sql[i]
        if quote:
            current.append(ch)
            if ch == "\\" and i + 1 < len(sql):
                current.append(sql[i + 1])
                i += 1
            elif ch == quote:
                quote = None
        elif ch == "-" and sql.startswith("--", i):
            end = sql.find("\n", i)
            i = len(sql) if end < 0 else end
            continue
        elif ch in "'\"`":
            quote = ch
            current.append(ch)
        elif ch == ";":
            statements.append("".join(current))
            current = []
        else:
            current.append(ch)
        i += 1
    statements.append("".join(current))
    return [s.strip() for s in statements if s.strip()]


def applied_migrations(client: Client) -> dict[int, tuple[str, str]]:
    """version -> (name, checksum) of what the database has recorded."""
    client.command(_CREATE_LEDGER)
    rows = client.query("SELECT version, name, checksum FROM schema_migrations").result_rows
    return {int(version): (name, checksum) for version, name, checksum in rows}


def pending_migrations(migrations: list[Migration],
                       applied: dict[int, tuple[str, str]]) -> list[Migration]:
    """Files not yet applied; raises if an applied file changed or disappeared."""
    on_disk = {m.version: m for m in migrations}
    for version, (name, checksum) in sorted(applied.items()):
        migration = on_disk.get(version)
        if migration is None:
            raise MigrationError(f"applied migration {version:04d}_{name}.sql is missing")
        if migration.checksum != checksum:
            raise MigrationError(
                f"{migration.filename} changed after it was applied (checksum "
                f"{checksum[:12]} -> {migration.checksum[:12]}); restore it and add a new "
                "migration instead")
    return [m for m in migrations if m.version not in applied]


def migrate(client: Client, directory: Path = MIGRATIONS_DIR) -> list[str]:
    """Apply pending migrations in order to the client's database; return their file names."""
    pending = pending_migrations(load_migrations(directory), applied_migrations(client))
    done = []
    for migration in pending:
        for statement in split_statements(migration.sql):
            try:
                client.command(statement)
            except Exception as ex:
                raise MigrationError(f"{migration.filename} failed: {ex}") from ex
        client.insert("schema_migrations",
                      [[migration.version, migration.name, migration.checksum]],
                      column_names=["version", "name", "checksum"])
        done.append(migration.filename)
    return done
