"""``radixinsight`` command line (surface fixed in ARCHITECTURE.md)."""

from __future__ import annotations

import argparse
import json
import os
import signal
import sys
import time
from pathlib import Path
from typing import Any


def _store_arg(p: argparse.ArgumentParser) -> None:
    p.add_argument("--store", default=None,
                   help="ClickHouse URL: chdb:///DIR or http(s)://HOST:PORT "
                        "(default $RADIX_STORE, else the embedded store)")


def build_parser() -> argparse.ArgumentParser:
    parser = argparse.ArgumentParser(prog="radixinsight",
                                     description="RadixInsight product-analytics pipeline")
    sub = parser.add_subparsers(dest="cmd", required=True)

    up = sub.add_parser("up", help="start the local stack (Kafka, store, collector, pipeline)")
    up.add_argument("--demo", action="store_true", help="send demo traffic and print a report")
    up.add_argument("--detach", action="store_true", help="return once started; stop with down")
    up.add_argument("--runner", choices=["prism", "flink", "direct"], default="prism")
    up.add_argument("--demo-users", type=int, default=800, help="simulated users (--demo)")
    _store_arg(up)
    sub.add_parser("down", help="stop the local stack")
    sub.add_parser("status", help="show what runs in the local stack")

    col = sub.add_parser("collector", help="the HTTP collector").add_subparsers(
        dest="sub", required=True)
    cs = col.add_parser("serve", help="serve POST /collect")
    cs.add_argument("--host", default="127.0.0.1")
    cs.add_argument("--port", type=int, default=8080)
    cs.add_argument("--workers", type=int, default=int(os.environ.get("RADIX_WORKERS", "1")),
                    help="worker processes (default $RADIX_WORKERS or 1); settings: README")

    pr = sub.add_parser("projects", help="the project registry (write keys, origins)")
    prs = pr.add_subparsers(dest="sub", required=True)
    pa = prs.add_parser("add", help="create a project (or update its origins) and print a new key")
    pa.add_argument("project_id")
    pa.add_argument("--origin", action="append", default=[], dest="origins",
                    help="allowed browser origin, e.g. https://app.example.com (repeatable; "
                         "* = any); replaces the project's list")
    pa.add_argument("--keyless", action="store_true",
                    help="accept events without a key from the allowed origins")
    pa.add_argument("--no-key", action="store_true", help="do not create a write key")
    prs.add_parser("list", help="projects, keys (ids only) and origins")
    pk = prs.add_parser("rotate-key", help="issue a new key; the current ones expire")
    pk.add_argument("project_id")
    pk.add_argument("--grace-s", type=float, default=0,
                    help="seconds the current keys keep working (default 0: at once)")
    for p in (pa, pk, prs.choices["list"]):
        p.add_argument("--file", type=Path, default=None,
                       help="registry file (default $RADIX_PROJECTS, "
                            "else .radixinsight/projects.json)")

    store = sub.add_parser("store", help="the embedded ClickHouse store").add_subparsers(
        dest="sub", required=True)
    ss = store.add_parser("serve", help="serve one chDB directory over the ClickHouse HTTP API")
    ss.add_argument("--path", type=Path, default=Path(".radixinsight/store"))
    ss.add_argument("--host", default="127.0.0.1")
    ss.add_argument("--port", type=int, default=8123)

    pipe = sub.add_parser("pipeline", help="Beam jobs").add_subparsers(dest="sub", required=True)
    pipe.add_parser("stream", help="the streaming job; other options go to Beam",
                    add_help=False)
    pipe.add_parser("archive", help="raw topic -> hourly Avro files; other options go to Beam",
                    add_help=False)
    pipe.add_parser("backfill", help="archived files through the same transforms (batch): "
                    "--input GLOB [--format jsonl|avro] [--output store|jsonl:DIR]",
                    add_help=False)

    ident = sub.add_parser("identity", help="identity links").add_subparsers(
        dest="sub", required=True)
    for name, what in (("unlink", "remove a link; queries follow at once"),
                       ("list", "show the links of a browser or a user")):
        ip = ident.add_parser(name, help=what)
        ip.add_argument("--project", required=True)
        ip.add_argument("--anonymous-id", default=None)
        ip.add_argument("--user", default=None)
        _store_arg(ip)

    en = sub.add_parser("enrich", help="parse, validate and enrich a JSONL file (batch)")
    en.add_argument("--input", required=True, help="JSONL of events or collector envelopes")
    en.add_argument("--output", required=True, help="JSONL of enriched rows and bad rows")
    en.add_argument("--geoip-db", default=None,
                    help="MaxMind-format City database (default $RADIX_GEOIP_DB; none: no geo)")
    en.add_argument("--anonymize-ip", action="store_true",
                    help="zero the last octet (IPv4) / 80 bits (IPv6) after the geo lookup")
    en.add_argument("--projects", default=None,
                    help="project registry JSON (default $RADIX_PROJECTS; none: any project)")

    db = sub.add_parser("db", help="schema").add_subparsers(dest="sub", required=True)
    _store_arg(db.add_parser("migrate", help="apply pending ClickHouse migrations"))

    sql = sub.add_parser("sql", help="run one SQL statement against the store")
    sql.add_argument("statement")
    sql.add_argument("--format", choices=["table", "json"], default="table")
    _store_arg(sql)

    tc = sub.add_parser("toolchain", help="fetch/build Kafka jars, Prism, Flink job server")
    tc.add_argument("parts", nargs="*", default=["kafka", "prism"],
                    choices=["kafka", "prism", "flink"])
    return parser


