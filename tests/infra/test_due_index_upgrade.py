"""The due index's upgrade switch: one deploy without the index, then the keys-only index again."""

from __future__ import annotations

from aws_cdk import App, Stack
from aws_cdk.assertions import Template
from cronpilot.dal import schema
from cronpilot_infra.settings import DeploySettings
from cronpilot_infra.table import CronpilotTable


def _table(due_index: bool) -> dict:
    stack = Stack(App(), "TableOnly")
    CronpilotTable(stack, "Data", table_name="t", retain=False, due_index=due_index)
    (table,) = Template.from_stack(stack).find_resources("AWS::DynamoDB::Table").values()
    return table["Properties"]


def test_the_due_index_is_keys_only_and_the_upgrade_deploy_leaves_it_out():
    (index,) = _table(due_index=True)["GlobalSecondaryIndexes"]
    assert index["IndexName"] == schema.DUE_INDEX
    assert index["Projection"] == {"ProjectionType": "KEYS_ONLY"}
    assert "GlobalSecondaryIndexes" not in _table(due_index=False)
    assert DeploySettings().due_index is True
