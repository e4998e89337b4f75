import pytest

from pipelines.runners import FLINK_CHECKPOINT_MS, runner_args, runner_name


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


def test_file_checkpoints_go_where_radix_flink_checkpoints_says(tmp_path, monkeypatch):
    from radixinsight.toolchain.flink import file_checkpoint_args

    monkeypatch.setenv("RADIX_FLINK_CHECKPOINTS", str(tmp_path / "chk"))
    first, second = file_checkpoint_args(), file_checkpoint_args()
    assert first[0] == "--state_backend=filesystem"
    assert first[1].startswith(f"--state_backend_storage_path={(tmp_path / 'chk').as_uri()}/job-")
    assert first[1] != second[1]  # each job its own directory



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


def test_flink_streaming_bundle_defaults_yield_to_the_user(tmp_path):
    jar = f"--flink_job_server_jar={tmp_path / 'j.jar'}"
    out = runner_args(["--runner=flink", jar], streaming=True)
    assert "--read_bundle_s=0.5" in out and "--max_bundle_time_mills=300" in out
    mine = runner_args(["--runner=flink", jar, "--max_bundle_time_mills=1000",
                        "--read_bundle_s=1"], streaming=True)
    sizes = ("--max_bundle_time_mills", "--read_bundle_s")
    assert [a for a in mine if a.startswith(sizes)] == ["--max_bundle_time_mills=1000",
                                                        "--read_bundle_s=1"]
    batch = runner_args(["--runner=flink", jar], streaming=False)
    assert not [a for a in batch if a.startswith(sizes)]


def test_flink_streaming_checkpoints_by_default(tmp_path):
    out = runner_args(["--runner=flink", f"--flink_job_server_jar={tmp_path / 'j.jar'}"],
                      streaming=True)
    assert [a for a in out if a.startswith("--checkpointing_interval")] == [
        f"--checkpointing_interval={FLINK_CHECKPOINT_MS}"]


@pytest.mark.parametrize("value", ["-1", "0", "soon"])
def test_flink_streaming_refuses_disabled_checkpoints(tmp_path, value):
    with pytest.raises(ValueError, match="needs checkpoints"):
        runner_args(["--runner=flink", f"--flink_job_server_jar={tmp_path / 'j.jar'}",
                     f"--checkpointing_interval={value}"], streaming=True)
    with pytest.raises(ValueError, match="needs checkpoints"):
        runner_args(["--runner=flink", f"--flink_job_server_jar={tmp_path / 'j.jar'}",
                     "--checkpointing_interval", value], streaming=True)
