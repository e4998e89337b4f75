"""The project registry: file format (old and new), keys, origins, rotation, reloading."""

import json
import time
from datetime import UTC, datetime, timedelta

import pytest

from collector.projects import (
    Project,
    Registry,
    ReloadingRegistry,
    WriteKey,
    format_time,
    hash_key,
)


def test_old_format_still_loads(tmp_path):
    path = tmp_path / "projects.json"
    path.write_text(json.dumps({"projects": [{
        "project_id": "demo", "keys": [{"id": "demo", "sha256": hash_key("k")}],
        "event_types": {"checkout": "lifecycle"}, "property_schemas": {}}]}))
    reg = Registry.load(path)
    project, key = reg.authenticate("k")
    assert (project.project_id, key.key_id) == ("demo", "demo")
    assert project.event_types == {"checkout": "lifecycle"}
    assert project.allowed_origins == () and project.allow_keyless is False


def test_save_and_load_keep_every_field(tmp_path):
    reg = Registry({})
    reg.add_key("web", "key-1")
    reg.add_project("web", allowed_origins=("https://App.Example.com/",), allow_keyless=True)
    reg.save(tmp_path / "p.json")
    again = Registry.load(tmp_path / "p.json")
    web = again.projects["web"]
    assert web.allowed_origins == ("https://app.example.com",)
    assert web.allow_keyless and web.origin_allowed("https://app.example.com")
    assert not web.origin_allowed("https://evil.example.com")
    assert again.authenticate("key-1")[1].key_id == "k1"
    assert again.origins == {"https://app.example.com"}


@pytest.mark.parametrize("item, message", [
    ({"keys": []}, "project_id"),
    ({"project_id": "p", "keys": [{"id": "k"}]}, "sha256"),
    ({"project_id": "p", "allowed_origins": "https://a.example"}, "allowed_origins"),
    ({"project_id": "p", "allowed_origins": ["a.example"]}, "not an origin"),
    ({"project_id": "p", "allow_keyless": "yes"}, "allow_keyless"),
    ({"project_id": "p", "rate_limits": {"per_s": 1}}, "rate_limits"),
    ({"project_id": "p", "rate_limits": {"user_per_s": -1}}, "rate_limits"),
])
def test_bad_registry_files_are_refused_with_the_reason(tmp_path, item, message):
    path = tmp_path / "p.json"
    path.write_text(json.dumps({"projects": [item]}))
    with pytest.raises(ValueError, match=message):
        Registry.load(path)


def test_unknown_and_expired_keys_are_refused():
    past = format_time(datetime.now(UTC) - timedelta(seconds=1))
    reg = Registry({"p": Project("p", (WriteKey("old", hash_key("old-key"), expires_at=past),
                                       WriteKey("new", hash_key("new-key"))))})
    assert reg.authenticate("nope") is None
    assert reg.authenticate("old-key") is None
    assert reg.authenticate("new-key")[1].key_id == "new"


def test_rotate_key_with_and_without_grace():
    reg = Registry({})
    reg.add_key("p", "first")
    key2, wk2 = reg.rotate_key("p", grace_s=3600)
    assert wk2.key_id == "k2" and reg.authenticate(key2)[1] == wk2
    assert reg.authenticate("first") is not None  # still in its grace period
    key3, wk3 = reg.rotate_key("p")
    assert reg.authenticate("first") is None and reg.authenticate(key2) is None
    assert reg.authenticate(key3)[1] == wk3
    with pytest.raises(ValueError, match="no project"):
        reg.rotate_key("nope")


def test_reloading_registry_picks_up_changes_and_survives_a_broken_file(tmp_path, caplog):
    path = tmp_path / "p.json"
    reg = Registry({})
    reg.add_key("p", "a")
    reg.save(path)
    live = ReloadingRegistry(path, check_every_s=0)
    assert live.authenticate("a") is not None
    reg.add_key("p", "b")
    reg.save(path)
    assert live.authenticate("b") is not None
    path.write_text("{broken")
    assert live.authenticate("b") is not None  # the last good registry stays
    assert "not reloaded" in caplog.text


def test_reloading_registry_checks_the_file_at_most_every_interval(tmp_path):
    path = tmp_path / "p.json"
    Registry({}).save(path)
    live = ReloadingRegistry(path, check_every_s=3600)
    reg = Registry({})
    reg.add_key("p", "a")
    reg.save(path)
    time.sleep(0.01)
    assert live.authenticate("a") is None
