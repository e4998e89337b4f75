"""Categorise an event name: page | action | lifecycle | system | custom (the design's 1.2)."""

from __future__ import annotations

import functools
import re
from collections.abc import Mapping

EVENT_TYPES = ("page", "action", "lifecycle", "system", "custom")

_RULES = (
    ("page", re.compile(r"^(\$?page(_?view)?|\$?screen(_?view)?|\$pageview|page_load)$")),
    ("action", re.compile(r"(^|_)(click|tap|submit|press|select|toggle|scroll|search|"
                          r"download|share|copy|play|pause)(ed)?(_|$)")),
    ("lifecycle", re.compile(r"^(signup|sign_up|onboarding|trial|subscription|account|"
                             r"checkout|purchase|activation|login|logout|churn)(_|$)|"
                             r"_(started|completed|activated|cancelled|renewed)$")),
    ("system", re.compile(r"(^|_)(api|error|exception|crash|performance|metric|latency|"
                          r"timeout|health|job)(_|$)")),
)


def categorize(event_name: str, overrides: Mapping[str, str] | None = None) -> str:
    """The event's type; a project's explicit override wins over the name rules."""
    if overrides and event_name in overrides:
        return overrides[event_name]
    return _by_name(event_name)


@functools.lru_cache(maxsize=4096)  # event names repeat: the regexes run once per name
def _by_name(event_name: str) -> str:
    name = event_name.strip().lower()
    for event_type, rule in _RULES:
        if rule.search(name):
            return event_type
    return "custom"
