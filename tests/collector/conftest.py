import uuid

import pytest


@pytest.fixture
def topic_prefix() -> str:
    """A topic prefix of the test's own: its records are the only ones there."""
    return f"t{uuid.uuid4().hex[:8]}"
