"""Build Beam's Prism runner from its Go module, pinned to the Python SDK's version."""

from __future__ import annotations

import os
from pathlib import Path

from radixinsight.toolchain import cache_dir, run_tool

PRISM_MODULE = "github.com/apache/beam/sdks/v2/go/cmd/prism"


def beam_version() -> str:
    """The installed apache-beam version; Prism and the Java jars must match it."""
    from apache_beam.version import __version__

    return __version__


def prism_path(version: str | None = None) -> Path:
    return cache_dir() / "prism" / f"v{version or beam_version()}" / "prism"


def ensure_prism(version: str | None = None) -> Path:
    """Return the Prism binary, building it with ``go install`` on first use."""
    binary = prism_path(version)
    if binary.exists():
        return binary
    env = {"GOBIN": str(binary.parent), "GOFLAGS": "-mod=mod",
           "GOTOOLCHAIN": os.environ.get("GOTOOLCHAIN", "local")}
    run_tool(["go", "install", f"{PRISM_MODULE}@v{version or beam_version()}"],
             what="building Prism (go install)", env=env)
    if not binary.exists():
        raise FileNotFoundError(f"go install finished but {binary} is missing")
    return binary


if __name__ == "__main__":
    print(ensure_prism())
