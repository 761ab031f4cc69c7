"""The garbage collector's policy around a handler's init (cronpilot.coldstart)."""

import ast
import gc
from pathlib import Path

import pytest
from cronpilot import coldstart

FUNCTIONS = Path(__file__).resolve().parents[2] / "functions"


@pytest.fixture
def collector():
    """Leaves the test process's collector as it found it (enabled, nothing frozen)."""
    yield
    gc.unfreeze()
    gc.enable()


def test_collection_is_paused_while_loading_and_resumed_once_loaded(collector, monkeypatch):
    monkeypatch.delenv("AWS_LAMBDA_RUNTIME_API", raising=False)
    # When a handler starts loading
    coldstart.loading()
    # Then no collection runs
    assert not gc.isenabled()
    # And once it is loaded, collection resumes
    coldstart.loaded()
    assert gc.isenabled()


def test_on_lambda_what_init_built_is_frozen_out_of_later_collections(collector, monkeypatch):
    monkeypatch.setenv("AWS_LAMBDA_RUNTIME_API", "127.0.0.1:9001")
    coldstart.loading()
    coldstart.loaded()
    assert gc.isenabled()
    assert gc.get_freeze_count() > 0


def test_elsewhere_nothing_is_frozen_so_a_process_that_loads_handlers_again_frees_their_garbage(
    collector, monkeypatch
):
    monkeypatch.delenv("AWS_LAMBDA_RUNTIME_API", raising=False)
    coldstart.loading()
    coldstart.loaded()
    assert gc.get_freeze_count() == 0


def _calls(statement: ast.stmt) -> str | None:
    if isinstance(statement, ast.Expr) and isinstance(statement.value, ast.Call):
        return ast.unparse(statement.value)
    return None


@pytest.mark.parametrize("name", sorted(path.name for path in FUNCTIONS.iterdir() if path.is_dir()))
def test_every_handler_pauses_collection_before_its_imports_and_resumes_it_after(name):
    # (Loading them for real is what the integration tests do; unit tests block the sockets they open.)
    body = ast.parse((FUNCTIONS / name / "handler.py").read_text()).body
    calls = [_calls(statement) for statement in body]
    imports = [i for i, statement in enumerate(body) if isinstance(statement, ast.Import | ast.ImportFrom)]
    # The coldstart import is the first import; loading() comes right after it, before any other import
    assert ast.unparse(body[imports[0]]) == "from cronpilot import coldstart"
    assert calls.index("coldstart.loading()") == imports[0] + 1 < imports[1]
    # And loaded() comes after the last import, so collection never stays paused
    assert calls.index("coldstart.loaded()") == imports[-1] + 1
