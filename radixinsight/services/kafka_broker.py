"""A single-node Apache Kafka 4 broker (KRaft, combined broker+controller) on loopback.

Used by the test fixture and by ``radixinsight up``. Everything lives in one data
directory, so a broker can be stopped, killed or restarted by another process and
picks up where it left off:

    data_dir/
      broker.json        ports and cluster id, reused on restart (clients keep working)
      server.properties  regenerated on every start
      broker.pid         pid of the running JVM
      broker.out         the JVM's stdout/stderr (warnings, crashes)
      logs/server.log    the broker's log4j2 log
      kafka-logs/        partitions and the KRaft metadata log
"""

from __future__ import annotations

import base64
import contextlib
import errno
import fcntl
import json
import os
import secrets
import signal
import socket
import subprocess
import time
from collections.abc import Iterable, Mapping
from pathlib import Path

from radixinsight.procs import pid_alive, port_open
from radixinsight.toolchain.kafka import LOG4J2_CONFIG, ensure_kafka_libs

_ERR_TOPIC_ALREADY_EXISTS = 36


class KafkaBrokerError(RuntimeError):
    """The broker could not be started or stopped; the message carries its log tail."""


def new_cluster_id() -> str:
    """A KRaft cluster id: 16 random bytes as unpadded base64url (22 characters)."""
    # ``--cluster-id=<id>`` is passed in one argument: an id may start with '-'.
    return base64.urlsafe_b64encode(secrets.token_bytes(16)).decode().rstrip("=")


def _try_lock(path: Path) -> bool:
    """Whether no process holds an fcntl lock on ``path`` (we take and drop it at once)."""
    with open(path, "a") as fh:
        try:
            fcntl.lockf(fh, fcntl.LOCK_EX | fcntl.LOCK_NB)
        except OSError as exc:
            if exc.errno in (errno.EACCES, errno.EAGAIN):
                return False
            raise
    return True


def _tail(path: Path, lines: int = 40) -> str:
    try:
        return "\n".join(path.read_text(errors="replace").splitlines()[-lines:])
    except OSError:
        return "(no log)"


