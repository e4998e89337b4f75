"""Build Beam's Prism runner from its Go module, pinned to the Python SDK's version, with
the fixes in PATCHES applied to the module's source before ``go build``."""

from __future__ import annotations

import hashlib
import json
import os
import shutil
import tempfile
from dataclasses import dataclass
from pathlib import Path

from radixinsight.toolchain import ToolchainError, cache_dir, run_tool

BEAM_GO_MODULE = "github.com/apache/beam/sdks/v2"
PRISM_PACKAGE = "./go/cmd/prism"


@dataclass(frozen=True)
class SourcePatch:
    """Replace ``old`` (which must occur exactly once) with ``new`` in ``path``."""

    path: str
    old: str
    new: str
    why: str


# Beam 2.77's stage.Execute waits for a bundle's data and its response in one select
# loop; once the data channel is closed it is always ready, so the loop spins until the
# response arrives, and for a stage with no outputs for the whole bundle. Measured on the
# stream (bench/e2e_latency.py, 1 event per browser): Prism at 94% of a core, 80% of it in
# that loop; patched, 0.2 of a core. Selecting on a nil channel blocks, as intended.
SELECT_SPIN = SourcePatch(
    path="go/pkg/beam/runners/prism/internal/stage.go",
    old="\t\tcase <-dataReady:\n\t\t\tdataFinished = true\n",
    new="\t\tcase <-dataReady:\n\t\t\tdataFinished = true\n"
        "\t\t\tdataReady = nil // radixinsight: closed, it would spin the select loop\n",
    why="stage.Execute busy-loops on a closed data channel while a bundle finishes")
PATCHES = (SELECT_SPIN,)


def beam_version() -> str:
    """The installed apache-beam version; Prism and the Java jars must match it."""
    from apache_beam.version import __version__

    return __version__


def patches_digest(patches: tuple[SourcePatch, ...] = PATCHES) -> str:
    """A short digest of the patches: part of the cached binary's path, so a binary built
    with other patches (or none) is never reused."""
    digest = hashlib.sha256()
    for patch in patches:
        digest.update(f"{patch.path}\0{patch.old}\0{patch.new}\0".encode())
    return digest.hexdigest()[:8]


def prism_path(version: str | None = None, patches: tuple[SourcePatch, ...] = PATCHES) -> Path:
    return (cache_dir() / "prism" / f"v{version or beam_version()}-{patches_digest(patches)}"
            / "prism")


def apply_patch(source: str, patch: SourcePatch) -> str:
    """``source`` with ``patch`` applied; refuses a source the patch was not written for."""
    found = source.count(patch.old)
    if found != 1:
        raise ToolchainError(
            f"cannot patch Prism's {patch.path} ({patch.why}): the code to replace occurs "
            f"{found} times, not once; check whether this Beam version still needs the fix")
    return source.replace(patch.old, patch.new)


def _module_source(version: str, env: dict[str, str]) -> Path:
    out = run_tool(["go", "mod", "download", "-json", f"{BEAM_GO_MODULE}@v{version}"],
                   what="downloading Beam's Go module", env=env)
    return Path(json.loads(out)["Dir"])


def ensure_prism(version: str | None = None) -> Path:
    """Return the Prism binary, building it (patched) on first use."""
    binary = prism_path(version)
    if binary.exists():
        return binary
    version = version or beam_version()
    env = {"GOFLAGS": "-mod=mod", "GOTOOLCHAIN": os.environ.get("GOTOOLCHAIN", "local")}
    module = _module_source(version, env)
    binary.parent.mkdir(parents=True, exist_ok=True)
    with tempfile.TemporaryDirectory(prefix="prism-src-", dir=binary.parent) as tmp:
        src = Path(tmp) / "sdks"
        # Prism is all under go/; the module cache is read-only, so build from a copy.
        shutil.copytree(module / "go", src / "go")
        for name in ("go.mod", "go.sum"):
            shutil.copy(module / name, src / name)
        for patch in PATCHES:
            path = src / patch.path
            path.chmod(0o644)
            path.write_text(apply_patch(path.read_text(), patch))
        built = Path(tmp) / "prism"
        run_tool(["go", "build", "-o", str(built), PRISM_PACKAGE], cwd=src,
                 what="building Prism (go build)", env=env)
        os.replace(built, binary)  # atomic: a concurrent build never sees half a binary
    return binary


if __name__ == "__main__":
    print(ensure_prism())
