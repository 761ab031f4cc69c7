"""Local mode's caches over moto's per-call rebuilding: same answers, built once, and undone on exit."""

from __future__ import annotations

from datetime import UTC, datetime

from cronpilot.clock import AcceleratedClock
from cronpilot.local.cloud import LocalCloud, cache_interpreter_setup, cache_request_routing
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
