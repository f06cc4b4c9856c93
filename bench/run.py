"""The server benchmark, in one command: ``python3 bench/run.py [--quick] [--write-results]``.

Prepares everything first (peer venvs, models, bodies, configs), then runs rounds: each round
starts every selected server fresh, drives it with wrk (and the gRPC driver for the TF
baseline), and stops it. Writes ``bench/out/<timestamp>/results.md`` and ``raw.json``;
``--write-results`` also copies the table to ``bench/RESULTS.md``. See bench/README.md.
"""

from __future__ import annotations

import argparse
import dataclasses
import json
import shlex
import shutil
import sys
import time
from pathlib import Path
from typing import Any

BENCH = Path(__file__).resolve().parent
if str(BENCH.parent) not in sys.path:
    sys.path.insert(0, str(BENCH.parent))

from bench import machine, report  # noqa: E402
from bench.measure import run_target  # noqa: E402
from bench.prepare import prepare  # noqa: E402
from bench.targets import Target, all_targets  # noqa: E402

GROUPS = {
    "echoes": ("asgi-echo", "starlette-echo", "fastapi-echo"),
    "gateways": (
        "gateway",
        "gateway-nobatch",
        "gateway-workers2",
        "gateway-accesslog",
        "gateway-v2",
        "gateway-tf",
        "gateway-tf-iomgr",
    ),
    "peers": ("mlserver", "mlserver-tuned", "kserve"),
}


def parse_args(argv: list[str] | None) -> argparse.Namespace:
    """Command-line options; --quick changes the defaults of the others."""
    parser = argparse.ArgumentParser(description=__doc__)
    parser.add_argument("--quick", action="store_true", help="5 s runs, 1 s warm-up, 1 round")
    parser.add_argument("--duration", type=float, help="seconds per measured run (default 30)")
    parser.add_argument("--warmup", type=float, help="seconds of warm-up per run (default 5)")
    parser.add_argument("--rounds", type=int, help="interleaved rounds (default 3)")
    parser.add_argument(
        "--servers",
        default="all",
        help="comma list of server names or groups (" + ", ".join(GROUPS) + "); default all",
    )
    parser.add_argument("--connections", default="1,16,64", help="comma list (default 1,16,64)")
    parser.add_argument(
        "--workloads", help="comma list of workload names to run (default: each server's all)"
    )
    parser.add_argument(
        "--base-tree",
        type=Path,
        help="another checkout of the gateway (e.g. `git worktree add /tmp/base HEAD~3`): "
        "each selected gateway server also runs from it, as NAME@base, in the same rounds",
    )
    parser.add_argument("--out", type=Path, help="output dir (default bench/out/<timestamp>)")
    parser.add_argument("--write-results", action="store_true", help="copy to bench/RESULTS.md")
    parser.add_argument("--note", action="append", default=[], help="a line for the header")
    parser.add_argument("--list", action="store_true", help="list the servers and exit")
    args = parser.parse_args(argv)
    args.duration = args.duration or (5.0 if args.quick else 30.0)
    args.warmup = args.warmup if args.warmup is not None else (1.0 if args.quick else 5.0)
    args.rounds = args.rounds or (1 if args.quick else 3)
    args.connections = [int(c) for c in args.connections.split(",") if c.strip()]
    if args.workloads:
        args.workloads = [w.strip() for w in args.workloads.split(",") if w.strip()]
    return args


def with_base_tree(targets: list[Target], tree: Path | None) -> list[Target]:
    """Each gateway target followed by its twin run from `tree` (named NAME@base)."""
    if tree is None:
        return targets
    if not (tree / "gateway" / "__main__.py").is_file():
        raise SystemExit(f"--base-tree {tree}: no gateway package there")
    result: list[Target] = []
    for target in targets:
        result.append(target)
        if target.name.startswith("gateway"):
            twin = dataclasses.replace(target, name=f"{target.name}@base", cwd=tree.resolve())
            result.append(twin)
    return result


def workers_flag() -> bool:
    """Whether `gateway serve` has a --workers option (else GATEWAY_WORKERS alone is set)."""
    import subprocess

    done = subprocess.run(
        [sys.executable, "-m", "gateway", "serve", "--help"],
        cwd=BENCH.parent,
        capture_output=True,
        text=True,
        check=False,
    )
    return "--workers" in done.stdout


