"""The `defender-ip` command: enrich, run, check, batch, quota and emulator."""

from __future__ import annotations

import argparse
import contextlib
import json
import logging
import sys
from pathlib import Path
from typing import Iterator

from plugin import __version__
from plugin.errors import ConfigError, InputError, PluginError
from plugin.host import run_action
from plugin.mapping import table_row
from plugin.redaction import RedactingFilter

EXIT_OK = 0
EXIT_INTERNAL = 1
EXIT_INPUT = 2
EXIT_CONNECTION = 3


def main(argv: list[str] | None = None) -> int:
    """Parse the command line, run the command, return the exit code."""
    args = _parser().parse_args(argv)
    _configure_logging(getattr(args, "verbose", False))
    try:
        return args.handler(args)
    except KeyboardInterrupt:
        print("interrupted", file=sys.stderr)
        return 130


def _parser() -> argparse.ArgumentParser:
    # -v is accepted before and after the command; SUPPRESS stops the subparser resetting it.
    verbose = argparse.ArgumentParser(add_help=False)
    verbose.add_argument("-v", "--verbose", action="store_true", default=argparse.SUPPRESS,
                         help="debug logs on stderr (never secrets or tokens)")
    parser = argparse.ArgumentParser(prog="defender-ip", parents=[verbose],
                                     description="Microsoft Defender for Endpoint IP enrichment for SOAR playbooks.")
    parser.add_argument("--version", action="version", version=f"%(prog)s {__version__}")
    commands = parser.add_subparsers(dest="command", required=True, metavar="COMMAND")

    enrich = commands.add_parser("enrich", parents=[verbose], help="enrich IPs and print a table (or --json)")
    enrich.add_argument("ips", nargs="+", metavar="IP")
    _add_connection_flags(enrich)
    enrich.add_argument("--look-back-hours", type=int, default=None, metavar="N")
    enrich.add_argument("--priority", choices=("analyst", "playbook", "scheduled"), default="analyst")
    enrich.add_argument("--max-wait-seconds", type=float, default=None, metavar="S")
    enrich.add_argument("--json", action="store_true", help="print the whole output envelope as JSON")
    enrich.set_defaults(handler=_cmd_enrich)

    run = commands.add_parser("run", parents=[verbose], help="host protocol: run an action, JSON out")
    run.add_argument("action")
    run.add_argument("--input", metavar="FILE|-", help="inputs JSON (default: stdin when piped, else {})")
    _add_connection_flags(run)
    run.set_defaults(handler=_cmd_run)

    check = commands.add_parser("check", parents=[verbose], help="test the connection: sign-in and one stats call")
    _add_connection_flags(check)
    check.set_defaults(handler=_cmd_check)

    batch = commands.add_parser("batch", parents=[verbose], help="scheduled triage: IPs from a file, NDJSON records, resumable")
    batch.add_argument("input", metavar="INPUT", help="one IP per line; '-' for stdin")
    batch.add_argument("--output", required=True, metavar="FILE", help="NDJSON records; a rerun continues it")
    _add_connection_flags(batch)
    batch.add_argument("--look-back-hours", type=int, default=720, metavar="N")
    batch.add_argument("--priority", choices=("analyst", "playbook", "scheduled"), default="scheduled")
    batch.add_argument("--max-runtime", type=float, default=None, metavar="SECONDS",
                       help="stop cleanly after this long; a rerun continues (exit 75)")
    batch.set_defaults(handler=_cmd_batch)

    quota = commands.add_parser("quota", parents=[verbose], help="show the shared budget: used/left per window, cooldown")
    quota.add_argument("--connection", metavar="FILE", help="connection JSON (default: DEFENDER_* env variables)")
    quota.add_argument("--json", action="store_true", help="print the quota state of every lane as JSON")
    quota.set_defaults(handler=_cmd_quota, emulator=False)

    emulator = commands.add_parser("emulator", parents=[verbose], help="serve the offline Defender API emulator")
    emulator.add_argument("--port", type=int, default=0)
    emulator.add_argument("--write-connection", metavar="FILE", help="write a connection JSON for the emulator")
    emulator.set_defaults(handler=_cmd_emulator)
    return parser


def _add_connection_flags(parser: argparse.ArgumentParser) -> None:
    parser.add_argument("--connection", metavar="FILE", help="connection JSON (default: DEFENDER_* env variables)")
    parser.add_argument("--emulator", action="store_true", help="start the built-in emulator and use it")


def _cmd_enrich(args) -> int:
    inputs = {"ips": args.ips, "priority": args.priority}
    if args.look_back_hours is not None:
        inputs["look_back_hours"] = args.look_back_hours
    if args.max_wait_seconds is not None:
        inputs["max_wait_seconds"] = args.max_wait_seconds
    output, code = _run_reporting(args, "enrich_ip", inputs)
    if output is not None:
        if args.json:
            _print_json(output)
        else:
            print(_text_table(output["records"]))
            summary = output["summary"]
            print(f"\n{output['status']}: " + ", ".join(f"{k} {v}" for k, v in summary.items() if v or k == "requested"))
    return code


def _text_table(records: list[dict]) -> str:
    """Aligned plain-text columns for a terminal (the envelope's markdown is for SOAR pages)."""
    rows = [("IP", "STATUS", "PREVALENCE", "FIRST SEEN", "LAST SEEN", "NOTE"), *map(table_row, records)]
    widths = [max(len(row[i]) for row in rows) for i in range(len(rows[0]) - 1)]
    return "\n".join("  ".join(cell.ljust(w) for cell, w in zip(row, widths)) + "  " + row[-1] for row in rows)


