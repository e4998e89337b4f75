"""Project registry: which write keys and browser origins may send events for which project.

A JSON file (``RADIX_PROJECTS``, default ``.radixinsight/projects.json``)::

    {"projects": [{
        "project_id": "web",
        "keys": [{"id": "k1", "sha256": "<hex digest of the key>",
                  "created_at": "2026-11-25T10:00:00Z", "expires_at": null}],
        "allowed_origins": ["https://app.example.com"],
        "allow_keyless": true,
        "rate_limits": {"project_per_s": 2000, "project_burst": 4000,
                        "user_per_s": 20, "user_burst": 200},
        "event_types": {"checkout": "lifecycle"},
        "property_schemas": {"purchase": {"type": "object", "required": ["amount"],
                                          "properties": {"amount": {"type": "number"}}}}}]}

Only ``project_id`` is required. ``keys``: write keys, stored as SHA-256 digests; a key
stops working at ``expires_at`` (set by ``rotate-key --grace-s``). ``allowed_origins``:
browser origins (``scheme://host[:port]``, or ``"*"`` for any) whose requests the
collector accepts and answers with CORS headers. ``allow_keyless``: requests from an
allowed origin need no key (the browser SDK's ``init({projectId, endpoint})``).
``rate_limits``: token buckets (events per second, burst) overriding the collector's
defaults; ``0`` turns a bucket off. ``event_types`` and ``property_schemas`` are the
pipeline's validation rules.
"""

from __future__ import annotations

import hashlib
import hmac
import json
import logging
import os
import re
import secrets
import time
from dataclasses import dataclass, field, replace
from datetime import UTC, datetime
from pathlib import Path
from typing import Any

log = logging.getLogger(__name__)

RATE_LIMIT_FIELDS = ("project_per_s", "project_burst", "user_per_s", "user_burst")
_ORIGIN = re.compile(r"^[a-z][a-z0-9+.-]*://[^/?#\s]+$")


@dataclass(frozen=True)
class WriteKey:
    key_id: str
    sha256: str
    created_at: str | None = None
    expires_at: str | None = None  # ISO 8601 UTC; the key is refused from then on

    def expired(self, now: datetime) -> bool:
        return self.expires_at is not None and parse_time(self.expires_at) <= now


@dataclass(frozen=True)
class Project:
    project_id: str
    keys: tuple[WriteKey, ...] = ()
    # Pipeline rules: event name -> event_type override, and event name -> JSON Schema
    # of its properties (enforced by the validate step).
    event_types: dict[str, str] = field(default_factory=dict)
    property_schemas: dict[str, dict[str, Any]] = field(default_factory=dict)
    allowed_origins: tuple[str, ...] = ()
    allow_keyless: bool = False
    rate_limits: dict[str, float] = field(default_factory=dict)  # subset of RATE_LIMIT_FIELDS

    def origin_allowed(self, origin: str) -> bool:
        return "*" in self.allowed_origins or normalize_origin(origin) in self.allowed_origins


def hash_key(key: str) -> str:
    return hashlib.sha256(key.encode()).hexdigest()


def new_key() -> str:
    return "rk_" + secrets.token_urlsafe(24)


def default_path() -> Path:
    return Path(os.environ.get("RADIX_PROJECTS", Path.cwd() / ".radixinsight" / "projects.json"))


def utc_now() -> datetime:
    return datetime.now(UTC)


def format_time(t: datetime) -> str:
    return t.astimezone(UTC).isoformat(timespec="seconds").replace("+00:00", "Z")


def parse_time(text: str) -> datetime:
    t = datetime.fromisoformat(text.replace("Z", "+00:00"))
    return t if t.tzinfo else t.replace(tzinfo=UTC)


def normalize_origin(origin: str) -> str:
    """Origins compare case-insensitively and without a trailing slash."""
    return origin.strip().rstrip("/").lower()


