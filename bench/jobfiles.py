"""`cronpilot validate` on large and hostile job files, as a user runs it: one process per call, wall time.

- A 1 MiB YAML job file, dense (100 endpoints whose bodies hold ~140 keys each: ~170,000 YAML events,
  the worst a 1 MiB file can ask of the parser). It is read in full and refused because the stored job
  would not fit one DynamoDB item.
- The same job as 1 MiB of JSON.
- A 50 MB file: refused before anything is parsed.
- Reference: a small valid job file, i.e. the CLI's start-up alone (Python, typer, pydantic models).

The CLI runs as `make setup` installs it: with bytecode compiled at install (as pip does; uv needs
`--compile-bytecode`), so a figure is validate's work and not CPython compiling typer, rich and pydantic
again, which it would do on every call wherever PYTHONDONTWRITEBYTECODE is set (as on these machines).

Goal: <= 1 s for the 1 MiB file and the 50 MB file. Each figure is the median of a few runs, wall time
and the child's CPU time (user + system), which a shared machine inflates less.
"""

from __future__ import annotations

import json
import resource
import statistics
import subprocess
import sys
import tempfile
import time
from pathlib import Path

RUNS = 5
GOAL = "<= 1 s"


def _dense_job(body_keys: int = 140) -> dict:
    body = {f"k{i}": {"v": [i, "text " * 3, {"deep": True}]} for i in range(body_keys)}
    return {
        "id": "big",
        "schedule": {"rate": "5m"},
        "guardrails": {"max_steps": 100},
        "endpoints": [
            {"id": f"e{i}", "url": "https://api.example.com/a", "method": "POST", "body": body}
            for i in range(100)
        ],
    }


def _write_files(directory: Path) -> dict[str, Path]:
    import yaml

    doc = _dense_job()
    yaml_text = yaml.safe_dump(json.loads(json.dumps(doc)), sort_keys=False)  # no shared objects: no anchors
    json_text = json.dumps(doc)
    files = {
        "1 MiB YAML (dense)": yaml_text[: 1 << 20].rsplit("\n", 1)[0] + "\n",
        "1 MiB JSON (dense)": json_text,
    }
    paths: dict[str, Path] = {}
    for name, text in files.items():
        suffix = ".json" if "JSON" in name else ".yaml"
        path = directory / f"{len(paths)}{suffix}"
        # Pad the JSON to a full MiB with whitespace (the YAML is cut at a line end just under it)
        path.write_text(text + " " * max(0, (1 << 20) - len(text.encode())) if suffix == ".json" else text)
        paths[name] = path
    big = directory / "big.yaml"
    with big.open("wb") as handle:
        handle.write(b"# " + b"x" * 78 + b"\n")
        handle.truncate(50 * 1000 * 1000)
    paths["50 MB file (refused before parsing)"] = big
    small = directory / "small.yaml"
    small.write_text(
        "id: small\nschedule: {rate: 5m}\nendpoints:\n  - {id: a, url: 'https://api.example.com/a'}\n"
    )
    paths["reference: a small valid file (CLI start-up)"] = small
    return paths


def _command() -> list[str]:
    script = Path(sys.executable).parent / "cronpilot"
    return (
        [str(script)] if script.exists() else [sys.executable, "-c", "from cronpilot.cli import main; main()"]
    )


def _time(path: Path) -> tuple[float, float, int]:
    """Wall seconds, CPU seconds (user + system: less sensitive to a shared machine) and exit code."""
    before = resource.getrusage(resource.RUSAGE_CHILDREN)
    started = time.perf_counter()
    completed = subprocess.run(
        [*_command(), "validate", str(path)], capture_output=True, timeout=120, check=False
    )
    wall = time.perf_counter() - started
    after = resource.getrusage(resource.RUSAGE_CHILDREN)
    cpu = (after.ru_utime - before.ru_utime) + (after.ru_stime - before.ru_stime)
    return wall, cpu, completed.returncode


def run() -> list[tuple[str, str, str]]:
    rows = []
    with tempfile.TemporaryDirectory() as directory:
        paths = _write_files(Path(directory))
        for name, path in paths.items():
            _time(path)  # warm the bytecode and the page cache
            walls, cpus, codes = [], [], set()
            for _ in range(RUNS):
                wall, cpu, code = _time(path)
                walls.append(wall)
                cpus.append(cpu)
                codes.add(code)
            exits = ",".join(map(str, sorted(codes)))
            figure = (
                f"{statistics.median(walls):.2f} s wall, {statistics.median(cpus):.2f} s CPU "
                f"(exit {exits}, {path.stat().st_size:,} bytes)"
            )
            rows.append((f"validate: {name}", figure, "-" if name.startswith("reference") else GOAL))
    return rows