def main(argv: list[str] | None = None) -> int:
    argv = list(sys.argv[1:] if argv is None else argv)
    # RADIX_LOG_LEVEL=INFO also shows what a runner logs at INFO: the Flink job server
    # reports a failing job (e.g. a checkpoint error) only there.
    import logging

    logging.basicConfig(level=os.environ.get("RADIX_LOG_LEVEL", "WARNING").upper())
    if argv[:2] == ["pipeline", "stream"]:
        from pipelines.streaming import run

        run(argv[2:])
        return 0
    if argv[:2] == ["pipeline", "archive"]:
        from pipelines.archive import run as run_archive

        run_archive(argv[2:])
        return 0
    if argv[:2] == ["pipeline", "backfill"]:
        from pipelines.backfill import run as backfill

        backfill(argv[2:])
        return 0
    args = build_parser().parse_args(argv)
    try:
        return COMMANDS[args.cmd](args)
    except KeyboardInterrupt:
        return 130
    except Exception as exc:  # one clear line instead of a traceback for known failures
        from radixinsight.toolchain import ToolchainError

        if isinstance(exc, ToolchainError | TimeoutError | RuntimeError | ConnectionError
                      | FileNotFoundError | ValueError):
            print(f"radixinsight: error: {exc}", file=sys.stderr)
            return 1
        raise


def cmd_collector(args: argparse.Namespace) -> int:
    from collector.serve import serve

    serve(args.host, args.port, workers=args.workers)
    return 0


def cmd_projects(args: argparse.Namespace) -> int:
    from collector.projects import Registry, default_path, new_key

    path = args.file or default_path()
    registry = Registry.load(path)
    if args.sub == "list":
        rows = [[p.project_id, ", ".join(
            k.key_id + (f" (expires {k.expires_at})" if k.expires_at else "") for k in p.keys),
            ", ".join(p.allowed_origins), "yes" if p.allow_keyless else "no"]
            for p in registry.projects.values()]
        print(format_table(["project", "keys", "allowed origins", "keyless"], rows))
        return 0
    if args.sub == "add":
        project = registry.add_project(args.project_id,
                                       allowed_origins=tuple(args.origins) or None,
                                       allow_keyless=True if args.keyless else None)
        key = None if args.no_key else new_key()
        if key:
            registry.add_key(project.project_id, key)
        registry.save(path)
        print(f"project {project.project_id} saved in {path}")
    else:
        key, write_key = registry.rotate_key(args.project_id, args.grace_s)
        registry.save(path)
        print(f"new key {write_key.key_id} for {args.project_id}; the previous keys "
              + ("expire now" if not args.grace_s else f"expire in {args.grace_s:g}s"))
    if key:  # shown once: only its hash is stored
        print(f"write key: {key}")
    return 0


def cmd_store(args: argparse.Namespace) -> int:
    from radixinsight.store.server import serve

    serve(args.path.resolve(), host=args.host, port=args.port)
    return 0


def cmd_db(args: argparse.Namespace) -> int:
    from radixinsight.store import connect
    from radixinsight.store.migrate import migrate

    applied = migrate(connect(args.store))
    print(f"applied {len(applied)} migration(s)" + (f": {', '.join(applied)}" if applied else ""))
    return 0


def cmd_sql(args: argparse.Namespace) -> int:
    from radixinsight.store import connect

    result = connect(args.store).query(args.statement)
    if args.format == "json":
        for row in result.named_results():
            print(json.dumps(row, default=str))
    else:
        print(format_table(result.column_names, result.result_rows))
    return 0


