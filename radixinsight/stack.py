"""The whole local stack under ``.radixinsight/``: Kafka, store, collector, streaming job.

Each component is a background process with a pid file and a log file, so ``up`` is
idempotent (running components are left alone), ``down`` stops exactly what ``up``
started, and ``status`` can be asked from any shell.
"""

from __future__ import annotations

import json
import os
import sys
import time
from dataclasses import asdict, dataclass
from pathlib import Path
from typing import Any

from radixinsight import procs

TOPICS = ("events.raw", "events.dlq", "alerts")
DEFAULT_PORTS = {"kafka": 9092, "store": 8123, "collector": 8080}
DEMO_PROJECT = "demo"


def home_dir() -> Path:
    return Path(os.environ.get("RADIX_HOME", Path.cwd() / ".radixinsight")).resolve()


@dataclass
class StackConfig:
    kafka_port: int
    store_port: int
    collector_port: int
    runner: str = "prism"
    store_url: str | None = None  # an external ClickHouse; None = our store server
    kafka_bootstrap: str | None = None  # an external Kafka; None = our broker
    topic_prefix: str = "radix"

    @property
    def bootstrap(self) -> str:
        return self.kafka_bootstrap or f"127.0.0.1:{self.kafka_port}"

    @property
    def store(self) -> str:
        return self.store_url or f"http://127.0.0.1:{self.store_port}"

    @property
    def collect_url(self) -> str:
        return f"http://127.0.0.1:{self.collector_port}/collect"


def _pick_port(name: str) -> int:
    port = DEFAULT_PORTS[name]
    return port if not procs.port_open(port) else procs.free_port()


