"""The Prism build: its source patch applies once or refuses, and the built binary has it."""

from __future__ import annotations

import subprocess

import pytest

from radixinsight.toolchain import ToolchainError
from radixinsight.toolchain.prism import (
    PATCHES,
    SELECT_SPIN,
    SourcePatch,
    apply_patch,
    ensure_prism,
    prism_path,
)

LOOP = ("\tfor {\n\t\tselect {\n\t\tcase <-dataReady:\n\t\t\tdataFinished = true\n"
        "\t\t\tif dataFinished && bundleFinished {\n")


def test_select_spin_patch_stops_selecting_on_the_closed_channel():
    patched = apply_patch(LOOP, SELECT_SPIN)
    assert "dataFinished = true\n\t\t\tdataReady = nil" in patched
    assert patched.replace(SELECT_SPIN.new, SELECT_SPIN.old) == LOOP


@pytest.mark.parametrize("source", ["package internal\n", LOOP + LOOP])
def test_a_patch_refuses_source_it_was_not_written_for(source):
    with pytest.raises(ToolchainError, match=r"occurs [02] times"):
        apply_patch(source, SELECT_SPIN)


def test_the_cached_binary_is_keyed_by_its_patches():
    patched, stock = prism_path("2.77.0"), prism_path("2.77.0", patches=())
    assert patched.parent.name.startswith("v2.77.0-") and stock.parent.name.startswith("v2.77.0-")
    assert patched != stock
    other = SourcePatch(SELECT_SPIN.path, SELECT_SPIN.old, SELECT_SPIN.new + "\n", "x")
    assert prism_path("2.77.0", patches=(other,)) != patched
    assert PATCHES == (SELECT_SPIN,)


@pytest.mark.integration
def test_built_prism_runs_and_carries_the_patch():
    binary = ensure_prism()
    assert binary == prism_path()
    help_text = subprocess.run([str(binary), "--help"], capture_output=True, text=True,
                               timeout=30)
    assert "-job_port" in help_text.stdout + help_text.stderr
    # the patch's comment is not in the binary, but the build came from patched source:
    # the same source the test above checks, fetched at the pinned version
    from radixinsight.toolchain.prism import _module_source, beam_version

    module = _module_source(beam_version(), {"GOFLAGS": "-mod=mod"})
    assert (module / SELECT_SPIN.path).read_text().count(SELECT_SPIN.old) == 1
