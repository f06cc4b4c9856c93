"""One round of one server: start it fresh, time its start-up, read its idle RSS, drive it.

Every (workload, connections) pair gets a warm-up run, then a measured run during which the
server tree's CPU (utime+stime) is read before and after. Results are plain dicts (the raw
JSON); a failure becomes a record with ``"error"``, never an exception.
"""

from __future__ import annotations

import os
import socket
import subprocess
import time
from pathlib import Path
from typing import Any

from bench import loadgen
from bench.procs import Server, process_tree, tree_cpu, wait_idle
from bench.targets import GRPC_HPT, TF_HPT, Request, Target
from bench.venvs import Venv

REPO = Path(__file__).resolve().parent.parent
START_TIMEOUT_S = 240.0
IDLE_SETTLE_S = 3.0  # then idle CPU and RSS are read
IDLE_WAIT_S = 60.0  # longest wait for a server to finish the previous run's backlog


def free_port() -> int:
    """A loopback TCP port that was free a moment ago."""
    with socket.socket() as sock:
        sock.bind(("127.0.0.1", 0))
        return int(sock.getsockname()[1])


def _expand(text: str, values: dict[str, str]) -> str:
    for key, value in values.items():
        text = text.replace("{" + key + "}", value)
    return text


def launch(
    target: Target, work: Path, venvs: dict[str, Venv], log: Path
) -> tuple[Server, dict[str, str]]:
    """Start `target` on fresh ports; return the server and its placeholders' values."""
    values = {key: str(free_port()) for key in ("port", "grpc_port", "metrics_port")}
    values["embedded_port"] = str(free_port())
    values["work"] = str(work)
    if target.venv:
        python = venvs[target.venv].python
        assert python is not None
        values |= {"venv_python": str(python), "venv_bin": str(python.parent)}
    env = {
        key: value for key, value in os.environ.items() if key != "PYTHONPATH" or not target.venv
    }
    env |= {key: _expand(value, values) for key, value in target.env.items()}
    argv = [_expand(arg, values) for arg in target.argv]
    with log.open("a") as out:
        out.write(f"\n=== {time.strftime('%H:%M:%S')} {' '.join(argv)}\n")
    return Server(argv, env, log, target.cwd or REPO), values


def _rss(server: Server) -> dict[str, int]:
    tree = process_tree(server.pid)
    main = sum(p.rss_bytes for p in tree if p.pid == server.pid)
    total = sum(p.rss_bytes for p in tree)
    return {"main": main, "children": total - main, "tree": total, "processes": len(tree)}


def _measured(server: Server, run: Any) -> dict[str, Any]:
    """Call `run()` (returns a Load) between two CPU readings of the server's tree."""
    before = tree_cpu(server.pid)
    load = run()
    after = tree_cpu(server.pid)
    if not load.requests:
        raise RuntimeError(f"no request completed in {load.seconds:.0f} s")
    deltas = {pid: cpu - before.get(pid, 0.0) for pid, cpu in after.items()}
    per_request = 1e6 / load.requests
    return {
        "rps": load.rps,
        "p50_ms": load.p50_ms,
        "p99_ms": load.p99_ms,
        "errors": load.errors,
        "requests": load.requests,
        "seconds": load.seconds,
        "cpu_tree_us": sum(deltas.values()) * per_request,
        "cpu_main_us": deltas.get(server.pid, 0.0) * per_request,
        "client_cpu_us": load.client_cpu_us,
    }


