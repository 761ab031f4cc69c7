"""Notifications end to end in local mode: the summarizer and discovery enqueue notices (an async
invocation of the notify function), which delivers them to SNS (moto) and to a webhook receiver on
127.0.0.1 that verifies every signature with the independent `standardwebhooks` package."""

from __future__ import annotations

import json
from datetime import timedelta

import pytest
from cronpilot.local.cloud import LocalCloud
from cronpilot.local.runner import apply_jobs, tick_until
from cronpilot.safehttp.signing import generate_key
from standardwebhooks.webhooks import Webhook, WebhookVerificationError

from tests.integration.http_servers import LoopbackHTTPServer, RecordedRequest, Reply
from tests.support.factories import make_job

KEY = generate_key()


class Receiver:
    """A webhook endpoint that verifies signatures like a careful receiver, answering with the
    statuses it is given in turn (then 200)."""

    def __init__(self) -> None:
        self.verified: list[dict] = []
        self.rejected = 0
        self.answers: list[int] = []

    def __call__(self, request: RecordedRequest) -> Reply:
        try:
            self.verified.append(Webhook(KEY).verify(request.body, request.headers))
        except WebhookVerificationError:
            self.rejected += 1
            return Reply(400)
        status = self.answers.pop(0) if self.answers else 200
        return Reply(status)

    def events(self) -> list[str]:
        return [message["data"]["event"] for message in self.verified]


@pytest.fixture
def receiver(server: LoopbackHTTPServer) -> Receiver:
    hook = Receiver()
    server.route("POST", "/hook", hook)
    return hook


@pytest.fixture
def egress_port(server: LoopbackHTTPServer) -> int:
    return server.port


@pytest.fixture
def topic(cloud: LocalCloud) -> str:
    return str(cloud.client("sns").create_topic(Name="cronpilot-alerts")["TopicArn"])


def signing_secret(cloud: LocalCloud, name: str) -> dict[str, str]:
    cloud.client("secretsmanager").create_secret(Name=name, SecretString=KEY)
    return {"secret": name}


def sns_messages(topic_arn: str) -> list[dict]:
    from moto.sns.models import sns_backends

    backend = sns_backends["123456789012"]["us-east-1"]
    return [json.loads(message) for _id, message, *_ in backend.topics[topic_arn].sent_notifications]


def test_a_failing_streak_notifies_once_then_its_recovery(cloud, store, clock, server, receiver, topic):
    # Given a job whose endpoint fails three runs in a row, then recovers, with a webhook rule that
    # wants to hear after two failures and an SNS rule for every failure
    answers = [500, 500, 500, 200]
    server.route("GET", "/work", lambda _request: Reply(answers.pop(0) if answers else 200))
    job = make_job(
        "streak",
        schedule={"rate": "10m"},
        endpoints=[{"id": "work", "url": server.url("/work"), "retryable": False}],
        notify=[
            {
                "events": ["failure", "recovery"],
                "after_failures": 2,
                "webhook": {"url": server.url("/hook"), "signing": signing_secret(cloud, "hooks/streak")},
            },
            {"events": ["failure"], "sns": topic},
        ],
    )
    apply_jobs(store, [job], clock.now())
    # When four runs happen
    tick_until(cloud, clock, store, ticks=4)
    # Then the webhook heard exactly one failure (at the second) and one recovery, all signatures valid
    assert receiver.events() == ["failure", "recovery"]
    assert receiver.rejected == 0
    # And SNS heard the first failure only (its rule fires when the streak reaches 1)
    assert [m["data"]["event"] for m in sns_messages(topic)] == ["failure"]
    # And each delivery is recorded on the run it is about
    runs = sorted(store.list_runs("streak")[0], key=lambda r: r.scheduled_at)
    recorded = [[(d.event.value, d.status, d.target) for d in r.notifications] for r in runs]
    assert recorded == [
        [("failure", "delivered", topic)],
        [("failure", "delivered", server.base_url)],
        [],
        [("recovery", "delivered", server.base_url)],
    ]


def test_slots_missed_while_the_scheduler_was_down_notify(cloud, store, clock, server, receiver):
    # Given a job that may start at most 2 minutes late
    server.route("GET", "/work", Reply(200))
    job = make_job(
        "late",
        schedule={"rate": "10m"},
        guardrails={"max_lateness": "2m"},
        endpoints=[{"id": "work", "url": server.url("/work")}],
        notify=[
            {
                "events": ["missed"],
                "webhook": {"url": server.url("/hook"), "signing": signing_secret(cloud, "hooks/late")},
            }
        ],
    )
    apply_jobs(store, [job], clock.now())
    # When discovery does not run for 45 minutes, then ticks again
    clock.jump_to(clock.now() + timedelta(minutes=45))
    cloud.tick()
    cloud.wait_idle()
    # Then the slot that did not start is reported as missed, once
    assert receiver.events() == ["missed"]
    [skipped] = [r for r in store.list_runs("late")[0] if r.skip_reason == "too-late"]
    assert receiver.verified[0]["data"]["run_id"] == skipped.run_id
    assert [d.status for d in skipped.notifications] == ["delivered"]


def test_a_webhook_that_answers_503_is_retried_and_the_attempts_recorded(
    cloud, store, clock, server, receiver
):
    # Given a receiver that is briefly unavailable
    receiver.answers = [503]
    server.route("GET", "/work", Reply(500))
    job = make_job(
        "retry",
        schedule={"rate": "10m"},
        endpoints=[{"id": "work", "url": server.url("/work"), "retryable": False}],
        notify=[
            {
                "events": ["failure"],
                "webhook": {"url": server.url("/hook"), "signing": signing_secret(cloud, "hooks/retry")},
            }
        ],
    )
    apply_jobs(store, [job], clock.now())
    # When the job fails once
    tick_until(cloud, clock, store, ticks=1)
    # Then the same message (same webhook-id) arrived twice, and the run records two attempts
    assert receiver.events() == ["failure", "failure"]
    [run] = store.list_runs("retry")[0]
    [delivery] = run.notifications
    assert (delivery.status, delivery.attempts) == ("delivered", 2)
    ids = {r.headers["webhook-id"] for r in server.requests if r.path == "/hook"}
    assert ids == {delivery.message_id}
