"""Fetch and locate the non-Python parts of the stack (Kafka jars, Prism, Flink job server).

Everything is cached under ``RADIX_CACHE`` (default ``~/.cache/radixinsight``) so a
second run is fast and nothing is downloaded while a pipeline runs.
"""

from __future__ import annotations

import os
import subprocess
import zipfile
from pathlib import Path

REPO_ROOT = Path(__file__).resolve().parents[2]
DEPLOY_DIR = REPO_ROOT / "deploy"


class ToolchainError(RuntimeError):
    """A required external tool (java, mvn, go) is missing or a fetch failed."""


def cache_dir() -> Path:
    """Root of the download/build cache, created on first use."""
    root = Path(os.environ.get("RADIX_CACHE", Path.home() / ".cache" / "radixinsight"))
    root.mkdir(parents=True, exist_ok=True)
    return root


def run_tool(cmd: list[str], *, what: str, env: dict[str, str] | None = None,
             cwd: Path | None = None) -> str:
    """Run a build tool and return its standard output; on failure raise with the tail of
    its output, not a bare exit code."""
    try:
        proc = subprocess.run(cmd, cwd=cwd, env={**os.environ, **(env or {})},
                              capture_output=True, text=True, check=False)
    except FileNotFoundError as exc:
        raise ToolchainError(f"{what}: '{cmd[0]}' is not installed") from exc
    if proc.returncode != 0:
        tail = "\n".join((proc.stdout + proc.stderr).strip().splitlines()[-25:])
        raise ToolchainError(f"{what} failed (exit {proc.returncode}):\n{tail}")
    return proc.stdout


def maven_copy_dependencies(pom: Path, out_dir: Path, *, what: str) -> Path:
    """Resolve ``pom``'s runtime dependencies from Maven and copy the jars into ``out_dir``."""
    out_dir.mkdir(parents=True, exist_ok=True)
    run_tool(["mvn", "-B", "-q", "-f", str(pom), "dependency:copy-dependencies",
              "-DincludeScope=runtime", f"-DoutputDirectory={out_dir}"], what=what)
    return out_dir


def write_pathing_jar(jar: Path, main_class: str, classpath: list[Path]) -> Path:
    """Write a manifest-only jar whose Class-Path lists ``classpath``.

    Tools that want one runnable jar (``java -jar``, Beam's ``--flink_job_server_jar``)
    can then use a classpath assembled from Maven without a shading step.
    """
    rel = [os.path.relpath(p, jar.parent) for p in classpath]
    attrs = [("Manifest-Version", "1.0"), ("Main-Class", main_class),
             ("Class-Path", " ".join(rel)), ("Created-By", "radixinsight")]
    lines: list[str] = []
    for key, value in attrs:
        line = f"{key}: {value}".encode()
        # Manifest lines are limited to 72 bytes; continuations start with a space.
        lines.append(line[:72].decode())
        rest = line[72:]
        while rest:
            lines.append(" " + rest[:71].decode())
            rest = rest[71:]
    jar.parent.mkdir(parents=True, exist_ok=True)
    tmp = jar.with_suffix(".tmp")
    with zipfile.ZipFile(tmp, "w") as zf:
        zf.writestr("META-INF/MANIFEST.MF", "\r\n".join(lines) + "\r\n\r\n")
    tmp.replace(jar)
    return jar