def format_table(columns: list[str] | tuple[str, ...], rows: list[Any]) -> str:
    cells = [list(map(str, columns))] + [[str(v) for v in row] for row in rows]
    widths = [max(len(r[i]) for r in cells) for i in range(len(columns))]
    lines = ["  ".join(c.ljust(w) for c, w in zip(row, widths, strict=True)) for row in cells]
    lines.insert(1, "  ".join("-" * w for w in widths))
    return "\n".join(lines)


def cmd_enrich(args: argparse.Namespace) -> int:
    import os

    from collector.projects import Registry
    from pipelines.enrich_file import run
    from transforms.enrichments import EnrichConfig, geo
    from transforms.validate import ValidateConfig

    projects_path = args.projects or os.environ.get("RADIX_PROJECTS")
    if projects_path:
        validate = ValidateConfig(projects=Registry.load(Path(projects_path)).projects)
    else:
        print("note: no project registry given; events of every project are accepted",
              file=sys.stderr)
        validate = ValidateConfig()
    geo_db = args.geoip_db or os.environ.get("RADIX_GEOIP_DB")
    if not geo_db:
        print("note: no GeoIP database (--geoip-db / RADIX_GEOIP_DB): country, region and "
              "city stay empty", file=sys.stderr)
    enrich = EnrichConfig({"geo": geo.Config(db_path=geo_db, anonymize_ip=args.anonymize_ip)})
    run(args.input, args.output, validate, enrich)
    return 0


def cmd_identity(args: argparse.Namespace) -> int:
    from radixinsight.identity import list_links, unlink
    from radixinsight.store import connect

    client = connect(args.store)
    if args.sub == "unlink":
        if not (args.anonymous_id and args.user):
            raise ValueError("unlink needs --anonymous-id and --user")
        unlink(client, args.project, args.anonymous_id, args.user)
        print(f"unlinked {args.anonymous_id} from {args.user} in {args.project}")
        return 0
    rows = list_links(client, args.project, anonymous_id=args.anonymous_id, user_id=args.user)
    print(format_table(["anonymous_id", "user_id", "status", "linked_at", "event_id", "source"],
                       rows))
    return 0


def cmd_toolchain(args: argparse.Namespace) -> int:
    for part in dict.fromkeys(args.parts):
        if part == "kafka":
            from radixinsight.toolchain.kafka import ensure_kafka_libs as ensure
        elif part == "prism":
            from radixinsight.toolchain.prism import ensure_prism as ensure
        else:
            from radixinsight.toolchain.flink import ensure_flink_job_server as ensure
        print(f"{part}: {ensure()}")
    return 0


def cmd_status(_args: argparse.Namespace) -> int:
    from radixinsight.stack import Stack

    rows = Stack().status()
    if not rows:
        print("no local stack configured (run: radixinsight up)")
        return 0
    print(format_table(["component", "state", "pid", "address"],
                       [[r["component"], "running" if r["running"] else "stopped",
                         r.get("pid") or "", r["address"]] for r in rows]))
    return 0


def cmd_down(_args: argparse.Namespace) -> int:
    from radixinsight.stack import Stack

    stack = Stack()
    stack.stop(stack.load_config())
    return 0


def cmd_up(args: argparse.Namespace) -> int:
    from radixinsight.stack import Stack

    stack = Stack()
    cfg = stack.configure(runner=args.runner, store_url=args.store)
    # Ctrl-C stops the stack even when started from a shell that ignores SIGINT for
    # background jobs, and SIGTERM (a supervisor) does the same.
    signal.signal(signal.SIGINT, signal.default_int_handler)
    signal.signal(signal.SIGTERM, signal.default_int_handler)
    try:
        if args.demo:
            stack.demo_key()
        stack.start(cfg)
        if args.demo:
            from radixinsight.demo_run import run_demo

            run_demo(stack, cfg, users=args.demo_users)
        if args.detach:
            print("stack running; stop it with: radixinsight down")
            return 0
        print("stack running; press Ctrl-C to stop")
        while all(r["running"] for r in stack.status()):
            time.sleep(1)
        print("a component stopped; see radixinsight status and .radixinsight/logs",
              file=sys.stderr)
        return 1
    except KeyboardInterrupt:
        print("\nstopping…")
        return 0
    finally:
        if not args.detach:
            stack.stop(cfg)


COMMANDS = {"enrich": cmd_enrich, "up": cmd_up, "down": cmd_down, "status": cmd_status,
            "collector": cmd_collector, "store": cmd_store, "db": cmd_db, "sql": cmd_sql,
            "toolchain": cmd_toolchain, "identity": cmd_identity, "projects": cmd_projects}

if __name__ == "__main__":
    sys.exit(main())
