"""Assemble the Beam Flink job server from Maven, without the shaded job-server jar.

The registry reachable here does not serve the shaded
``org.apache.beam:beam-runners-flink-<flink>-job-server`` jars, so the job server's
classpath is resolved from the unshaded runner artifacts listed in
``deploy/flink/pom.xml`` and wrapped in a manifest-only "pathing" jar whose
``Class-Path`` lists them.  Beam's ``--flink_job_server_jar`` accepts that jar as if
it were the shaded one (it is started with ``java -jar``).

Layout::

    cache_dir()/flink/<beam>-<flink>/lib/*.jar            resolved classpath
    cache_dir()/flink/<beam>-<flink>/lib/beam-flink-job-server.jar   pathing jar
    cache_dir()/flink/<beam>-<flink>/lib/.complete         marker (pom digest + jar list)

Usage from a Makefile / shell::

    python -m radixinsight.toolchain.flink            # prints the pathing jar path
    python -m radixinsight.toolchain.flink --args     # prints recommended Beam options

Versions: ``deploy/flink/pom.xml`` properties ``beam.version`` / ``flink.major``; override
with ``RADIX_FLINK_BEAM_VERSION`` / ``RADIX_FLINK_VERSION`` (a patched copy of the pom is
then resolved).  See docs/runners-flink-notes.md for why Beam 2.62.0 / Flink 1.19.
"""

from __future__ import annotations

import argparse
import contextlib
import fcntl
import hashlib
import json
import os
import re
import shutil
import sys
import tempfile
import time
from collections.abc import Iterator
from pathlib import Path
from typing import Any

from radixinsight.toolchain import (
    DEPLOY_DIR,
    ToolchainError,
    cache_dir,
    maven_copy_dependencies,
    write_pathing_jar,
)

MAIN_CLASS = "org.apache.beam.runners.flink.FlinkJobServerDriver"
POM = DEPLOY_DIR / "flink" / "pom.xml"
PATHING_JAR_NAME = "beam-flink-job-server.jar"
_MARKER = ".complete"

# JVM flags for the embedded ([local]) Flink job server on a small machine: the job
# server + embedded mini-cluster settle around 0.6-0.9 GB RSS with these.
DEFAULT_JVM_PROPERTIES = ("-Xmx1g", "-XX:+UseSerialGC")


def _pom_property(pom_text: str, name: str) -> str:
    m = re.search(rf"<{re.escape(name)}>([^<]+)</{re.escape(name)}>", pom_text)
    if not m:
        raise ToolchainError(f"{POM}: property <{name}> not found")
    return m.group(1).strip()


def versions(pom: Path = POM) -> tuple[str, str]:
    """(beam_version, flink_major) in effect: environment overrides, then the pom."""
    text = pom.read_text()
    beam = os.environ.get("RADIX_FLINK_BEAM_VERSION") or _pom_property(text, "beam.version")
    flink = os.environ.get("RADIX_FLINK_VERSION") or _pom_property(text, "flink.major")
    return beam, flink


def _effective_pom(beam: str, flink: str, work: Path) -> tuple[Path, str]:
    """The pom to resolve (patched when versions are overridden) and its digest."""
    text = POM.read_text()
    text = re.sub(r"<beam\.version>[^<]+</beam\.version>",
                  f"<beam.version>{beam}</beam.version>", text)
    text = re.sub(r"<flink\.major>[^<]+</flink\.major>",
                  f"<flink.major>{flink}</flink.major>", text)
    digest = hashlib.sha256(text.encode()).hexdigest()
    pom = work / "pom.xml"
    pom.write_text(text)
    return pom, digest


def _check_tools() -> None:
    missing = [t for t in ("java", "mvn") if shutil.which(t) is None]
    if missing:
        raise ToolchainError(
            "the Flink job server needs " + " and ".join(missing) + " on PATH "
            "(Java 11+ to run it, Maven to resolve its jars; on Debian: "
            "apt-get install openjdk-17-jre-headless maven)")


def _cached(lib: Path, digest: str) -> Path | None:
    marker = lib / _MARKER
    jar = lib / PATHING_JAR_NAME
    if not (marker.is_file() and jar.is_file()):
        return None
    try:
        info = json.loads(marker.read_text())
    except (OSError, ValueError):
        return None
    if info.get("pom_sha256") != digest:
        return None
    if not all((lib / name).is_file() for name in info.get("jars", [])):
        return None
    return jar


def job_server_dir(beam: str | None = None, flink: str | None = None) -> Path:
    b, f = versions()
    return cache_dir() / "flink" / f"{beam or b}-{flink or f}"


