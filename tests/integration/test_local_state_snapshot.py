"""Local mode's state file keeps the table between CLI commands, packed (Binary) documents included."""

from __future__ import annotations

import json

import boto3
from cronpilot.dal import schema
from cronpilot.dal.snapshot import load_state, save_state
from cronpilot.dal.store import Store

from tests.integration.conftest import START, TABLE
from tests.support.factories import make_job
from tests.support.fake_anthropic import claim_run


def test_the_state_file_round_trips_packed_documents(store, tmp_path):
    # Given a job and a claimed run, whose documents the store packs as Binary
    job = make_job("job", goal="sync the warehouse " * 20)
    run = claim_run(store, job, START)
    # When the table is saved to the state file and loaded into an empty table
    path = tmp_path / "state.json"
    save_state(path, store.client, TABLE, START)
    assert '"B": "' in path.read_text()  # base64, as DynamoDB's JSON writes Binary
    fresh = boto3.client("dynamodb", region_name="us-east-1")
    fresh.create_table(**schema.create_table_request("restored"))
    assert load_state(path, fresh, "restored") == START
    # Then the job and the run read back as they were
    restored = Store("restored", fresh)
    assert restored.get_job("job").job == job
    assert restored.get_run(run.run_id) == store.get_run(run.run_id)
    assert len(json.loads(path.read_text())["items"]) == 2
