"""Apache Kafka broker jars, resolved by Maven from ``deploy/kafka/pom.xml``.

There is no Kafka tarball to download here, only Maven Central; the broker runs from
the runtime closure of ``org.apache.kafka:kafka_2.13`` as
``java -cp '<lib>/*' kafka.Kafka server.properties``.

Run ``python -m radixinsight.toolchain.kafka`` to fetch the jars ahead of time; it prints
the lib directory.
"""

from __future__ import annotations

import fcntl
import hashlib
import shutil
import sys
import xml.etree.ElementTree as ET
from pathlib import Path

from radixinsight.toolchain import DEPLOY_DIR, ToolchainError, cache_dir, maven_copy_dependencies

KAFKA_DEPLOY_DIR = DEPLOY_DIR / "kafka"
POM = KAFKA_DEPLOY_DIR / "pom.xml"
LOG4J2_CONFIG = KAFKA_DEPLOY_DIR / "log4j2.properties"
# Written last: its presence (with the pom's hash) means the lib directory is complete.
MARKER = ".complete"
_NS = {"m": "http://maven.apache.org/POM/4.0.0"}


def kafka_version(pom: Path = POM) -> str:
    """The Kafka version the pom pins (its ``kafka.version`` property)."""
    node = ET.parse(pom).getroot().find("m:properties/m:kafka.version", _NS)
    if node is None or not (node.text or "").strip():
        raise ToolchainError(f"{pom}: no <kafka.version> property")
    return node.text.strip()


def kafka_home(version: str | None = None) -> Path:
    """``cache_dir()/kafka/<version>``; its ``lib`` holds the jars once fetched."""
    return cache_dir() / "kafka" / (version or kafka_version())


def _pom_digest(pom: Path) -> str:
    # Editing the pom (say, a log4j bump) must refetch even when the Kafka version is unchanged.
    return hashlib.sha256(pom.read_bytes()).hexdigest()


def _is_complete(lib: Path, digest: str) -> bool:
    marker = lib / MARKER
    return marker.is_file() and marker.read_text().strip() == digest


def ensure_kafka_libs(pom: Path = POM) -> Path:
    """Return the directory of broker jars, resolving them with Maven on first use.

    Idempotent and safe to call from concurrent processes: a file lock serialises fetches,
    jars are copied into a scratch directory that replaces ``lib`` only when complete, and
    later calls return at once when the marker matches the pom.
    """
    home = kafka_home(kafka_version(pom))
    lib = home / "lib"
    digest = _pom_digest(pom)
    if _is_complete(lib, digest):
        return lib
    home.mkdir(parents=True, exist_ok=True)
    with open(home / ".lock", "w") as lock:
        fcntl.flock(lock, fcntl.LOCK_EX)
        if _is_complete(lib, digest):  # another process fetched while we waited
            return lib
        scratch = home / "lib.partial"
        shutil.rmtree(scratch, ignore_errors=True)
        maven_copy_dependencies(pom, scratch, what=f"resolving Kafka {home.name} jars")
        if not any(scratch.glob("kafka_2.13-*.jar")):
            raise ToolchainError(f"Maven copied no kafka_2.13 jar into {scratch}")
        (scratch / MARKER).write_text(digest + "\n")
        shutil.rmtree(lib, ignore_errors=True)
        scratch.rename(lib)
    return lib


def main() -> int:
    print(ensure_kafka_libs())
    return 0


if __name__ == "__main__":
    sys.exit(main())