def _parse_project(item: Any, where: str) -> Project:
    if not isinstance(item, dict) or not isinstance(item.get("project_id"), str):
        raise ValueError(f"{where}: each project needs a string project_id")
    pid = item["project_id"]
    where = f"{where}: project {pid!r}"
    keys = []
    for k in item.get("keys", []):
        if not isinstance(k, dict) or not {"id", "sha256"} <= k.keys():
            raise ValueError(f"{where}: each key needs an id and a sha256")
        if k.get("expires_at") is not None:
            parse_time(k["expires_at"])  # fail on load, not on the first request
        keys.append(WriteKey(k["id"], k["sha256"].lower(), k.get("created_at"),
                             k.get("expires_at")))
    origins = item.get("allowed_origins", [])
    if not isinstance(origins, list) or not all(isinstance(o, str) for o in origins):
        raise ValueError(f"{where}: allowed_origins must be a list of strings")
    origins = [normalize_origin(o) for o in origins]
    for o in origins:
        if o != "*" and not _ORIGIN.match(o):
            raise ValueError(f"{where}: {o!r} is not an origin (scheme://host[:port] or *)")
    keyless = item.get("allow_keyless", False)
    if not isinstance(keyless, bool):
        raise ValueError(f"{where}: allow_keyless must be true or false")
    limits = item.get("rate_limits", {})
    if not isinstance(limits, dict) or not set(limits) <= set(RATE_LIMIT_FIELDS) or not all(
            isinstance(v, int | float) and not isinstance(v, bool) and v >= 0
            for v in limits.values()):
        raise ValueError(f"{where}: rate_limits takes non-negative numbers for "
                         f"{', '.join(RATE_LIMIT_FIELDS)}")
    return Project(pid, tuple(keys), dict(item.get("event_types", {})),
                   dict(item.get("property_schemas", {})), tuple(origins), keyless, dict(limits))


def _dump_project(p: Project) -> dict[str, Any]:
    keys = []
    for k in p.keys:
        entry: dict[str, Any] = {"id": k.key_id, "sha256": k.sha256}
        if k.created_at:
            entry["created_at"] = k.created_at
        if k.expires_at:
            entry["expires_at"] = k.expires_at
        keys.append(entry)
    return {"project_id": p.project_id, "keys": keys,
            "allowed_origins": list(p.allowed_origins), "allow_keyless": p.allow_keyless,
            "rate_limits": p.rate_limits, "event_types": p.event_types,
            "property_schemas": p.property_schemas}


