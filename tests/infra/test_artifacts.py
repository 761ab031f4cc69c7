"""The artifacts Lambda would receive: the production layer's binaries, and every handler named in the
template importing from exactly the Lambda layout (function asset, then each layer's python/)."""

from __future__ import annotations

import importlib.util
import json
import re
import subprocess
import sys
from pathlib import Path
from typing import Any

from tests.infra.conftest import Synthesized, functions_by_name

PURE = re.compile(r"^py\d*(\.py\d+)*-none-any$")
# CPython 3.13 on aarch64 Linux: a cp313 ABI wheel, or a stable-ABI (abi3) wheel for any older cp3x.
AARCH64_TAG = re.compile(r"^cp3(\d+)-(cp313|abi3)-(manylinux\w*|musllinux\w*)_aarch64$")
ELF_MACHINE_AARCH64 = 183


def _wheel_tags(site: Path) -> dict[str, list[str]]:
    tags: dict[str, list[str]] = {}
    for wheel in site.glob("*.dist-info/WHEEL"):
        tags[wheel.parent.name] = [
            line.split(":", 1)[1].strip()
            for line in wheel.read_text().splitlines()
            if line.startswith("Tag:")
        ]
    return tags


def _tag_fits_lambda(tag: str) -> bool:
    if PURE.match(tag):
        return True
    found = AARCH64_TAG.match(tag)
    return bool(found) and (
        (found.group(2) == "abi3" and int(found.group(1)) <= 13) or found.group(1) == "13"
    )


def test_production_layer_holds_only_cp313_aarch64_abi3_or_pure_wheels(
    lambda_layers: dict[str, Path],
) -> None:
    site = lambda_layers["deps"] / "python"
    tags = _wheel_tags(site)
    assert len(tags) >= 20, "the dependency layer looks empty"
    wrong = {dist: t for dist, t in tags.items() if not any(_tag_fits_lambda(tag) for tag in t)}
    assert not wrong, f"wheels Lambda python3.13 arm64 cannot load: {wrong}"
    assert any(AARCH64_TAG.match(tag) for t in tags.values() for tag in t), (
        "expected binary wheels (pydantic-core)"
    )


def test_production_layer_binaries_are_aarch64_elf_for_cpython_313(lambda_layers: dict[str, Path]) -> None:
    binaries = list((lambda_layers["deps"] / "python").rglob("*.so"))
    assert binaries
    for binary in binaries:
        assert binary.name.endswith((".cpython-313-aarch64-linux-gnu.so", ".abi3.so")), binary.name
        header = binary.read_bytes()[:20]
        assert header[:4] == b"\x7fELF", binary
        assert int.from_bytes(header[18:20], "little") == ELF_MACHINE_AARCH64, binary


def test_cronpilot_layer_ships_the_package_without_operator_code(lambda_layers: dict[str, Path]) -> None:
    package = lambda_layers["cronpilot"] / "python" / "cronpilot"
    assert (package / "__init__.py").is_file()
    assert (package / "dal" / "schema.py").is_file()
    assert not (package / "local").exists()
    assert not (package / "cli").exists()


def test_layers_ship_unchecked_hash_bytecode_for_cpython_313(lambda_layers: dict[str, Path]) -> None:
    # /opt is read-only on Lambda: bytecode not shipped is recompiled on every cold start
    package = lambda_layers["cronpilot"] / "python" / "cronpilot"
    sources = list(package.rglob("*.py"))
    assert sources
    for source in sources:
        compiled = source.parent / "__pycache__" / f"{source.stem}.cpython-313.pyc"
        header = compiled.read_bytes()[:16]
        assert header[:4] == importlib.util.MAGIC_NUMBER, compiled
        assert int.from_bytes(header[4:8], "little") == 0b01, f"{compiled}: not unchecked-hash"


def _asset(synthesized: Synthesized, resource: dict[str, Any]) -> Path:
    """The staged directory of a function's code or a layer's content (S3 key = asset hash + .zip)."""
    props = resource["Properties"]
    key = (props.get("Code") or props["Content"])["S3Key"]
    return synthesized.outdir / f"asset.{key.removesuffix('.zip')}"


IMPORT_SCRIPT = """
import importlib, json, sys
# -I -S: sys.path holds only the standard library; the Lambda layout goes in front, as on Lambda
sys.path[:] = {path!r} + sys.path
module = importlib.import_module({module!r})
handler = getattr(module, {attribute!r})
import cronpilot
roots = tuple(sys.path)
outside = sorted(
    name for name, mod in list(sys.modules.items())
    if getattr(mod, "__file__", None) and not mod.__file__.startswith(roots)
)
print(json.dumps({{
    "callable": callable(handler),
    "cronpilot": cronpilot.__file__,
    "anthropic": "anthropic" in sys.modules,
    "outside": outside,
}}))
"""


def _lambda_environment(fn: dict[str, Any], name: str) -> dict[str, str]:
    variables = {
        key: value if isinstance(value, str) else f"arn:aws:test:us-east-1:123456789012:{key.lower()}"
        for key, value in fn["Properties"]["Environment"]["Variables"].items()
    }
    return {
        "PATH": "/usr/bin:/bin",
        "LANG": "C.UTF-8",
        "AWS_REGION": "us-east-1",
        "AWS_DEFAULT_REGION": "us-east-1",
        "AWS_LAMBDA_FUNCTION_NAME": name,
        "AWS_EXECUTION_ENV": "AWS_Lambda_python3.13",
        **variables,
    }


def test_every_handler_in_the_template_imports_from_the_lambda_layout(
    synthesized: Synthesized, host_layers: dict[str, Path], template_json: dict[str, Any]
) -> None:
    # Given the staged function assets and layers (the host build of the same locked dependency set)
    cronpilot_layer = next(
        _asset(synthesized, r) / "python"
        for r in template_json["Resources"].values()
        if r["Type"] == "AWS::Lambda::LayerVersion"
        and (_asset(synthesized, r) / "python" / "cronpilot").is_dir()
    )
    deps_layer = host_layers["deps"] / "python"
    # When each handler named in the template is imported in a fresh interpreter (-I -S: no site-packages)
    running = {}
    for name, fn in functions_by_name(template_json).items():
        module, attribute = fn["Properties"]["Handler"].rsplit(".", 1)
        path = [str(_asset(synthesized, fn)), str(cronpilot_layer), str(deps_layer)]
        script = IMPORT_SCRIPT.format(path=path, module=module, attribute=attribute)
        running[name] = subprocess.Popen(
            [sys.executable, "-I", "-S", "-c", script],
            env=_lambda_environment(fn, name),
            stdout=subprocess.PIPE,
            stderr=subprocess.PIPE,
            text=True,
        )
    # Then every handler is callable, cronpilot comes from its layer and nothing from outside the layout
    for name, process in running.items():
        out, err = process.communicate(timeout=120)
        assert process.returncode == 0, f"{name}: {err[-2000:]}"
        result = json.loads(out.strip().splitlines()[-1])
        assert result["callable"], name
        assert result["cronpilot"].startswith(str(cronpilot_layer)), name
        assert result["outside"] == [], name
        assert not result["anthropic"], f"{name} imports anthropic at cold start (only lazily allowed)"
