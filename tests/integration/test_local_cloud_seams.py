"""Local mode's caches over moto's per-call rebuilding: same answers, built once, and undone on exit."""

from __future__ import annotations

import sys
from concurrent.futures import ThreadPoolExecutor
from datetime import UTC, datetime

import boto3
from cronpilot.clock import AcceleratedClock
from cronpilot.local.cloud import (
    LocalCloud,
    cache_interpreter_setup,
    cache_request_routing,
    serialize_dynamodb_writes,
)
from moto import mock_aws
from moto.core.base_backend import BaseBackend
from moto.stepfunctions.parser.asl.component.common.path import result_path
from moto.stepfunctions.parser.asl.component.state.exec.state_task import lambda_eval_utils
from moto.stepfunctions.parser.asl.utils import boto_client, json_path


def test_interpreter_reuses_lambda_clients_and_parsed_paths_then_restores_moto():
    originals = (lambda_eval_utils.boto_client_for, json_path.parse, result_path.parse)
    with mock_aws():
        undo = cache_interpreter_setup()
        try:
            client = lambda_eval_utils.boto_client_for(region="us-east-1", service="lambda")
            assert lambda_eval_utils.boto_client_for(region="us-east-1", service="lambda") is client
            assert boto_client.boto_client_for(region="eu-west-1", service="lambda") is not client
            assert json_path.parse("$.run_id") is json_path.parse("$.run_id")
            # Parsed once, a path still answers for every input it is applied to.
            assert json_path.extract_json("$.step.step_id", {"step": {"step_id": "a"}}) == "a"
            assert json_path.extract_json("$.step.step_id", {"step": {"step_id": "b"}}) == "b"
            assert result_path.parse("$.plan").update_or_create({}, 1) == {"plan": 1}
        finally:
            undo()
    assert (lambda_eval_utils.boto_client_for, json_path.parse, result_path.parse) == originals


def test_request_routing_is_built_once_per_backend_class_then_restored():
    original_urls = BaseBackend.__dict__["urls"]
    with mock_aws():
        from moto.dynamodb.models import dynamodb_backends
        from moto.s3.models import s3_backends

        dynamodb = dynamodb_backends["123456789012"]["us-east-1"]
        expected = original_urls.fget(dynamodb)
        undo = cache_request_routing()
        try:
            assert dynamodb.urls == expected
            assert dynamodb.urls is dynamodb.urls
            s3 = s3_backends["123456789012"]["aws"]
            assert s3.urls is not s3.urls  # S3's routes follow environment variables: never cached
        finally:
            undo()
    assert BaseBackend.__dict__["urls"] is original_urls


def test_local_cloud_answers_through_cached_seams_and_undoes_them():
    original_urls = BaseBackend.__dict__["urls"]
    with LocalCloud(AcceleratedClock(datetime(2026, 11, 22, 9, 0, tzinfo=UTC))) as cloud:
        assert cloud.client("stepfunctions") is cloud.client("stepfunctions")
        assert not cloud._any_running()
        cloud.wait_idle(timeout=1)
        assert cloud.client("dynamodb").list_tables()["TableNames"] == ["cronpilot-local"]
    assert BaseBackend.__dict__["urls"] is original_urls
    assert lambda_eval_utils.boto_client_for is boto_client.boto_client_for


def test_concurrent_updates_of_one_item_never_see_it_half_changed_and_the_seam_is_undone():
    # moto's update_item handler deep-copies the live item it read outside the backend's methods; a
    # concurrent update of the same item used to change it mid-copy ("dictionary changed size during
    # iteration"), as the circuit breaker's 16 racing probes once did. Threads switch every 0.1 ms here
    # so the window is hit on every run without the lock (measured: 5 runs out of 5), in ~3 s.
    from moto.dynamodb.responses import DynamoHandler

    original, interval = DynamoHandler.call_action, sys.getswitchinterval()
    errors: list[str] = []
    with mock_aws():
        undo = serialize_dynamodb_writes()
        sys.setswitchinterval(1e-4)
        try:
            client = boto3.client("dynamodb", region_name="us-east-1")
            client.create_table(
                TableName="t",
                KeySchema=[{"AttributeName": "PK", "KeyType": "HASH"}],
                AttributeDefinitions=[{"AttributeName": "PK", "AttributeType": "S"}],
                BillingMode="PAY_PER_REQUEST",
            )
            bulky = {"M": {"x": {"L": [{"S": "y"}] * 20}}}
            client.put_item(TableName="t", Item={"PK": {"S": "x"}, **{f"f{k}": bulky for k in range(20)}})

            def update(worker: int) -> None:
                for i in range(30):
                    drop = f" REMOVE a{worker}_{i - 1}" if i else ""
                    try:
                        client.update_item(
                            TableName="t",
                            Key={"PK": {"S": "x"}},
                            UpdateExpression=f"SET a{worker}_{i} = :v{drop}",
                            ExpressionAttributeValues={":v": {"S": "v"}},
                        )
                    except Exception as error:  # every update must succeed
                        errors.append(repr(error))

            with ThreadPoolExecutor(max_workers=8) as pool:
                list(pool.map(update, range(8)))
            item = client.get_item(TableName="t", Key={"PK": {"S": "x"}})["Item"]
        finally:
            sys.setswitchinterval(interval)
            undo()
    assert errors == []
    assert {f"a{worker}_29" for worker in range(8)} <= set(item)
    assert DynamoHandler.call_action is original