class Registry:
    def __init__(self, projects: dict[str, Project]) -> None:
        self.projects = projects
        self._index()

    def _index(self) -> None:
        # digest -> (project, key): one dict probe per request however many keys exist
        self._by_digest = {k.sha256: (p, k) for p in self.projects.values() for k in p.keys}
        self.origins = frozenset(o for p in self.projects.values() for o in p.allowed_origins)

    @classmethod
    def load(cls, path: Path) -> Registry:
        """Read and check the registry file; a missing file is an empty registry."""
        if not path.exists():
            return cls({})
        try:
            data = json.loads(path.read_text())
        except json.JSONDecodeError as exc:
            raise ValueError(f"{path}: not valid JSON: {exc}") from exc
        items = data.get("projects", []) if isinstance(data, dict) else None
        if not isinstance(items, list):
            raise ValueError(f'{path}: expected {{"projects": [...]}}')
        projects: dict[str, Project] = {}
        for item in items:
            project = _parse_project(item, str(path))
            if project.project_id in projects:
                raise ValueError(f"{path}: project {project.project_id!r} appears twice")
            projects[project.project_id] = project
        return cls(projects)

    def save(self, path: Path) -> None:
        path.parent.mkdir(parents=True, exist_ok=True)
        data = {"projects": [_dump_project(p) for p in self.projects.values()]}
        tmp = path.with_suffix(".tmp")
        tmp.write_text(json.dumps(data, indent=2) + "\n")
        tmp.replace(path)  # atomic: a collector never reads a half-written file

    def _changed(self, project: Project) -> None:
        self.projects = {**self.projects, project.project_id: project}
        self._index()

    def add_key(self, project_id: str, key: str, key_id: str | None = None) -> WriteKey:
        """Register ``key`` for ``project_id`` (creating the project)."""
        project = self.projects.get(project_id, Project(project_id))
        taken = {k.key_id for k in project.keys}
        if key_id in taken:
            raise ValueError(f"project {project_id!r} already has a key {key_id!r}")
        key_id = key_id or next(f"k{i}" for i in range(1, len(taken) + 2) if f"k{i}" not in taken)
        wk = WriteKey(key_id, hash_key(key), created_at=format_time(utc_now()))
        self._changed(replace(project, keys=(*project.keys, wk)))
        return wk

    def add_project(self, project_id: str, *, allowed_origins: tuple[str, ...] | None = None,
                    allow_keyless: bool | None = None) -> Project:
        """Create ``project_id`` or update its browser settings (None: keep; keys are kept)."""
        project = self.projects.get(project_id, Project(project_id))
        item = _dump_project(project)
        if allowed_origins is not None:
            item["allowed_origins"] = list(allowed_origins)
        if allow_keyless is not None:
            item["allow_keyless"] = allow_keyless
        project = _parse_project(item, "project settings")  # same checks as the file
        self._changed(project)
        return project

    def rotate_key(self, project_id: str, grace_s: float = 0) -> tuple[str, WriteKey]:
        """A new key for ``project_id``; its current keys expire after ``grace_s``.

        Keys already expired are dropped from the file."""
        if project_id not in self.projects:
            raise ValueError(f"no project {project_id!r}")
        now = utc_now()
        until = datetime.fromtimestamp(now.timestamp() + grace_s, UTC)
        project = self.projects[project_id]
        kept = tuple(replace(k, expires_at=format_time(
            min(parse_time(k.expires_at), until) if k.expires_at else until))
            for k in project.keys if not k.expired(now))
        self._changed(replace(project, keys=kept))
        key = new_key()
        return key, self.add_key(project_id, key)

    def authenticate(self, key: str) -> tuple[Project, WriteKey] | None:
        """The project and key that ``key`` belongs to, or None.

        The secret is never compared itself: its SHA-256 digest selects the entry and is
        then compared in constant time. Timing can reveal at most how much of a digest
        matched, which says nothing about the key without a SHA-256 preimage."""
        digest = hash_key(key)
        found = self._by_digest.get(digest)
        if found is None or not hmac.compare_digest(digest, found[1].sha256):
            return None
        if found[1].expired(utc_now()):
            return None
        return found

    def project(self, project_id: str) -> Project | None:
        return self.projects.get(project_id)


class ReloadingRegistry:
    """A registry file re-read when it changes (checked at most every ``check_every_s``),
    so keys added or rotated with the CLI work without restarting the collector.
    A file that no longer parses is reported and the last good registry stays in use."""

    def __init__(self, path: Path, check_every_s: float = 1.0) -> None:
        self._path, self._every = path, check_every_s
        self._stamp: tuple[int, int, int] | None = None
        self._checked = time.monotonic()
        self._registry = Registry.load(path)  # a broken file at start-up is an error
        self._stamp = self._file_stamp()

    def _file_stamp(self) -> tuple[int, int, int] | None:
        try:
            st = self._path.stat()
        except FileNotFoundError:
            return None
        return st.st_mtime_ns, st.st_size, st.st_ino

    @property
    def current(self) -> Registry:
        now = time.monotonic()
        if now - self._checked >= self._every:
            self._checked = now
            stamp = self._file_stamp()
            if stamp != self._stamp:
                self._stamp = stamp
                try:
                    self._registry = Registry.load(self._path)
                except (ValueError, OSError) as exc:
                    log.error("project registry not reloaded, keeping the previous one: %s", exc)
        return self._registry

    @property
    def projects(self) -> dict[str, Project]:
        return self.current.projects

    @property
    def origins(self) -> frozenset[str]:
        return self.current.origins

    def authenticate(self, key: str) -> tuple[Project, WriteKey] | None:
        return self.current.authenticate(key)

    def project(self, project_id: str) -> Project | None:
        return self.current.project(project_id)