def run_target(
    target: Target,
    round_no: int,
    options: dict[str, Any],
    work: Path,
    venvs: dict[str, Venv],
    out_dir: Path,
) -> list[dict[str, Any]]:
    """Start, measure and stop `target` once; return the start record and run records."""
    base = {"round": round_no, "target": target.name}
    log = out_dir / "logs" / f"{target.name}.log"
    try:
        server, values = launch(target, work, venvs, log)
    except OSError as exc:
        return [{**base, "kind": "start", "error": f"could not start: {exc}"}]
    records: list[dict[str, Any]] = []
    try:
        start: dict[str, Any] = {**base, "kind": "start"}
        records.append(start)
        port = int(values["port"])
        try:
            if target.also_ready:
                start["also_ready_s"], _ = _wait(server, port, target.also_ready, work)
            start["startup_s"], answer = _wait(server, port, target.ready_request, work)
            start["first_answer"] = answer[:200].decode(errors="replace")
        except RuntimeError as exc:
            start["error"] = f"did not start: {exc} (log {log.name})"
            return records
        idle_before = sum(tree_cpu(server.pid).values())
        time.sleep(IDLE_SETTLE_S)
        start["idle_cpu_pct"] = (sum(tree_cpu(server.pid).values()) - idle_before) / IDLE_SETTLE_S
        start["idle_cpu_pct"] *= 100
        start["rss"] = _rss(server)
        if start["rss"]["processes"] < target.min_processes:
            start["error"] = (
                f"skipped: {start['rss']['processes']} process(es) after start, "
                f"expected >= {target.min_processes} (option not supported?)"
            )
            return records
        for workload, conns, drive in _runs(target, values, work, {**options, "round": round_no}):
            records.append(_one(server, base, workload, conns, drive, options))
    finally:
        server.stop()
    return records


def _runs(
    target: Target, values: dict[str, str], work: Path, options: dict[str, Any]
) -> list[tuple[str, int, Any]]:
    """(workload, connections, drive) in the order they run.

    The direct gRPC baseline at N connections runs next to the gateway's half_plus_two run
    at N (after it in odd rounds, before it in even ones), so each ratio compares two runs
    a few seconds apart on the same backend. `options["workloads"]`, if set, keeps only
    the workloads it names.
    """
    port = int(values["port"])
    grpc_target = f"127.0.0.1:{values['embedded_port']}"
    wanted = options.get("workloads")
    runs: list[tuple[str, int, Any]] = []
    for workload, request in target.workloads.items():
        if wanted and workload not in wanted:
            continue
        url = f"http://127.0.0.1:{port}{request.path}"
        body = work / "bodies" / request.body
        for conns in options["connections"]:

            def drive(
                seconds: float,
                url: str = url,
                body: Path = body,
                c: int = conns,
                headers: dict[str, str] = request.headers,
            ) -> Any:
                return loadgen.run_wrk(url, body, c, seconds, headers)

            pair: list[tuple[str, int, Any]] = [(workload, conns, drive)]
            if target.grpc_direct and workload == TF_HPT:

                def drive_grpc(seconds: float, c: int = conns) -> Any:
                    return loadgen.run_grpc(grpc_target, "half_plus_two", c, seconds)

                pair.append((GRPC_HPT, conns, drive_grpc))
            runs += pair if options.get("round", 1) % 2 else pair[::-1]
    return runs


def _wait(server: Server, port: int, request: Request, work: Path) -> tuple[float, bytes]:
    body = (work / "bodies" / request.body).read_bytes()
    return server.wait_for_200(port, request.path, body, START_TIMEOUT_S)


def _settle(server: Server, record: dict[str, Any]) -> None:
    """Let the server finish earlier requests, so their CPU is not counted in this run."""
    if not wait_idle(server.pid, IDLE_WAIT_S):
        record["busy_before"] = True  # still busy after IDLE_WAIT_S: CPU/req overstated


def _one(
    server: Server,
    base: dict[str, Any],
    workload: str,
    conns: int,
    drive: Any,
    options: dict[str, Any],
) -> dict[str, Any]:
    record = {**base, "kind": "run", "workload": workload, "connections": conns}
    if not server.alive():
        return {**record, "error": "server exited"}
    print(f"  {base['target']:<18} {workload:<26} c={conns:<3}", end=" ", flush=True)
    try:
        if options["warmup"] > 0:
            _settle(server, record)
            drive(options["warmup"])
        _settle(server, record)
        record |= _measured(server, lambda: drive(options["duration"]))
    except (RuntimeError, OSError, ValueError, subprocess.SubprocessError) as exc:
        record["error"] = str(exc)[:300]
    if "error" in record:
        print(f"error: {record['error'][:100]}", flush=True)
    else:
        print(f"{record['rps']:9.0f} req/s  p99 {record['p99_ms']:7.2f} ms", flush=True)
    return record
