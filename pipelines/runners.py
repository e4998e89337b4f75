"""Turn a short runner name into the Beam options that run it offline.

Every runner gets its binaries from the local toolchain cache, so nothing is
downloaded while a job starts (DirectRunner would otherwise try to fetch Prism).
"""

from __future__ import annotations

RUNNERS = {"prism": "PrismRunner", "flink": "FlinkRunner", "direct": "DirectRunner"}
# The stream's default Flink checkpoint interval.
FLINK_CHECKPOINT_MS = 3000
# The stream's default Flink bundles: the Kafka reader's, and every other stage's.
FLINK_READ_BUNDLE_S = 0.5
FLINK_MAX_BUNDLE_MS = 300


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
        # Latency: an event waits for the end of the reader's bundle and of each
        # downstream stage's bundle (Flink's default is 1 s). Shorter bundles measured
        # p95 4.1-4.3 s against 4.7-5.8 s at 2,100 ev/s (bench/e2e_latency.py), with
        # the same throughput; the reader's 0.5 s still keeps up (0 topped out at
        # ~1,230 ev/s: a Flink bundle round trip is slow).
        if streaming and not _has(out, "--read_bundle_s"):
            out.append(f"--read_bundle_s={FLINK_READ_BUNDLE_S}")
        if streaming and not _has(out, "--max_bundle_time_mills"):  # Flink's spelling
            out.append(f"--max_bundle_time_mills={FLINK_MAX_BUNDLE_MS}")
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
