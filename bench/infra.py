"""Deployment artifacts: unzipped size of each function (code + layers) against Lambda's 250 MB limit,
and the cold import CPU time of each handler from the built artifact layout.

Sizes come from the production build (manylinux2014 aarch64). Import times come from a host build of the
same locked dependency set, imported in a fresh `python -I -S -B` whose sys.path is exactly the Lambda
layout (function asset, cronpilot layer python/, dependency layer python/, then the standard library).
`-B` because /opt is read-only on Lambda: nothing can cache bytecode there, so what the layer does not
ship precompiled is compiled on every cold start. The second figure is the same import from layers
built without bytecode, which is what that costs.
"""

from __future__ import annotations

import shutil
import statistics
import subprocess
import sys
import tempfile
from pathlib import Path

ROOT = Path(__file__).resolve().parent.parent
sys.path.insert(0, str(ROOT / "infra"))

import build_layers  # noqa: E402 - infra/ is not a package

FUNCTIONS = ("discovery", "executor", "planner", "summarizer", "finalize_failure")
LIMIT_MB = 250
RUNS = 3
# CPU time, as bench.cold_start: imports are CPU-bound, and wall time on a shared machine measures the
# other tenants (a loaded run read 6.6 s for a ~0.5 s import).
SCRIPT = """
import sys, time
sys.path[:] = {path!r} + sys.path
started = time.process_time()
import handler
print(time.process_time() - started)
"""
ENV = {
    "PATH": "/usr/bin:/bin",
    "AWS_REGION": "us-east-1",
    "AWS_DEFAULT_REGION": "us-east-1",
    "TABLE_NAME": "bench",
    "POWERTOOLS_SERVICE_NAME": "cronpilot-bench",
    "POWERTOOLS_METRICS_NAMESPACE": "cronpilot",
}


def _size(path: Path, *, bytecode: bool = True) -> int:
    return sum(
        f.stat().st_size
        for f in path.rglob("*")
        if f.is_file() and (bytecode or "__pycache__" not in f.parts)
    )


def _import_seconds(path: list[str], *, write_bytecode: bool) -> float:
    flags = ["-I", "-S"] + ([] if write_bytecode else ["-B"])
    samples = []
    for _ in range(RUNS):
        done = subprocess.run(
            [sys.executable, *flags, "-c", SCRIPT.format(path=path)],
            env=ENV,
            capture_output=True,
            text=True,
            check=True,
        )
        samples.append(float(done.stdout.strip().splitlines()[-1]))
    return statistics.median(samples)


def _paths(tmp: Path, layers: dict[str, Path], label: str) -> dict[str, list[str]]:
    paths = {}
    for name in FUNCTIONS:
        asset = tmp / label / "functions" / name
        asset.mkdir(parents=True)
        (asset / "handler.py").write_bytes((ROOT / "functions" / name / "handler.py").read_bytes())
        paths[name] = [str(asset), str(layers["cronpilot"] / "python"), str(layers["deps"] / "python")]
    return paths


def run() -> list[tuple[str, str, str]]:
    rows: list[tuple[str, str, str]] = []
    with tempfile.TemporaryDirectory(prefix="cronpilot-bench-") as name:
        tmp = Path(name)
        lambda_layers = build_layers.build(tmp / "aarch64")
        layers_bytes = sum(_size(layer) for layer in lambda_layers.values())
        for fn in FUNCTIONS:
            total = _size(ROOT / "functions" / fn, bytecode=False) + layers_bytes
            rows.append((f"{fn}: unzipped code + layers", f"{total / 1e6:.1f} MB", f"<= {LIMIT_MB} MB"))
        # as shipped: layers precompiled (unchecked-hash .pyc), read-only (-B: nothing written)
        shipped = _paths(tmp, build_layers.build(tmp / "host", host=True), "shipped")
        # for comparison: the same layers without bytecode, compiled again on every cold start
        plain_layers = build_layers.build(tmp / "host-plain", host=True, compile_deps=False)
        for cache in list((plain_layers["cronpilot"] / "python").rglob("__pycache__")):
            shutil.rmtree(cache)
        plain = _paths(tmp, plain_layers, "plain")
        for fn in FUNCTIONS:
            fast = _import_seconds(shipped[fn], write_bytecode=False)
            slow = _import_seconds(plain[fn], write_bytecode=False)
            rows.append((f"{fn}: cold import from the built layers (CPU)", f"{fast * 1000:.0f} ms", "-"))
            rows.append((f"{fn}: cold import, layers without .pyc (CPU)", f"{slow * 1000:.0f} ms", "-"))
    return rows


if __name__ == "__main__":
    for row in run():
        print(" | ".join(row))
