"""Start, find and stop background processes by pid file (no orphans, no port clashes)."""

from __future__ import annotations

import contextlib
import os
import signal
import socket
import subprocess
import time
from collections.abc import Callable
from pathlib import Path


def free_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return s.getsockname()[1]


def port_open(port: int, host: str = "127.0.0.1", timeout_s: float = 0.5) -> bool:
    try:
        with socket.create_connection((host, port), timeout=timeout_s):
            return True
    except OSError:
        return False


def pid_alive(pid: int) -> bool:
    """True while ``pid`` runs; reaps it if it is our exited child (else it stays a zombie)."""
    with contextlib.suppress(ChildProcessError):
        done, _ = os.waitpid(pid, os.WNOHANG)
        if done == pid:
            return False
    try:
        os.kill(pid, 0)
    except ProcessLookupError:
        return False
    except PermissionError:
        return True
    try:  # a zombie that is someone else's child still answers kill(0)
        stat = Path(f"/proc/{pid}/stat").read_text()
        return stat.rsplit(")", 1)[1].split()[0] != "Z"
    except OSError:
        return True


def read_pid(pid_file: Path) -> int | None:
    try:
        pid = int(pid_file.read_text().strip())
    except (FileNotFoundError, ValueError):
        return None
    return pid if pid_alive(pid) else None


def spawn(cmd: list[str], *, pid_file: Path, log_file: Path,
          env: dict[str, str] | None = None, cwd: Path | None = None) -> int:
    """Start ``cmd`` detached in its own process group, logging to ``log_file``."""
    log_file.parent.mkdir(parents=True, exist_ok=True)
    pid_file.parent.mkdir(parents=True, exist_ok=True)
    with open(log_file, "ab") as log:
        proc = subprocess.Popen(cmd, stdout=log, stderr=subprocess.STDOUT,
                                stdin=subprocess.DEVNULL, start_new_session=True,
                                env={**os.environ, **(env or {})}, cwd=cwd)
    pid_file.write_text(f"{proc.pid}\n")
    return proc.pid


def wait_until(check: Callable[[], bool], *, timeout_s: float, what: str,
               alive: Callable[[], bool] | None = None, log_file: Path | None = None) -> None:
    """Poll ``check`` until true; fail early if the process died, with its log tail."""
    deadline = time.monotonic() + timeout_s
    while time.monotonic() < deadline:
        if check():
            return
        if alive is not None and not alive():
            raise RuntimeError(f"{what} exited during start-up{log_tail(log_file)}")
        time.sleep(0.2)
    raise TimeoutError(f"{what} not ready after {timeout_s:.0f}s{log_tail(log_file)}")


def log_tail(log_file: Path | None, lines: int = 30) -> str:
    if log_file is None or not log_file.exists():
        return ""
    tail = log_file.read_text(errors="replace").splitlines()[-lines:]
    return f"; last lines of {log_file}:\n" + "\n".join(tail)


def stop_pid(pid: int, *, timeout_s: float = 20.0) -> None:
    """SIGTERM the process group, then SIGKILL it if it does not exit in time."""
    for sig in (signal.SIGTERM, signal.SIGKILL):
        with contextlib.suppress(ProcessLookupError, PermissionError):
            os.killpg(pid, sig)
        with contextlib.suppress(ProcessLookupError):
            os.kill(pid, sig)
        deadline = time.monotonic() + timeout_s
        while time.monotonic() < deadline:
            if not pid_alive(pid):
                return
            time.sleep(0.1)


def stop_pid_file(pid_file: Path, *, timeout_s: float = 20.0) -> bool:
    """Stop the process named in ``pid_file``; True if one was running."""
    pid = read_pid(pid_file)
    if pid is not None:
        stop_pid(pid, timeout_s=timeout_s)
    pid_file.unlink(missing_ok=True)
    return pid is not None
