"""Turn a short runner name into the Beam options that run it offline.

Every runner gets its binaries from the local toolchain cache, so nothing is
downloaded while a job starts (DirectRunner would otherwise try to fetch Prism).
"""

from __future__ import annotations

RUNNERS = {"prism": "PrismRunner", "flink": "FlinkRunner", "direct": "DirectRunner"}
# The stream's default Flink checkpoint interval.
FLINK_CHECKPOINT_MS = 3000


def _has(argv: list[str], flag: str) -> bool:
    return any(a == flag or a.startswith(flag + "=") for a in argv)


def runner_name(argv: list[str]) -> str:
    """The short runner name in ``argv`` (``--runner X`` or ``--runner=X``), default prism."""
    for i, arg in enumerate(argv):
        if arg.startswith("--runner="):
            value = arg.split("=", 1)[1]
        elif arg == "--runner" and i + 1 < len(argv):
            value = argv[i + 1]
        else:
            continue
        for short, full in RUNNERS.items():
            if value.lower() in (short, full.lower()):
                return short
        raise ValueError(f"unknown runner {value!r}; choose one of {', '.join(RUNNERS)}")
    return "prism"


def runner_args(argv: list[str], *, streaming: bool) -> list[str]:
    """``argv`` with the runner spelled out and its local binaries filled in."""
    short = runner_name(argv)
    out = [a for i, a in enumerate(argv)
           if not (a.startswith("--runner=") or a == "--runner"
                   or (i > 0 and argv[i - 1] == "--runner"))]
    out.append(f"--runner={RUNNERS[short]}")
    if streaming and not _has(out, "--streaming"):
        out.append("--streaming")
    if short == "prism" and not _has(out, "--prism_location"):
        from radixinsight.toolchain.prism import ensure_prism

        out.append(f"--prism_location={ensure_prism()}")
    if short == "flink":
        from radixinsight.toolchain.flink import flink_pipeline_args

        for arg in flink_pipeline_args(streaming=streaming):
            flag = arg.split("=", 1)[0]
            if flag == "--job_server_jvm_properties" or not _has(out, flag):
                out.append(arg)
        if streaming and not _has(out, "--idle_poll_s"):
            # Beam 2.62's Flink runner rounds an SDF resume delay down to whole
            # seconds: a shorter idle poll would become a busy loop.
            out.append("--idle_poll_s=1")
        if streaming and not _has(out, "--read_bundle_s"):
            out.append("--read_bundle_s=1")  # a Flink bundle round trip costs ~1 s
        if streaming and _has(out, "--checkpointing_interval"):
            _check_checkpointing(out)
        elif streaming:
            # Flink finalizes bundles (our Kafka offset commits) only after a checkpoint,
            # and the stream's latency follows the interval: 10 s gave p95 10.2 s at
            # 2,000 ev/s, 3 s gave 5.8 s (bench/e2e_latency.py, docs/runners.md).
            out.append(f"--checkpointing_interval={FLINK_CHECKPOINT_MS}")
    return out


def _check_checkpointing(argv: list[str]) -> None:
    """Refuse a streaming Flink job without checkpoints: its Kafka offsets would never
    be committed, and on the 2.62 job server the job stalls within seconds (measured:
    4,450 of 80,000 events stored, then nothing, the SDK waiting on a state request)."""
    for i, arg in enumerate(argv):
        if arg.startswith("--checkpointing_interval=") or arg == "--checkpointing_interval":
            value = arg.split("=", 1)[1] if "=" in arg else (argv[i + 1:] or [""])[0]
            try:
                ok = int(value) > 0
            except ValueError:
                ok = False
            if not ok:
                raise ValueError(
                    f"--checkpointing_interval={value}: the stream on Flink needs checkpoints "
                    "(a positive number of milliseconds); offsets are committed only at them")
