"""Project registry: which write keys may send events for which project.

A JSON file (``RADIX_PROJECTS``, default ``.radixinsight/projects.json``)::

    {"projects": [{
        "project_id": "demo",
        "keys": [{"id": "k1", "sha256": "<hex digest of the key>"}],
        "event_types": {"checkout": "lifecycle"},
        "property_schemas": {"purchase": {"type": "object", "required": ["amount"],
                                          "properties": {"amount": {"type": "number"}}}}}]}

``event_types`` and ``property_schemas`` (JSON Schema draft-07 per event name) are
optional; the pipeline's validate step enforces them. Keys are stored hashed;
look-ups hash the presented key and compare digests in constant time.
"""

from __future__ import annotations

import hashlib
import hmac
import json
import os
import secrets
import time
from dataclasses import dataclass, field, replace
from pathlib import Path
from typing import Any


@dataclass(frozen=True)
class WriteKey:
    key_id: str
    sha256: str


@dataclass(frozen=True)
class Project:
    project_id: str
    keys: tuple[WriteKey, ...] = ()
    # Pipeline rules: event name -> event_type override, and event name -> JSON Schema
    # of its properties (enforced by the validate step).
    event_types: dict[str, str] = field(default_factory=dict)
    property_schemas: dict[str, dict[str, Any]] = field(default_factory=dict)


def hash_key(key: str) -> str:
    return hashlib.sha256(key.encode()).hexdigest()


def new_key() -> str:
    return "rk_" + secrets.token_urlsafe(24)


def default_path() -> Path:
    return Path(os.environ.get("RADIX_PROJECTS", Path.cwd() / ".radixinsight" / "projects.json"))


class Registry:
    def __init__(self, projects: dict[str, Project]) -> None:
        self.projects = projects

    @classmethod
    def load(cls, path: Path) -> Registry:
        if not path.exists():
            return cls({})
        data = json.loads(path.read_text())
        projects = {}
        for item in data.get("projects", []):
            keys = tuple(WriteKey(k["id"], k["sha256"]) for k in item.get("keys", []))
            projects[item["project_id"]] = Project(
                item["project_id"], keys, dict(item.get("event_types", {})),
                dict(item.get("property_schemas", {})))
        return cls(projects)

    def save(self, path: Path) -> None:
        path.parent.mkdir(parents=True, exist_ok=True)
        data = {"projects": [
            {"project_id": p.project_id,
             "keys": [{"id": k.key_id, "sha256": k.sha256} for k in p.keys],
             "event_types": p.event_types, "property_schemas": p.property_schemas}
            for p in self.projects.values()]}
        tmp = path.with_suffix(".tmp")
        tmp.write_text(json.dumps(data, indent=2) + "\n")
        tmp.replace(path)

    def add_key(self, project_id: str, key: str, key_id: str | None = None) -> WriteKey:
        """Register ``key`` for ``project_id`` (creating the project)."""
        project = self.projects.get(project_id, Project(project_id))
        wk = WriteKey(key_id or f"k{len(project.keys) + 1}", hash_key(key))
        self.projects[project_id] = replace(project, keys=(*project.keys, wk))
        return wk

    def authenticate(self, key: str) -> tuple[Project, WriteKey] | None:
        """The project and key that ``key`` belongs to, or None."""
        digest = hash_key(key)
        found = None
        for project in self.projects.values():
            for wk in project.keys:
                # compare every key, so timing does not tell which prefix matched
                if hmac.compare_digest(digest, wk.sha256):
                    found = (project, wk)
        return found


class ReloadingRegistry:
    """A registry file re-read when it changes (checked at most once a second),
    so keys added with the CLI work without restarting the collector."""

    def __init__(self, path: Path, check_every_s: float = 1.0) -> None:
        self._path, self._every = path, check_every_s
        self._mtime: float | None = None
        self._checked = 0.0
        self._registry = Registry({})
        self._refresh()

    def _refresh(self) -> None:
        try:
            mtime = self._path.stat().st_mtime
        except FileNotFoundError:
            mtime = None
        if mtime != self._mtime:
            self._registry, self._mtime = Registry.load(self._path), mtime

    def authenticate(self, key: str) -> tuple[Project, WriteKey] | None:
        now = time.monotonic()
        if now - self._checked >= self._every:
            self._checked = now
            self._refresh()
        return self._registry.authenticate(key)
