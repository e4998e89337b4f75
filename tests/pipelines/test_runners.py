import pytest

from pipelines.runners import runner_args, runner_name


@pytest.mark.parametrize("argv, name", [
    ([], "prism"), (["--runner=flink"], "flink"), (["--runner", "FlinkRunner"], "flink"),
    (["--runner=PrismRunner"], "prism"), (["--runner=direct"], "direct"),
])
def test_runner_name(argv, name):
    assert runner_name(argv) == name


def test_unknown_runner_is_a_clear_error():
    with pytest.raises(ValueError, match="unknown runner 'spark'"):
        runner_name(["--runner=spark"])


def test_prism_gets_its_local_binary_and_streaming(tmp_path):
    fake = tmp_path / "prism"
    out = runner_args(["--runner", "prism", f"--prism_location={fake}", "--x=1"], streaming=True)
    assert out == [f"--prism_location={fake}", "--x=1", "--runner=PrismRunner", "--streaming"]


def test_a_flink_stream_gets_a_state_cache_and_file_checkpoints_unless_set(tmp_path):
    base = ["--runner=flink", f"--flink_job_server_jar={tmp_path / 'job-server.jar'}"]
    out = runner_args(base, streaming=True)
    assert "--max_cache_memory_usage_mb=256" in out and "--state_backend=filesystem" in out
    assert any(a.startswith("--state_backend_storage_path=file:") for a in out)
    assert not any(a.startswith("--max_cache") for a in runner_args(base, streaming=False))
    own = runner_args([*base, "--max_cache_memory_usage_mb=16"], streaming=True)
    assert [a for a in own if a.startswith("--max_cache")] == ["--max_cache_memory_usage_mb=16"]


def test_flink_streaming_defaults_keep_user_choices(tmp_path):
    jar = tmp_path / "job-server.jar"
    out = runner_args(["--runner=flink", f"--flink_job_server_jar={jar}",
                       "--checkpointing_interval=2000"], streaming=True)
    assert "--runner=FlinkRunner" in out and "--flink_master=[local]" in out
    assert "--environment_type=LOOPBACK" in out and "--idle_poll_s=1" in out
    assert [a for a in out if a.startswith("--checkpointing_interval")] == [
        "--checkpointing_interval=2000"]
    assert [a for a in out if a.startswith("--flink_job_server_jar")] == [
        f"--flink_job_server_jar={jar}"]
