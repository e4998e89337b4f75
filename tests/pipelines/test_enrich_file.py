"""`radixinsight enrich`: every input line comes out exactly once, enriched or as a bad row."""

import os
import subprocess
import sys
import uuid
from pathlib import Path

import orjson
import pytest

from collector.envelope import make_envelope
from pipelines.enrich_file import run
from tests.fixtures.events import event
from tests.fixtures.geoip import city_record, write_city_db
from transforms.enrichments import EnrichConfig, geo
from transforms.validate import ValidateConfig

REPO = Path(__file__).resolve().parents[2]
CHROME = ("Mozilla/5.0 (Windows NT 10.0; Win64; x64) AppleWebKit/537.36 (KHTML, like Gecko) "
          "Chrome/130.0.0.0 Safari/537.36")


@pytest.fixture
def city_db(tmp_path):
    return write_city_db(tmp_path / "city.mmdb", [
        ("81.2.69.0/24", city_record("GB", "London", "Europe/London", ["England"]))])


def lines_in(tmp_path):
    ids = [str(uuid.uuid4()) for _ in range(4)]
    ctx = {"ip": "81.2.69.160", "user_agent": CHROME,
           "page": {"url": "https://shop.example/?utm_source=news&utm_medium=email",
                    "referrer": "https://www.google.com/search?q=red+shoes"}}
    good = [orjson.dumps(event(event_id=i, context=ctx)) for i in ids[:3]]
    env_line = make_envelope(event(event_id=ids[3], context=ctx), project_id="p1",
                             key_id="k", ip=None, user_agent=None)
    bad = [b"{broken", b"", orjson.dumps(event(event_id="nope")), b"[1, 2]"]
    path = tmp_path / "in.jsonl"
    path.write_bytes(b"\n".join([*good, env_line, *bad]) + b"\n")
    return path, ids


def test_every_line_once_enriched_or_bad(tmp_path, city_db):
    path, ids = lines_in(tmp_path)
    out = tmp_path / "out.jsonl"
    counts = run(str(path), str(out), ValidateConfig(),
                 EnrichConfig({"geo": geo.Config(db_path=str(city_db))}), say=lambda *_: None)
    assert (counts["lines"], counts["rows"], counts["bad_rows"]) == (8, 4, 4)
    records = [orjson.loads(line) for line in out.read_bytes().splitlines()]
    assert len(records) == 8
    rows = [r for r in records if "failure" not in r]
    assert sorted(r["event_id"] for r in rows) == sorted(ids)
    row = rows[0]
    assert (row["country"], row["region"], row["city"]) == ("GB", "England", "London")
    assert (row["browser"], row["os"], row["device_type"], row["is_bot"]) == (
        "Chrome", "Windows", "desktop", 0)
    assert (row["utm_source"], row["utm_medium"]) == ("news", "email")
    assert (row["referrer_medium"], row["referrer_source"], row["referrer_term"]) == (
        "search", "Google", "red shoes")
    assert row["timezone"] == "Europe/London" and row["event_type"] == "page"
    assert "geo_timezone" not in row
    failures = sorted(r["failure"]["type"] for r in records if "failure" in r)
    assert failures == ["invalid_envelope", "invalid_event_id", "invalid_json", "invalid_json"]


def test_cli_prints_counts_and_writes_the_output(tmp_path, city_db):
    path, _ = lines_in(tmp_path)
    out = tmp_path / "cli-out.jsonl"
    proc = subprocess.run(
        [sys.executable, "-m", "radixinsight.cli", "enrich", "--input", str(path), "--output",
         str(out), "--geoip-db", str(city_db), "--anonymize-ip"],
        cwd=REPO, capture_output=True, text=True, timeout=300,
        env={k: v for k, v in os.environ.items() if k != "RADIX_PROJECTS"}, check=False)
    assert proc.returncode == 0, proc.stderr
    assert "8 lines -> 4 enriched rows + 4 bad rows" in proc.stdout
    rows = [orjson.loads(ln) for ln in out.read_bytes().splitlines()]
    assert {r["ip_address"] for r in rows if "failure" not in r} == {"81.2.69.0"}


def test_cli_missing_input_is_a_clear_error(tmp_path):
    proc = subprocess.run([sys.executable, "-m", "radixinsight.cli", "enrich", "--input",
                           str(tmp_path / "nope.jsonl"), "--output", str(tmp_path / "o")],
                          cwd=REPO, capture_output=True, text=True, timeout=120, check=False)
    assert proc.returncode == 1 and "does not exist" in proc.stderr
