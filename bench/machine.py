"""What the results were measured on: machine, package versions, gateway commit."""

from __future__ import annotations

import importlib.metadata
import os
import platform
import subprocess
from pathlib import Path

from bench.venvs import Venv, installed_versions

REPO = Path(__file__).resolve().parent.parent
_HOST_PACKAGES = (
    "uvicorn",
    "uvloop",
    "httptools",
    "starlette",
    "fastapi",
    "pydantic",
    "orjson",
    "grpcio",
    "tensorflow",
    "scikit-learn",
    "numpy",
)
_VENV_PACKAGES = {
    "mlserver": ("mlserver", "mlserver-sklearn", "uvicorn", "uvloop", "fastapi", "scikit-learn"),
    "kserve": ("kserve", "uvicorn", "uvloop", "fastapi", "scikit-learn", "numpy"),
}


def machine() -> str:
    """nproc, CPU model, RAM, kernel and the load average when asked."""
    cpuinfo = Path("/proc/cpuinfo").read_text()
    model = next(
        (line.split(":", 1)[1].strip() for line in cpuinfo.splitlines() if "model name" in line),
        platform.processor() or "unknown CPU",
    )
    kib = next(
        int(line.split()[1])
        for line in Path("/proc/meminfo").read_text().splitlines()
        if line.startswith("MemTotal")
    )
    load = ", ".join(f"{value:.2f}" for value in os.getloadavg())
    return (
        f"{os.cpu_count()} CPUs ({model}), {kib / 2**20:.0f} GiB RAM, "
        f"Linux {platform.release()}, Python {platform.python_version()}; load average {load}"
    )


def _git(*args: str) -> str:
    done = subprocess.run(["git", *args], cwd=REPO, capture_output=True, text=True, check=False)
    return done.stdout.strip()


def gateway_revision() -> str:
    """The commit the gateway ran from, flagged if the work tree had changes."""
    commit = _git("rev-parse", "--short", "HEAD") or "unknown"
    return commit + (" + uncommitted changes" if _git("status", "--porcelain") else "")


def wrk_version() -> str:
    """`wrk -v`'s first line."""
    done = subprocess.run(["wrk", "-v"], capture_output=True, text=True, check=False)
    return (
        (done.stdout or done.stderr).strip().splitlines()[0] if done.stdout or done.stderr else "?"
    )


def versions(venvs: dict[str, Venv]) -> list[str]:
    """One line per environment: the packages that matter and their versions."""
    host = []
    for name in _HOST_PACKAGES:
        try:
            host.append(f"{name} {importlib.metadata.version(name)}")
        except importlib.metadata.PackageNotFoundError:
            continue
    lines = [
        f"- gateway: commit {gateway_revision()}; " + ", ".join(host),
        f"- load generator: {wrk_version()} (-t1, same machine)",
    ]
    for name, venv in sorted(venvs.items()):
        if venv.python is None:
            lines.append(f"- {name} venv: not installed ({venv.error})")
            continue
        found = installed_versions(venv.python, _VENV_PACKAGES.get(name, ()))
        listed = ", ".join(f"{pkg} {ver}" for pkg, ver in found.items())
        lines.append(f"- {name} venv: {listed}")
    return lines