def ensure_flink_job_server() -> Path:
    """Return the pathing jar of a Flink job server, resolving it from Maven once.

    Fast (no subprocess) when already cached.  Raises ToolchainError if java/mvn are
    missing or Maven cannot resolve the closure.
    """
    beam, flink = versions()
    root = job_server_dir(beam, flink)
    lib = root / "lib"
    root.mkdir(parents=True, exist_ok=True)
    with tempfile.TemporaryDirectory(dir=root) as tmp:
        pom, digest = _effective_pom(beam, flink, Path(tmp))
        jar = _cached(lib, digest)
        if jar is not None:
            return jar
        _check_tools()
        # Serialise concurrent first runs (pytest-xdist, Makefile -j).
        with open(root / ".lock", "w") as lock:
            fcntl.flock(lock, fcntl.LOCK_EX)
            jar = _cached(lib, digest)
            if jar is not None:
                return jar
            staging = Path(tmp) / "lib"
            maven_copy_dependencies(
                pom, staging,
                what=f"resolving the Beam {beam} Flink {flink} job server from Maven")
            jars = sorted(p.name for p in staging.glob("*.jar"))
            if not any(n.startswith(f"beam-runners-flink-{flink}-") for n in jars):
                raise ToolchainError(f"Maven resolved no beam-runners-flink-{flink} jar "
                                     f"into {staging}")
            if lib.exists():
                shutil.rmtree(lib)
            staging.rename(lib)
            jar = write_pathing_jar(lib / PATHING_JAR_NAME, MAIN_CLASS,
                                    [lib / n for n in jars])
            (lib / _MARKER).write_text(json.dumps(
                {"beam": beam, "flink": flink, "pom_sha256": digest,
                 "main_class": MAIN_CLASS, "jars": jars}, indent=1))
            return jar


# Flink's Long.MAX_VALUE: "never shut idle sources down".
_NEVER = str(2**63 - 1)


def file_checkpoint_args() -> list[str]:
    """Heap state with checkpoints written to files, for jobs with more than a few MB of
    state: Flink's default sends checkpoints to the job manager's memory, capped at 5 MB,
    and the stream's session windows pass that within seconds at 2,000 ev/s; each failed
    checkpoint then restarted the job (measured: 110-380 ev/s with replays)."""
    base = Path(os.environ.get("RADIX_FLINK_CHECKPOINTS")
                or Path(tempfile.gettempdir()) / "radixinsight-flink-checkpoints")
    base.mkdir(parents=True, exist_ok=True)
    path = Path(tempfile.mkdtemp(prefix="job-", dir=base))  # one per job: never shared
    return ["--state_backend=filesystem", f"--state_backend_storage_path={path.as_uri()}"]


def flink_pipeline_args(*, jar: Path | None = None, streaming: bool = True,
                        parallelism: int | None = None,
                        checkpointing_interval_ms: int | None = None,
                        jvm_properties: tuple[str, ...] = DEFAULT_JVM_PROPERTIES) -> list[str]:
    """Beam options for a pipeline on embedded Flink ([local]) with a LOOPBACK worker.

    Streaming adds ``--shutdown_sources_after_idle_ms=<Long.MAX>``: without checkpointing,
    Beam's Flink runner shuts the Impulse source down at once (default 0 ms), and from then
    on a Python SDF's ``defer_remainder(delay)`` is re-run immediately (a busy loop of
    ~200 calls/s measured); keeping sources alive makes Flink honour the resume delay.
    Enabling checkpointing (``checkpointing_interval_ms``) has the same effect.

    Streaming also adds ``--finish_bundle_before_checkpointing``. Without it, a bundle that a
    checkpoint finishes keeps its output in operator state until that operator starts its
    next bundle; a stage that sees one element ever (the Kafka source's partition listing)
    then never emits it, and the job sits idle forever. Measured on the archive's kill test:
    4 of 4 runs hung without it, 5 of 5 passed with it.
    """
    jar = jar or ensure_flink_job_server()
    args = ["--runner=FlinkRunner", "--flink_master=[local]",
            f"--flink_job_server_jar={jar}", "--environment_type=LOOPBACK"]
    args += [f"--job_server_jvm_properties={p}" for p in jvm_properties]
    if streaming:
        args += ["--streaming", f"--shutdown_sources_after_idle_ms={_NEVER}",
                 "--finish_bundle_before_checkpointing"]
    if checkpointing_interval_ms:
        args.append(f"--checkpointing_interval={checkpointing_interval_ms}")
    if parallelism:
        args.append(f"--parallelism={parallelism}")
    return args


@contextlib.contextmanager
def flink_runner(options: Any) -> Iterator[Any]:
    """A ``FlinkRunner`` whose job server is started now and stopped on exit.

    ``options`` must carry ``--flink_job_server_jar`` (see :func:`flink_pipeline_args`).
    Beam's own FlinkRunner starts the job server lazily and only stops it at interpreter
    exit (atexit); tests and long-lived processes want it gone when the job is.  The
    runner object has ``job_server_startup_seconds`` set for diagnostics.
    """
    from apache_beam.runners.portability import flink_runner as beam_flink
    from apache_beam.runners.portability.job_server import StopOnExitJobServer

    server = StopOnExitJobServer(beam_flink.FlinkJarJobServer(options))
    runner = beam_flink.FlinkRunner()
    started = time.monotonic()
    server.start()
    runner.job_server_startup_seconds = time.monotonic() - started
    runner.default_job_server = lambda _options: server
    try:
        yield runner
    finally:
        server.stop()


def main(argv: list[str] | None = None) -> int:
    ap = argparse.ArgumentParser(prog="python -m radixinsight.toolchain.flink",
                                 description="Resolve (once) and print the Flink job server jar.")
    ap.add_argument("--args", action="store_true",
                    help="print the recommended Beam pipeline options, one per line")
    ns = ap.parse_args(argv)
    try:
        jar = ensure_flink_job_server()
    except ToolchainError as exc:
        print(f"error: {exc}", file=sys.stderr)
        return 1
    if ns.args:
        print("\n".join(flink_pipeline_args(jar=jar)))
    else:
        print(jar)
    return 0


if __name__ == "__main__":
    sys.exit(main())