def select(targets: list[Target], spec: str) -> list[Target]:
    """The targets named in `spec` (names or groups), in the standard order."""
    if spec == "all":
        return targets
    wanted: set[str] = set()
    for name in (part.strip() for part in spec.split(",") if part.strip()):
        wanted.update(GROUPS.get(name, (name,)))
    unknown = wanted - {t.name for t in targets}
    if unknown:
        raise SystemExit(f"unknown servers: {', '.join(sorted(unknown))}")
    return [t for t in targets if t.name in wanted]


def estimate_seconds(targets: list[Target], args: argparse.Namespace) -> float:
    """Rough wall time of all rounds."""
    wanted = set(args.workloads or ())
    runs = sum(
        len([w for w in t.workloads if not wanted or w in wanted]) + t.grpc_direct for t in targets
    ) * len(args.connections)
    starts = sum(40 if t.grpc_direct else 12 for t in targets)
    return float(args.rounds * (runs * (args.duration + args.warmup + 2) + starts))


def header(args: argparse.Namespace, venvs: dict[str, Any], command: str) -> list[str]:
    """Command, machine, versions, settings of the run."""
    return [
        f"Run {time.strftime('%Y-%m-%d %H:%M %Z')}. Command (from the repository root):",
        "",
        f"    {command}",
        "",
        f"- machine: {machine.machine()}",
        *machine.versions(venvs),
        f"- {args.rounds} interleaved round(s); per run {args.warmup:g} s warm-up then "
        f"{args.duration:g} s measured; wrk -t1 at {', '.join(map(str, args.connections))} "
        "connections; every server started fresh each round with 1 worker unless named",
        "- gateway: GATEWAY_ACCESS_LOG=false and GATEWAY_LOG_LEVEL=warning except "
        "gateway-accesslog; iris saved as skops by the project's save_model",
        "- peers: the same iris LogisticRegression trained in their venv and saved with joblib;"
        " MLServer gets V2 JSON, everything else TF Serving v1 JSON",
        *(
            [f"- NAME@base: the same server run from {args.base_tree.resolve()}"]
            if args.base_tree
            else []
        ),
        *(f"- note: {note}" for note in args.note),
    ]


def main(argv: list[str] | None = None) -> None:
    """Prepare, run the rounds, write the results."""
    args = parse_args(argv)
    targets = with_base_tree(select(all_targets(workers_flag()), args.servers), args.base_tree)
    if args.list:
        for target in targets:
            print(f"{target.name:<18} {', '.join(target.workloads)} -- {target.note}")
        return
    command = "python3 bench/run.py " + shlex.join(argv if argv is not None else sys.argv[1:])
    out_dir = args.out or BENCH / "out" / time.strftime("%Y%m%d-%H%M%S")
    (out_dir / "logs").mkdir(parents=True, exist_ok=True)
    venvs, failed = prepare(targets, BENCH / ".work", BENCH / ".venvs", out_dir / "logs")
    runnable = [t for t in targets if t.name not in failed]
    for name, reason in failed.items():
        print(f"{name}: {reason}", flush=True)
    eta = estimate_seconds(runnable, args) / 60
    print(f"{len(runnable)} servers, {args.rounds} round(s), about {eta:.0f} min", flush=True)
    meta: dict[str, Any] = {
        "command": command,
        "targets": [t.name for t in targets],
        "connections": args.connections,
        "rounds": args.rounds,
        "duration": args.duration,
        "warmup": args.warmup,
        "header": header(args, venvs, command),
        "footer": [],
    }
    records: list[dict[str, Any]] = []
    options = {
        "connections": args.connections,
        "duration": args.duration,
        "warmup": args.warmup,
        "workloads": args.workloads,
    }
    for round_no in range(1, args.rounds + 1):
        shift = (round_no - 1) % max(1, len(runnable))
        for target in runnable[shift:] + runnable[:shift]:
            print(f"round {round_no}: {target.name}", flush=True)
            records += run_target(target, round_no, options, BENCH / ".work", venvs, out_dir)
            _write(out_dir, meta, records, failed)
    results = _write(out_dir, meta, records, failed)
    print(f"\nwrote {out_dir / 'results.md'} and raw.json\n")
    print(results)
    if args.write_results:
        shutil.copyfile(out_dir / "results.md", BENCH / "RESULTS.md")
        print(f"copied to {BENCH / 'RESULTS.md'}")


def _write(out_dir: Path, meta: dict[str, Any], records: list[Any], failed: dict[str, str]) -> str:
    raw = {"meta": meta, "failed": failed, "records": records}
    (out_dir / "raw.json").write_text(json.dumps(raw, indent=1))
    text = report.render(records, failed, meta)
    (out_dir / "results.md").write_text(text)
    return text


if __name__ == "__main__":
    main()
