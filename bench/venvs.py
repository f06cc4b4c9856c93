"""Virtualenvs for the peer servers (MLServer, KServe), created once under a cache dir.

Each venv is made with ``python3 -m venv`` and filled from PyPI with pip. A stamp file
holding the requirement list marks a finished install; a venv whose stamp matches is
reused, anything else is rebuilt. A failed install is returned as a reason, not raised.
"""

from __future__ import annotations

import json
import shutil
import subprocess
import sys
from dataclasses import dataclass
from pathlib import Path

# Pins: MLServer 1.7.1's inference worker crash-loops with uvloop >= 0.22.
REQUIREMENTS: dict[str, tuple[str, ...]] = {
    "mlserver": ("mlserver==1.7.1", "mlserver-sklearn==1.7.1", "uvloop<0.22"),
    "kserve": ("kserve==0.21.0", "scikit-learn", "joblib"),
}
_STAMP = "bench-requirements.txt"


@dataclass(frozen=True)
class Venv:
    """A ready virtualenv (``python`` set) or a failed one (``error`` set)."""

    name: str
    python: Path | None
    error: str | None = None


def _requirements_text(name: str) -> str:
    return "\n".join(REQUIREMENTS[name]) + "\n"


def ensure_venv(name: str, cache_dir: Path, log_dir: Path) -> Venv:
    """Create (or reuse) the venv `name` under `cache_dir`; pip's output goes to `log_dir`."""
    root = cache_dir / name
    python = root / "bin" / "python"
    stamp = root / _STAMP
    wanted = _requirements_text(name)
    if python.exists() and stamp.exists() and stamp.read_text() == wanted:
        return Venv(name, python)
    shutil.rmtree(root, ignore_errors=True)
    log_dir.mkdir(parents=True, exist_ok=True)
    log = log_dir / f"venv-{name}.log"
    steps = [
        [sys.executable, "-m", "venv", str(root)],
        [str(python), "-m", "pip", "install", "--quiet", "--upgrade", "pip"],
        [str(python), "-m", "pip", "install", *REQUIREMENTS[name]],
    ]
    with log.open("w") as out:
        for step in steps:
            out.write(f"$ {' '.join(step)}\n")
            out.flush()
            try:
                done = subprocess.run(step, stdout=out, stderr=subprocess.STDOUT, timeout=1800)
            except subprocess.TimeoutExpired:
                return Venv(name, None, f"venv install timed out (see {log.name})")
            if done.returncode != 0:
                return Venv(name, None, f"venv install failed: {_last_error(log)} (see {log.name})")
    stamp.write_text(wanted)
    return Venv(name, python)


def _last_error(log: Path) -> str:
    lines = [line.strip() for line in log.read_text(errors="replace").splitlines() if line.strip()]
    errors = [line for line in lines if "error" in line.lower()]
    return (errors or lines or ["no output"])[-1][:200]


def installed_versions(python: Path, packages: tuple[str, ...]) -> dict[str, str]:
    """The versions of `packages` installed in the venv of `python` (missing ones left out)."""
    code = (
        "import importlib.metadata as m, json, sys\n"
        "out = {}\n"
        "for name in sys.argv[1:]:\n"
        "    try: out[name] = m.version(name)\n"
        "    except m.PackageNotFoundError: pass\n"
        "print(json.dumps(out))\n"
    )
    done = subprocess.run(
        [str(python), "-c", code, *packages], capture_output=True, text=True, check=False
    )
    if done.returncode != 0:
        return {}
    return dict(json.loads(done.stdout))


if __name__ == "__main__":
    cache = Path(__file__).resolve().parent / ".venvs"
    for venv_name in sys.argv[1:] or list(REQUIREMENTS):
        print(ensure_venv(venv_name, cache, cache / "logs"))