class KafkaBroker:
    """One local broker process bound to ``data_dir``.

    ``port``/``controller_port`` default to the ports persisted in ``data_dir`` by a
    previous start, else to free ports. The controller port is fixed once storage is
    formatted (KRaft records the voter's endpoint); the client port may change.
    """

    HOST = "127.0.0.1"

    def __init__(self, data_dir: Path, port: int | None = None,
                 controller_port: int | None = None, heap: str = "512m") -> None:
        self.data_dir = Path(data_dir).resolve()
        self.heap = heap
        self._proc: subprocess.Popen[bytes] | None = None
        state = self._read_state()
        saved_cport = state.get("controller_port")
        if controller_port and saved_cport and controller_port != saved_cport and self._formatted():
            raise ValueError(f"{self.data_dir} is formatted for controller port {saved_cport}, "
                             f"not {controller_port}")
        self.port: int = port or state.get("port") or 0
        self.controller_port: int = controller_port or saved_cport or 0
        self.cluster_id: str = state.get("cluster_id") or new_cluster_id()

    # -- paths ---------------------------------------------------------------
    @property
    def log_dir(self) -> Path:
        return self.data_dir / "kafka-logs"

    @property
    def pid_file(self) -> Path:
        return self.data_dir / "broker.pid"

    @property
    def stdout_log(self) -> Path:
        return self.data_dir / "broker.out"

    @property
    def server_log(self) -> Path:
        return self.data_dir / "logs" / "server.log"

    @property
    def properties_file(self) -> Path:
        return self.data_dir / "server.properties"

    @property
    def bootstrap(self) -> str:
        """``host:port`` for ``bootstrap_servers``."""
        if not self.port:
            raise KafkaBrokerError("broker port not chosen yet: call start() first")
        return f"{self.HOST}:{self.port}"

    @property
    def pid(self) -> int | None:
        """Pid recorded in the pid file, if any (alive or not)."""
        try:
            return int(self.pid_file.read_text().strip())
        except (OSError, ValueError):
            return None

    # -- lifecycle -------------------------------------------------------------
    def is_running(self) -> bool:
        """The recorded JVM is alive and its client port accepts connections."""
        return self._own_process_alive() and bool(self.port) and port_open(self.port, self.HOST)

    def start(self, timeout_s: float = 60) -> KafkaBroker:
        """Start the broker unless it already runs; return once it serves Kafka requests."""
        deadline = time.monotonic() + timeout_s
        if self._own_process_alive():
            # Running, or still starting (another process launched it): just wait for it.
            running_port = self._read_state().get("port")
            if running_port and running_port != self.port:
                raise KafkaBrokerError(f"broker in {self.data_dir} already runs on port "
                                       f"{running_port}; stop it to change the port")
            self._wait_ready(deadline)
            return self
        self._clear_stale_state()
        self.data_dir.mkdir(parents=True, exist_ok=True)
        self._choose_ports()
        self._write_state()
        lib = ensure_kafka_libs()
        self._write_properties()
        if not self._formatted():
            self._format(lib)
        self._launch(lib)
        try:
            self._wait_ready(deadline)
        except BaseException:
            self.stop(timeout_s=5)  # leave no half-started JVM behind
            raise
        return self

    def stop(self, timeout_s: float = 20) -> None:
        """SIGTERM (controlled shutdown), then SIGKILL after ``timeout_s``; remove the pid file."""
        pid = self.pid
        if pid is not None and self._own_process_alive():
            with contextlib.suppress(ProcessLookupError):
                os.kill(pid, signal.SIGTERM)
            if not self._wait_exit(pid, timeout_s):
                with contextlib.suppress(ProcessLookupError):
                    os.kill(pid, signal.SIGKILL)
                if not self._wait_exit(pid, 10):
                    raise KafkaBrokerError(f"Kafka broker pid {pid} survived SIGKILL")
        if self._proc is not None:
            with contextlib.suppress(subprocess.TimeoutExpired):
                self._proc.wait(timeout=1)
            self._proc = None
        self.pid_file.unlink(missing_ok=True)

    # -- internals -------------------------------------------------------------
    def _read_state(self) -> dict:
        try:
            return json.loads((self.data_dir / "broker.json").read_text())
        except (OSError, ValueError):
            return {}

    def _write_state(self) -> None:
        state = {"port": self.port, "controller_port": self.controller_port,
                 "cluster_id": self.cluster_id}
        tmp = self.data_dir / "broker.json.tmp"
        tmp.write_text(json.dumps(state, indent=2) + "\n")
        tmp.replace(self.data_dir / "broker.json")

    def _choose_ports(self) -> None:
        # Hold both sockets while choosing so the two ports differ.
        with socket.socket() as a, socket.socket() as b:
            if not self.port:
                a.bind((self.HOST, 0))
                self.port = a.getsockname()[1]
            if not self.controller_port:
                b.bind((self.HOST, 0))
                self.controller_port = b.getsockname()[1]

    def _formatted(self) -> bool:
        return (self.log_dir / "meta.properties").is_file()

    def _own_process_alive(self) -> bool:
        pid = self.pid
        if pid is None:
            return False
        if self._proc is not None and self._proc.pid == pid:
            return self._proc.poll() is None  # our child: Popen reaps it and keeps its status
        if not pid_alive(pid):
            return False
        try:  # guard against pid reuse: the pid must be a broker for *this* directory
            cmdline = Path(f"/proc/{pid}/cmdline").read_bytes().split(b"\0")
        except OSError:
            return True
        return b"kafka.Kafka" in cmdline and str(self.properties_file).encode() in cmdline

    def _clear_stale_state(self, wait_s: float = 10) -> None:
        """After a crash or kill -9: drop the dead pid file and the log dirs' ``.lock`` files.

        Kafka holds ``.lock`` with an fcntl lock. If we can take that lock, no live process
        owns the directory and the file is leftover. Right after a SIGKILL the JVM's main
        thread may already be a zombie while other threads still hold the lock, so wait a
        little; if it stays held, a broker we have no pid for is using the directory and
        starting a second one would fail later and less clearly.
        """
        self.pid_file.unlink(missing_ok=True)
        if not self.log_dir.is_dir():
            return
        deadline = time.monotonic() + wait_s
        for lock_path in self.log_dir.rglob(".lock"):
            while not _try_lock(lock_path):
                if time.monotonic() > deadline:
                    raise KafkaBrokerError(
                        f"{lock_path} is locked by a process not in {self.pid_file}; "
                        "another broker is using this data dir")
                time.sleep(0.1)
            lock_path.unlink(missing_ok=True)

    def _write_properties(self) -> None:
        listeners = (f"PLAINTEXT://{self.HOST}:{self.port},"
                     f"CONTROLLER://{self.HOST}:{self.controller_port}")
        props = {
            "process.roles": "broker,controller",
            "node.id": "1",
            "controller.quorum.bootstrap.servers": f"{self.HOST}:{self.controller_port}",
            "listeners": listeners,
            "advertised.listeners": listeners,
            "controller.listener.names": "CONTROLLER",
            "inter.broker.listener.name": "PLAINTEXT",
            "listener.security.protocol.map": "CONTROLLER:PLAINTEXT,PLAINTEXT:PLAINTEXT",
            "log.dirs": str(self.log_dir),
            "num.partitions": "1",
            "auto.create.topics.enable": "true",
            # One node: every internal topic must fit on it.
            "offsets.topic.replication.factor": "1",
            "transaction.state.log.replication.factor": "1",
            "transaction.state.log.min.isr": "1",
            "share.coordinator.state.topic.replication.factor": "1",
            "share.coordinator.state.topic.min.isr": "1",
            # Fewer internal partitions: the first consumer group and the first transaction
            # then create 4 partitions, not 50 (seconds saved on a 2-core box).
            "offsets.topic.num.partitions": "4",
            "transaction.state.log.num.partitions": "4",
            # Consumers join at once instead of waiting 3 s for more members.
            "group.initial.rebalance.delay.ms": "0",
            # After a kill -9 the controller refuses the new incarnation's registration
            # until the old one's session expires (default 9 s, ~16 s to ready); on loopback
            # a 4 s session is plenty and makes crash-restart ~2x faster.
            "broker.heartbeat.interval.ms": "1000",
            "broker.session.timeout.ms": "4000",
            # Small machine: fewer threads than the defaults (3 network, 8 I/O).
            "num.network.threads": "2",
            "num.io.threads": "4",
        }
        text = "# Generated by radixinsight.services.kafka_broker; rewritten on every start.\n"
        text += "".join(f"{k}={v}\n" for k, v in props.items())
        self.properties_file.write_text(text)

    def _java(self, lib: Path, jvm_opts: list[str], main: list[str]) -> list[str]:
        logs = self.data_dir / "logs"
        logs.mkdir(parents=True, exist_ok=True)
        return ["java", *jvm_opts, f"-Dlog4j2.configurationFile={LOG4J2_CONFIG}",
                f"-Dkafka.logs.dir={logs}", "-Djava.awt.headless=true",
                "-cp", f"{lib}/*", *main]

    def _format(self, lib: Path) -> None:
        cmd = self._java(lib, ["-Xmx256m"], [
            "kafka.tools.StorageTool", "format", "--standalone", f"--cluster-id={self.cluster_id}",
            "--config", str(self.properties_file)])
        proc = subprocess.run(cmd, capture_output=True, text=True, check=False)
        if proc.returncode != 0:
            raise KafkaBrokerError(f"formatting {self.log_dir} failed (exit {proc.returncode}):\n"
                                   + "\n".join((proc.stdout + proc.stderr).splitlines()[-25:]))

    def _launch(self, lib: Path) -> None:
        jvm_opts = [f"-Xmx{self.heap}", "-Xms64m",
                    # Kafka's own defaults (kafka-run-class.sh): G1 with short pauses.
                    "-XX:+UseG1GC", "-XX:MaxGCPauseMillis=20",
                    "-XX:InitiatingHeapOccupancyPercent=35", "-XX:+ExplicitGCInvokesConcurrent",
                    "-XX:+ExitOnOutOfMemoryError"]
        cmd = self._java(lib, jvm_opts, ["kafka.Kafka", str(self.properties_file)])
        with open(self.stdout_log, "ab") as out:
            out.write(f"\n=== start {time.strftime('%Y-%m-%dT%H:%M:%S')} ===\n".encode())
            out.flush()
            # Own session: Ctrl-C in a terminal or a dying pytest does not signal the broker;
            # it is stopped explicitly, by pid.
            self._proc = subprocess.Popen(cmd, stdin=subprocess.DEVNULL, stdout=out,
                                          stderr=subprocess.STDOUT, start_new_session=True,
                                          cwd=self.data_dir)
        self.pid_file.write_text(f"{self._proc.pid}\n")

    def _wait_ready(self, deadline: float) -> None:
        """Poll until a metadata request lists this broker (it has joined the cluster)."""
        last_error = "port not open"
        while time.monotonic() < deadline:
            if not self._own_process_alive():
                raise KafkaBrokerError(self._failure("Kafka broker exited during startup"))
            if port_open(self.port, self.HOST):
                try:
                    if _cluster_brokers(self.bootstrap, timeout_ms=2000):
                        return
                    last_error = "metadata lists no brokers yet"
                except Exception as exc:  # any client error means "not ready yet"
                    last_error = f"{type(exc).__name__}: {exc}"
            time.sleep(0.2)
        raise KafkaBrokerError(self._failure(
            f"Kafka broker on {self.bootstrap} not ready before the deadline ({last_error})"))

    def _wait_exit(self, pid: int, timeout_s: float) -> bool:
        deadline = time.monotonic() + timeout_s
        while pid_alive(pid):
            if time.monotonic() > deadline:
                return False
            time.sleep(0.1)
        # A zombie counts as exited, but give its remaining threads (which still hold the
        # log dir's lock) and init's reaping a moment, so "stopped" means "gone" when it can.
        gone_by = time.monotonic() + 2
        while Path(f"/proc/{pid}").exists() and time.monotonic() < gone_by:
            time.sleep(0.05)
        return True

    def _failure(self, headline: str) -> str:
        return (f"{headline}\n--- {self.stdout_log} ---\n{_tail(self.stdout_log, 20)}"
                f"\n--- {self.server_log} ---\n{_tail(self.server_log, 40)}")


