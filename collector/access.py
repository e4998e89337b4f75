"""Who may write: a write key (``X-API-Key`` or ``?api_key=``), or a keyless browser.

- A key writes events of its own project only.
- A request with an ``Origin`` header comes from a browser: its origin must be one of the
  project's ``allowed_origins``, with a key or without.
- Without a key, the project (``?project_id=`` or the events' ``project_id``) must have
  ``allow_keyless`` and the request must come from one of its allowed origins.
"""

from __future__ import annotations

from dataclasses import dataclass
from typing import Any, Protocol

from collector.errors import RejectedError
from collector.projects import Project, WriteKey

MISSING_KEY = "missing X-API-Key (or api_key query parameter)"


class ProjectSource(Protocol):
    def authenticate(self, key: str) -> tuple[Project, WriteKey] | None: ...
    def project(self, project_id: str) -> Project | None: ...


@dataclass(frozen=True)
class Writer:
    project: Project
    key_id: str | None  # None: keyless browser ingestion


def _check_origin(project: Project, origin: str | None) -> None:
    if origin is not None and not project.origin_allowed(origin):
        raise RejectedError(403, "forbidden",
                        f"origin {origin!r} is not allowed for project {project.project_id!r}")


def by_key(registry: ProjectSource, key: str, origin: str | None) -> Writer:
    found = registry.authenticate(key)
    if found is None:
        raise RejectedError(403, "forbidden", "unknown or expired API key")
    project, write_key = found
    _check_origin(project, origin)
    return Writer(project, write_key.key_id)


def keyless(registry: ProjectSource, origin: str | None, query_project: str | None,
            events: list[dict[str, Any]]) -> Writer:
    """A request without a key: allowed for opted-in projects, from their origins."""
    missing = MISSING_KEY
    if origin is None:
        raise RejectedError(401, "unauthorized", missing, events=len(events))
    named = {query_project} if query_project else {
        p if isinstance(p, str) else None for p in (e.get("project_id") for e in events)}
    if len(named) != 1 or not isinstance(pid := named.pop(), str):
        raise RejectedError(401, "unauthorized", f"{missing}; keyless requests name one project "
                        "(project_id in every event, or ?project_id=)", events=len(events))
    project = registry.project(pid)
    if project is None or not project.allow_keyless:
        raise RejectedError(401, "unauthorized",
                        f"{missing}: project {pid!r} does not accept keyless events",
                        events=len(events))
    _check_origin(project, origin)
    return Writer(project, None)


def check_event_projects(events: list[dict[str, Any]], project_id: str) -> None:
    """Events name no project or the writer's own."""
    for i, event in enumerate(events):
        named = event.get("project_id", project_id)
        if named != project_id:
            raise RejectedError(403, "forbidden", f"event {i} is for project {named!r}, not "
                            f"{project_id!r}", events=len(events))