def _cmd_run(args) -> int:
    try:
        inputs = _read_inputs(args.input)
    except InputError as error:
        _print_json({"error": error.to_dict()})
        return EXIT_INPUT
    output, code = _run_reporting(args, args.action, inputs, errors_as_json=True)
    if output is not None:
        _print_json(output)
    return code


def _cmd_check(args) -> int:
    output, code = _run_reporting(args, "test_connection", {})
    if output is not None:
        print(f"OK: {output['markdown']}")
    return code


def _cmd_batch(args) -> int:
    from plugin import batch_cli

    return batch_cli.run(args)


def _cmd_quota(args) -> int:
    from plugin.config import LANES, load_connection
    from plugin.quota import make_quota

    try:
        with connection_document(args) as document:
            conn = load_connection(document)
    except PluginError as error:
        print(f"error: {error.code}: {error.message}", file=sys.stderr)
        return exit_code_for(error)
    quota = make_quota(conn)
    states = {lane: quota.state(lane) for lane in LANES}
    if args.json:
        _print_json(states)
        return EXIT_OK
    analyst = states["analyst"]
    print(f"budget {conn.budget_key} ({analyst['backend']})")
    for i, window in enumerate(analyst["windows"]):
        lane_caps = ", ".join(f"{lane} {states[lane]['windows'][i]['cap']}" for lane in LANES)
        print(f"  {window['calls']} calls / {window['per_seconds']:g} s: used {window['used']}, "
              f"left {window['left']} (caps: {lane_caps}), next slot frees in {window['next_free_in_seconds']:.1f} s")
    cooldown = analyst["cooldown_seconds"]
    print(f"  429 cooldown: {cooldown:.1f} s left" if cooldown else "  no 429 cooldown")
    return EXIT_OK


def _cmd_emulator(args) -> int:
    from plugin.emulator import serve

    serve(port=args.port, write_connection_path=args.write_connection)
    return EXIT_OK


def _run_reporting(args, action_id: str, inputs: dict, *, errors_as_json: bool = False) -> tuple[dict | None, int]:
    """Run an action; on a whole-call error report it (JSON on stdout, or text on stderr) and pick the exit code."""
    try:
        with connection_document(args) as connection:
            return run_action(action_id, inputs, connection), EXIT_OK
    except PluginError as error:
        code = exit_code_for(error)
        if errors_as_json:
            _print_json({"error": error.to_dict()})
        else:
            print(f"error: {error.code}: {error.message}", file=sys.stderr)
        return None, code


def exit_code_for(error: PluginError) -> int:
    """2 for malformed input, 1 for an output that failed its own schema (a bug), else 3."""
    if isinstance(error, InputError):
        return EXIT_INPUT
    return EXIT_INTERNAL if error.code == "output_invalid" else EXIT_CONNECTION


@contextlib.contextmanager
def connection_document(args) -> Iterator[dict]:
    """The connection document: from --connection (or {} for env vars), pointed at an in-process emulator with --emulator."""
    connection = _read_json_file(args.connection, "connection", ConfigError) if args.connection else {}
    if not args.emulator:
        yield connection
        return
    from plugin.emulator import Emulator

    with Emulator() as emulator:
        # The emulator's endpoints and credentials win; quota, cache and transport keys stay.
        overrides = emulator.connection()
        for key in ("client_secret", "certificate_path", "certificate_passphrase", "cloud", "region"):
            connection.pop(key, None)
        # A fresh emulator has a fresh budget: a budget persisted by earlier runs must not
        # hold this one back, so the quota stays in this process unless configured.
        connection.setdefault("quota", {"backend": "memory"})
        yield {**connection, **overrides}


def _read_inputs(source: str | None) -> dict:
    """Inputs JSON from a file, '-' for stdin, or stdin when piped; {} when there is none."""
    if source is None and sys.stdin is not None and not sys.stdin.isatty():
        source = "-"
    if source is None:
        return {}
    if source == "-":
        text = sys.stdin.read()
        return _parse_json(text, "inputs", InputError) if text.strip() else {}
    return _read_json_file(source, "inputs", InputError)


def _read_json_file(path: str, what: str, error_cls: type[PluginError]):
    try:
        text = Path(path).read_text(encoding="utf-8")
    except (OSError, UnicodeDecodeError) as exc:
        raise error_cls(f"{what}: cannot read the file ({type(exc).__name__})") from None
    return _parse_json(text, what, error_cls)


def _parse_json(text: str, what: str, error_cls: type[PluginError]):
    try:
        return json.loads(text)
    except ValueError as exc:
        # The position only: the document may hold a secret.
        raise error_cls(f"{what}: not valid JSON (line {exc.lineno}, column {exc.colno})") from None


def _print_json(document: dict) -> None:
    json.dump(document, sys.stdout, indent=2)
    sys.stdout.write("\n")


def _configure_logging(verbose: bool) -> None:
    """Warnings by default, debug with -v; every line passes the redacting filter."""
    handler = logging.StreamHandler(sys.stderr)
    handler.addFilter(RedactingFilter())
    handler.setFormatter(logging.Formatter("%(asctime)s %(levelname)s %(name)s: %(message)s"))
    root = logging.getLogger()
    root.handlers[:] = [handler]
    root.setLevel(logging.DEBUG if verbose else logging.WARNING)
