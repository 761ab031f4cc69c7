"""The package's layers, checked from the source: imports go one way (docs/architecture.md).

- domain/, ai/, models/ and the shared kernels never import boto3, botocore, the data-access package,
  the composition root, the CLI or local mode: they depend on the Protocols in domain/ports.py.
- dal/ implements those ports: it imports models and domain/ports.py, never other domain or ai code.
- boto3 and botocore appear only in dal/, the composition root (runtime.py), the CLI and local mode.
"""

from __future__ import annotations

import ast
from pathlib import Path

import cronpilot
import pytest

PACKAGE = Path(cronpilot.__file__).resolve().parent
AWS_SDK = ("boto3", "botocore", "mypy_boto3")
KERNEL = ("clock.py", "cron.py", "dag.py", "durations.py", "config.py", "observability.py", "jobfiles.py")


def imported_modules(path: Path) -> set[str]:
    """Every module a file imports, including the ones imported only for type checking."""
    names: set[str] = set()
    for node in ast.walk(ast.parse(path.read_text(), filename=str(path))):
        if isinstance(node, ast.Import):
            names.update(alias.name for alias in node.names)
        elif isinstance(node, ast.ImportFrom) and node.module and node.level == 0:
            names.add(node.module)
            names.update(f"{node.module}.{alias.name}" for alias in node.names)
    return names


def modules_in(*parts: str) -> list[Path]:
    found: list[Path] = []
    for part in parts:
        target = PACKAGE / part
        found += sorted(target.rglob("*.py")) if target.is_dir() else [target]
    return found


def relative(path: Path) -> str:
    return str(path.relative_to(PACKAGE))


def offending(path: Path, forbidden: tuple[str, ...], allowed: tuple[str, ...] = ()) -> list[str]:
    return sorted(
        name
        for name in imported_modules(path)
        if any(name == f or name.startswith(f + ".") for f in forbidden)
        and not any(name == a or name.startswith(a + ".") for a in allowed)
    )


@pytest.mark.parametrize("path", modules_in("domain", "ai", "models", *KERNEL), ids=relative)
def test_domain_code_never_touches_aws_storage_or_adapters(path):
    forbidden = (*AWS_SDK, "cronpilot.dal", "cronpilot.runtime", "cronpilot.cli", "cronpilot.local")
    # ai/pilot.py is handed the runtime (typed only); it builds nothing from it but strategies
    allowed = ("cronpilot.runtime",) if relative(path) == "ai/pilot.py" else ()
    assert offending(path, forbidden, allowed) == []


@pytest.mark.parametrize("path", modules_in("dal"), ids=relative)
def test_data_access_implements_ports_and_knows_no_domain_logic(path):
    forbidden = ("cronpilot.domain", "cronpilot.ai", "cronpilot.runtime", "cronpilot.cli", "cronpilot.local")
    assert offending(path, forbidden, allowed=("cronpilot.domain.ports",)) == []


ADAPTERS = ("dal/", "cli/", "local/", "runtime.py")


@pytest.mark.parametrize(
    "path", [p for p in modules_in(".") if not relative(p).startswith(ADAPTERS)], ids=relative
)
def test_only_the_adapters_import_the_aws_sdk(path):
    assert offending(path, AWS_SDK) == []


def test_the_checks_see_a_violation(tmp_path):
    # Given a module that imports botocore under TYPE_CHECKING and the store directly
    source = tmp_path / "probe.py"
    source.write_text(
        "from typing import TYPE_CHECKING\nfrom cronpilot.dal.store import Store\n"
        "if TYPE_CHECKING:\n    from botocore.exceptions import ClientError\n"
    )
    # Then both imports are found
    assert offending(source, (*AWS_SDK, "cronpilot.dal")) == [
        "botocore.exceptions",
        "botocore.exceptions.ClientError",
        "cronpilot.dal.store",
        "cronpilot.dal.store.Store",
    ]
