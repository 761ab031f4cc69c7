"""Build the Lambda layers without Docker: `make build` (or `python infra/build_layers.py`).

Two layers, each laid out as Lambda mounts them under /opt (`python/` is on sys.path):

- `build/layers/deps/python`: the runtime dependencies of pyproject's `[project].dependencies`, at the
  exact versions of `uv.lock` (exported by `uv export --frozen`), installed from wheels built for
  manylinux2014 aarch64 and CPython 3.13 (`--only-binary :all:`, nothing compiled for the host).
- `build/layers/cronpilot/python/cronpilot`: the shared package, without the operator-only parts
  (`local/` runs moto, `cli/` needs typer/rich and the mcp SDK; neither is shipped to Lambda).

boto3 is shipped in the layer, not taken from the runtime: pyproject pins `boto3>=1.40` and uv.lock
pins the version the tests ran against, while the python3.13 runtime's copy is whatever AWS last
bundled. The layer's `python/` comes before `/var/runtime` on sys.path, so the pinned SDK wins. It
costs ~25 MB unzipped of the 250 MB limit and nothing at cold start (only imported modules load).

Both layers ship bytecode compiled by this machine's CPython 3.13 as *unchecked-hash* .pyc files
(PEP 552): /opt is read-only on Lambda, so bytecode a layer does not ship is recompiled on every cold
start (`make bench` measured each handler's cold import at ~0.5 s with it, ~1.0-1.5 s without).
Bytecode is platform-independent; unchecked-hash files are never revalidated against source mtimes
(which zipping does not preserve) and are byte-for-byte reproducible, so asset hashes stay stable.

`--host` builds the same dependency set for this machine instead (used by the artifact import test,
which cannot load aarch64 binaries on x86_64). The build is repeatable: each run starts from empty
directories and installs the locked versions.
"""

from __future__ import annotations

import argparse
import compileall
import os
import py_compile
import shutil
import subprocess
import sys
from pathlib import Path

ROOT = Path(__file__).resolve().parent.parent
PACKAGE_SOURCE = ROOT / "layers" / "cronpilot" / "cronpilot"
DEFAULT_OUT = ROOT / "build" / "layers"
LAMBDA_PLATFORM = "aarch64-manylinux2014"
LAMBDA_PYTHON = "3.13"
# Operator-only parts of the package: never shipped to Lambda (and no stale bytecode from the tree):
# local mode (moto), the CLI and MCP server (typer, rich, mcp) and the local HTTP API server.
PACKAGE_EXCLUDES = ("local", "cli", "local_server.py", "__pycache__", "*.pyc")
# Installed console scripts point at the build machine's interpreter: useless in a layer.
DEPS_EXCLUDES = ("bin",)


def uv_executable() -> str:
    found = os.environ.get("UV") or shutil.which("uv")
    if not found:
        raise SystemExit("uv not found: run through `make build` or `uv run`")
    return found


def locked_requirements() -> str:
    """pyproject's runtime dependencies at uv.lock's versions (no dev/infra groups, no cli extra)."""
    done = subprocess.run(  # noqa: S603 - uv with fixed arguments
        [
            uv_executable(),
            "export",
            "--frozen",
            "--no-dev",
            "--no-default-groups",
            "--no-emit-project",
            "--no-hashes",
            "--no-header",
            "--no-annotate",
        ],
        cwd=ROOT,
        check=True,
        capture_output=True,
        text=True,
    )
    return done.stdout


def compile_bytecode(target: Path) -> None:
    """Precompile every module under `target` as unchecked-hash .pyc for CPython 3.13."""
    if sys.version_info[:2] != (3, 13):
        raise SystemExit(
            f"bytecode must be compiled by CPython {LAMBDA_PYTHON}, not {sys.version.split()[0]}"
        )
    ok = compileall.compile_dir(
        target,
        quiet=1,
        workers=0,
        invalidation_mode=py_compile.PycInvalidationMode.UNCHECKED_HASH,
    )
    if not ok:
        raise SystemExit(f"compiling {target} failed")


def build_deps(target: Path, *, host: bool = False, compile_deps: bool = True) -> Path:
    """Install the locked runtime dependencies into `target` (a layer's `python/` directory)."""
    if target.exists():
        shutil.rmtree(target)
    target.mkdir(parents=True)
    requirements = target.parent / "requirements.txt"
    requirements.write_text(locked_requirements())
    command = [
        uv_executable(),
        "pip",
        "install",
        "--quiet",
        "--target",
        str(target),
        "--python-version",
        LAMBDA_PYTHON,
        "--only-binary",
        ":all:",
        "--no-deps",
        "--requirement",
        str(requirements),
    ]
    if not host:
        command += ["--python-platform", LAMBDA_PLATFORM]
    subprocess.run(command, cwd=ROOT, check=True)  # noqa: S603 - uv with fixed arguments
    for name in DEPS_EXCLUDES:
        shutil.rmtree(target / name, ignore_errors=True)
    (target.parent / "requirements.txt").unlink(missing_ok=True)
    if compile_deps:
        compile_bytecode(target)
    return target


def build_package(target: Path) -> Path:
    """Copy the cronpilot package into `target` (a layer's `python/` directory)."""
    if target.exists():
        shutil.rmtree(target)
    target.mkdir(parents=True)
    shutil.copytree(PACKAGE_SOURCE, target / "cronpilot", ignore=shutil.ignore_patterns(*PACKAGE_EXCLUDES))
    compile_bytecode(target)
    return target


def build(out: Path = DEFAULT_OUT, *, host: bool = False, compile_deps: bool = True) -> dict[str, Path]:
    """Build both layers under `out`; returns each layer's root (the directory holding `python/`).

    `compile_deps=False` skips precompiling the dependency layer (~8 s): the tests do, since imports
    work the same either way; `make build` and the benchmark never do.
    """
    layers = {"deps": out / "deps", "cronpilot": out / "cronpilot"}
    build_deps(layers["deps"] / "python", host=host, compile_deps=compile_deps)
    build_package(layers["cronpilot"] / "python")
    return layers


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument(
        "--out", type=Path, default=DEFAULT_OUT, help="output directory (default build/layers)"
    )
    parser.add_argument("--host", action="store_true", help="build for this machine, not Lambda arm64")
    args = parser.parse_args(argv)
    layers = build(args.out, host=args.host)
    for name, path in layers.items():
        print(f"{name}: {path.relative_to(ROOT) if path.is_relative_to(ROOT) else path}")
    return 0


if __name__ == "__main__":
    sys.exit(main())
