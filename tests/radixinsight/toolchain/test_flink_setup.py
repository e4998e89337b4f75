"""Fast checks of the Flink job-server toolchain (no Maven, no JVM)."""

from __future__ import annotations

import json
import zipfile

import pytest

from radixinsight.toolchain import ToolchainError, flink


def test_missing_tools_give_a_clear_error(tmp_path, monkeypatch):
    monkeypatch.setenv("RADIX_CACHE", str(tmp_path))
    monkeypatch.setenv("PATH", str(tmp_path / "empty"))
    with pytest.raises(ToolchainError, match=r"java and mvn"):
        flink.ensure_flink_job_server()


def test_cached_job_server_is_reused_without_maven(tmp_path, monkeypatch):
    monkeypatch.setenv("RADIX_CACHE", str(tmp_path))
    beam, flink_major = flink.versions()
    lib = flink.job_server_dir() / "lib"
    lib.mkdir(parents=True)
    (lib / "a.jar").write_bytes(b"")
    jar = flink.write_pathing_jar(lib / flink.PATHING_JAR_NAME, flink.MAIN_CLASS,
                                  [lib / "a.jar"])
    digest = flink._effective_pom(beam, flink_major, tmp_path)[1]
    (lib / ".complete").write_text(json.dumps({"pom_sha256": digest, "jars": ["a.jar"]}))
    monkeypatch.setenv("PATH", str(tmp_path / "empty"))  # would fail if it ran mvn
    assert flink.ensure_flink_job_server() == jar
    manifest = zipfile.ZipFile(jar).read("META-INF/MANIFEST.MF").decode()
    assert "Main-Class: org.apache.beam.runners.flink.FlinkJobServerDriver" in manifest


def test_pipeline_args_keep_sources_alive_in_streaming(tmp_path):
    args = flink.flink_pipeline_args(jar=tmp_path / "x.jar", checkpointing_interval_ms=5000)
    assert "--flink_master=[local]" in args and "--environment_type=LOOPBACK" in args
    assert "--shutdown_sources_after_idle_ms=9223372036854775807" in args
    assert "--checkpointing_interval=5000" in args
    # else a bundle finished by a checkpoint keeps its output until the stage's next bundle
    assert "--finish_bundle_before_checkpointing" in args
    assert "--finish_bundle_before_checkpointing" not in flink.flink_pipeline_args(
        jar=tmp_path / "x.jar", streaming=False)