class Stack:
    def __init__(self, home: Path | None = None) -> None:
        self.home = home or home_dir()
        self.run_dir = self.home / "run"
        self.log_dir = self.home / "logs"
        self.config_file = self.home / "stack.json"

    # -- configuration -------------------------------------------------------
    def load_config(self) -> StackConfig | None:
        if not self.config_file.exists():
            return None
        return StackConfig(**json.loads(self.config_file.read_text()))

    def configure(self, *, runner: str, store_url: str | None) -> StackConfig:
        """Reuse the ports of an earlier ``up`` (offsets, URLs stay valid), else pick."""
        cfg = self.load_config()
        if cfg is None or not self._any_running():
            cfg = StackConfig(kafka_port=cfg.kafka_port if cfg else _pick_port("kafka"),
                              store_port=cfg.store_port if cfg else _pick_port("store"),
                              collector_port=cfg.collector_port if cfg else _pick_port(
                                  "collector"))
        cfg.runner = runner
        cfg.store_url = store_url or os.environ.get("RADIX_STORE") or None
        cfg.kafka_bootstrap = os.environ.get("RADIX_KAFKA_BOOTSTRAP") or None
        self.home.mkdir(parents=True, exist_ok=True)
        self.config_file.write_text(json.dumps(asdict(cfg), indent=2) + "\n")
        return cfg

    def pid_file(self, name: str) -> Path:
        return self.run_dir / f"{name}.pid"

    def log_file(self, name: str) -> Path:
        return self.log_dir / f"{name}.log"

    def _any_running(self) -> bool:
        return any(procs.read_pid(self.pid_file(n)) for n in ("store", "collector", "pipeline"))

    # -- components ----------------------------------------------------------
    def broker(self, cfg: StackConfig):
        from radixinsight.services.kafka_broker import KafkaBroker

        return KafkaBroker(self.home / "kafka", port=cfg.kafka_port)

    def _spawn(self, name: str, args: list[str], env: dict[str, str] | None = None) -> bool:
        if procs.read_pid(self.pid_file(name)) is not None:
            return False
        cmd = [sys.executable, "-m", "radixinsight.cli", *args]
        procs.spawn(cmd, pid_file=self.pid_file(name), log_file=self.log_file(name), env=env)
        return True

    def _alive(self, name: str):
        return lambda: procs.read_pid(self.pid_file(name)) is not None

    def start(self, cfg: StackConfig, say=print) -> None:
        from radixinsight.services.kafka_broker import create_topics
        from radixinsight.toolchain.kafka import ensure_kafka_libs

        if cfg.kafka_bootstrap is None:
            say("· Kafka: resolving jars (cached after the first run)")
            ensure_kafka_libs()
            broker = self.broker(cfg)
            if not broker.is_running():
                say(f"· Kafka: starting broker on {cfg.bootstrap}")
                broker.start()
        create_topics(cfg.bootstrap, [f"{cfg.topic_prefix}.{t}" for t in TOPICS])

        if cfg.store_url is None:
            if self._spawn("store", ["store", "serve", "--path", str(self.home / "store"),
                                     "--port", str(cfg.store_port)]):
                say(f"· store: serving {self.home / 'store'} on {cfg.store}")
            procs.wait_until(lambda: procs.port_open(cfg.store_port), timeout_s=60,
                             what="store server", alive=self._alive("store"),
                             log_file=self.log_file("store"))
        from radixinsight.store import connect
        from radixinsight.store.migrate import migrate

        applied = migrate(connect(cfg.store))
        say(f"· store: schema up to date ({len(applied)} migration(s) applied now)")

        env = {"RADIX_KAFKA_BOOTSTRAP": cfg.bootstrap, "RADIX_PROJECTS": str(self.projects_file),
               "RADIX_TOPIC_PREFIX": cfg.topic_prefix}
        if self._spawn("collector", ["collector", "serve", "--port", str(cfg.collector_port)],
                       env):
            say(f"· collector: {cfg.collect_url}")
        procs.wait_until(lambda: procs.port_open(cfg.collector_port), timeout_s=60,
                         what="collector", alive=self._alive("collector"),
                         log_file=self.log_file("collector"))

        if cfg.runner != "prism":
            from pipelines.runners import runner_args

            runner_args([f"--runner={cfg.runner}"], streaming=True)  # fetch jars before forking
        if not self.projects_file.exists():  # the job validates against the registry
            from collector.projects import Registry

            Registry({}).save(self.projects_file)
        if self._spawn("pipeline", ["pipeline", "stream", f"--runner={cfg.runner}",
                                    f"--projects={self.projects_file}",
                                    f"--kafka_bootstrap={cfg.bootstrap}", f"--store={cfg.store}",
                                    f"--topic_prefix={cfg.topic_prefix}"]):
            say(f"· pipeline: streaming job on {cfg.runner} (log {self.log_file('pipeline')})")

    @property
    def projects_file(self) -> Path:
        return self.home / "projects.json"

    def demo_key(self) -> str:
        """The demo project's write key, created on first use (local stack only)."""
        from collector.projects import Registry, new_key

        key_file = self.home / "demo-key"
        if key_file.exists():
            return key_file.read_text().strip()
        key = new_key()
        registry = Registry.load(self.projects_file)
        registry.add_key(DEMO_PROJECT, key, key_id="demo")
        registry.save(self.projects_file)
        key_file.write_text(key + "\n")
        key_file.chmod(0o600)
        return key

    def stop(self, cfg: StackConfig | None, say=print) -> None:
        for name in ("pipeline", "collector", "store"):
            if procs.stop_pid_file(self.pid_file(name)):
                say(f"· stopped {name}")
        if cfg is not None and cfg.kafka_bootstrap is None:
            broker = self.broker(cfg)
            if broker.is_running():
                broker.stop()
                say("· stopped kafka")

    def status(self) -> list[dict[str, Any]]:
        cfg = self.load_config()
        rows = []
        if cfg is not None:
            running = cfg.kafka_bootstrap is not None or self.broker(cfg).is_running()
            rows.append({"component": "kafka", "running": running, "address": cfg.bootstrap})
        addresses = {"store": cfg.store if cfg else "", "collector": cfg.collect_url if cfg else "",
                     "pipeline": cfg.runner if cfg else ""}
        for name in ("store", "collector", "pipeline"):
            pid = procs.read_pid(self.pid_file(name))
            rows.append({"component": name, "running": pid is not None, "pid": pid,
                         "address": addresses[name]})
        return rows


def wait_for_rows(client: Any, sql: str, target: int, timeout_s: float) -> int:
    """Poll ``sql`` (a count) until it reaches ``target``; return the last count."""
    deadline = time.monotonic() + timeout_s
    count = 0
    while time.monotonic() < deadline:
        count = int(client.query(sql).result_rows[0][0])
        if count >= target:
            break
        time.sleep(0.5)
    return count
