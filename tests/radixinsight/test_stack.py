"""`radixinsight up --demo --detach`, `status` and `down` as a user runs them."""

import os
import signal
import subprocess
import sys
from pathlib import Path

import pytest

from radixinsight import procs

REPO = Path(__file__).resolve().parents[2]


def cli(home: Path, *args: str, timeout: float = 600) -> subprocess.CompletedProcess:
    env = {**os.environ, "RADIX_HOME": str(home)}
    env.pop("RADIX_KAFKA_BOOTSTRAP", None)
    env.pop("RADIX_STORE", None)
    return subprocess.run([sys.executable, "-m", "radixinsight.cli", *args], cwd=REPO, env=env,
                          capture_output=True, text=True, timeout=timeout, check=False)


@pytest.mark.e2e
def test_up_demo_status_down(tmp_path):
    home = tmp_path / "stack"
    pids: list[int] = []
    try:
        up = cli(home, "up", "--demo", "--detach", "--demo-users", "150")
        assert up.returncode == 0, up.stdout + up.stderr
        report = up.stdout
        sent = int(report.split("events stored")[1].split("of")[1].split()[0])
        stored = int(report.split("events stored")[1].split("of")[0])
        assert sent > 300 and stored == sent
        dead = report.split("dead-lettered")[1].split()
        assert dead[0] == dead[2] and int(dead[0]) >= 1
        assert "signup_started" in report and "funnel" in report
        live = int(report.split("live 10 s windows")[1].split()[0])
        assert live == sent  # windows closed and counted every event while streaming

        status = cli(home, "status")
        assert status.returncode == 0
        lines = [ln.split() for ln in status.stdout.splitlines()[2:]]
        assert {ln[0]: ln[1] for ln in lines} == {
            "kafka": "running", "store": "running", "collector": "running",
            "pipeline": "running"}
        pids += [int(ln[2]) for ln in lines if ln[0] != "kafka"]

        again = cli(home, "up", "--detach")  # idempotent: nothing restarted
        assert again.returncode == 0, again.stderr
        assert "collector:" not in again.stdout
    finally:
        down = cli(home, "down")
    assert down.returncode == 0, down.stderr
    assert pids and all(not procs.pid_alive(pid) for pid in pids)
    after = cli(home, "status").stdout
    assert "running" not in after.replace("stopped", "")


@pytest.mark.e2e
def test_ctrl_c_stops_the_foreground_stack(tmp_path):
    home = tmp_path / "stack"
    env = {**os.environ, "RADIX_HOME": str(home)}
    env.pop("RADIX_KAFKA_BOOTSTRAP", None)
    proc = subprocess.Popen([sys.executable, "-m", "radixinsight.cli", "up"], cwd=REPO, env=env,
                            stdout=subprocess.PIPE, stderr=subprocess.STDOUT, text=True)
    try:
        lines = []
        for line in proc.stdout:
            lines.append(line)
            if "press Ctrl-C" in line:
                break
        assert "press Ctrl-C" in lines[-1], "".join(lines)
        running = cli(home, "status").stdout
        pids = [int(ln.split()[2]) for ln in running.splitlines()[2:]
                if ln.split()[0] != "kafka"]
        proc.send_signal(signal.SIGINT)
        assert proc.wait(timeout=120) == 0
    finally:
        if proc.poll() is None:
            proc.kill()
        cli(home, "down")
    assert len(pids) == 3 and not any(procs.pid_alive(p) for p in pids)
    assert "running" not in cli(home, "status").stdout.replace("stopped", "")