def _admin(bootstrap: str, timeout_ms: int):  # -> KafkaAdminClient (imported lazily: heavy)
    from kafka import KafkaAdminClient

    return KafkaAdminClient(bootstrap_servers=bootstrap, client_id="radixinsight-admin",
                            bootstrap_timeout_ms=timeout_ms, request_timeout_ms=timeout_ms)


def _cluster_brokers(bootstrap: str, timeout_ms: int) -> list:
    admin = _admin(bootstrap, timeout_ms)
    try:
        return list(admin.describe_cluster().get("brokers") or [])
    finally:
        admin.close()


def create_topics(bootstrap: str, names: Iterable[str], partitions: int = 1,
                  replication_factor: int = 1, configs: Mapping[str, str] | None = None,
                  timeout_s: float = 30) -> list[str]:
    """Create the topics that do not exist yet and wait until every one has a leader.

    Idempotent: existing topics are left as they are (their partition count is not
    changed). Returns the names that were created by this call.
    """
    from kafka.errors import for_code

    wanted = list(dict.fromkeys(names))
    timeout_ms = int(timeout_s * 1000)
    admin = _admin(bootstrap, timeout_ms)
    try:
        missing = [n for n in wanted if n not in set(admin.list_topics())]
        created: list[str] = []
        if missing:
            spec = {n: {"num_partitions": partitions, "replication_factor": replication_factor,
                        "configs": dict(configs or {})} for n in missing}
            result = admin.create_topics(spec, timeout_ms=timeout_ms, raise_errors=False)
            for topic in result["topics"]:
                code = topic["error_code"]
                if code == 0:
                    created.append(topic["name"])
                elif code != _ERR_TOPIC_ALREADY_EXISTS:  # lost a race: fine
                    raise for_code(code)(f"creating topic {topic['name']}: "
                                         f"{topic.get('error_message')}")
        admin.wait_for_topics(wanted, timeout_ms=timeout_ms)
        return created
    finally:
        admin.close()
