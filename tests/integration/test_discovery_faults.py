"""The core under faults (issue 11): no job stuck, one catch-up run after an outage, nothing stranded,
the lease boundary, and a tick that keeps its deadline. The real store on moto throughout."""

from __future__ import annotations

import threading
from collections import Counter
from datetime import timedelta

import pytest
from cronpilot.domain.discovery import LEASE_DURATION, START_CHECK_AFTER, Deadline, Discovery
from cronpilot.domain.ports import StartUnavailable
from cronpilot.domain.strategies import DeterministicSummarizer
from cronpilot.domain.summarizing import summarize_run
from cronpilot.models.run import RunRef, RunStatus

from tests.integration.conftest import START, RecordingStarter
from tests.support.factories import make_job

POLICIES = ["skip", "buffer_one", "allow"]


def apply(store, job_id, when=START, **fields):
    job = make_job(job_id, **fields)
    store.put_job(job, next_run_at=when, source="baseline", reason="test", now=when)
    return job


def tick(store, starter, clock, deadline=None, **kwargs):
    kwargs.setdefault("sleep", lambda seconds: None)  # backoff without waiting
    return Discovery(store, starter, clock, owner=f"tick-{clock.now():%H%M%S}", **kwargs).tick(deadline)


def finish(store, clock, run_id):
    """What the state machine's Summarize stage does at the end of a run."""
    run = store.get_run(run_id)
    ref = RunRef(run_id=run_id, job_id=run.job_id, epoch=run.epoch)
    summarize_run(store, clock, ref, DeterministicSummarizer())
    return store.get_run(run_id)


def runs_of(store, job_id):
    runs, _ = store.list_runs(job_id, limit=100)
    return sorted(runs, key=lambda r: (r.scheduled_at, r.run_id))


# ------------------------------------------------------------------ ids


def test_a_buffered_run_in_the_second_of_a_skipped_slot_is_not_stuck(store, clock, starter):
    # Given a run in flight, and the next slot skipped (buffered) while it runs
    apply(store, "stuck", schedule={"cron": "*/10 * * * *"}, guardrails={"overlap": "buffer_one"})
    [first] = tick(store, starter, clock).claimed
    clock.advance(timedelta(minutes=10))
    [(skipped, reason)] = tick(store, starter, clock).skipped
    assert (skipped, reason) == ("stuck.20261122T091000Z", "overlap-buffered")
    # When the run ends in that same second, so the buffered run is due in the skipped slot's second
    assert finish(store, clock, first).next_run.at == clock.now()
    result = tick(store, starter, clock)
    # Then the buffered run gets an id of its own (the record sequence), and is claimed and started
    assert result.conflicts == 0
    assert result.claimed == ["stuck.20261122T091000Z-3"]
    assert starter.started == [first, "stuck.20261122T091000Z-3"]
    assert store.get_run("stuck.20261122T091000Z").status == RunStatus.SKIPPED
    # And every later tick keeps claiming the job at its slots
    finish(store, clock, "stuck.20261122T091000Z-3")
    clock.advance(timedelta(minutes=10))
    assert tick(store, starter, clock).claimed == ["stuck.20261122T092000Z"]


def test_a_record_left_under_the_plain_id_by_an_older_version_is_stepped_around(store, clock, starter):
    # Given a job stuck under the old id scheme: a record already holds its next slot's plain id
    apply(store, "legacy", schedule={"rate": "5m"})
    [first] = tick(store, starter, clock).claimed
    finish(store, clock, first)
    stored = store.get_job("legacy").state
    blocker = store.get_run(first).model_copy(
        update={"run_id": f"legacy.{stored.next_run_at:%Y%m%dT%H%M%SZ}", "scheduled_at": stored.next_run_at}
    )
    store.save_run(blocker.model_copy(update={"epoch": stored.epoch}))
    # As a job written before jobs counted their records
    store.client.update_item(
        TableName=store.table_name,
        Key={"PK": {"S": "job#legacy"}, "SK": {"S": "job"}},
        UpdateExpression="REMOVE records, newest_stamp",
    )
    clock.advance(timedelta(minutes=5))
    # When the job is due in that second
    result = tick(store, starter, clock)
    # Then the claim steps around the existing item instead of conflicting on every tick
    assert result.conflicts == 0
    [claimed] = result.claimed
    assert claimed.startswith(f"{blocker.run_id}-")


# ------------------------------------------------------------- lease boundary


def test_a_claim_at_exactly_the_lease_expiry_second_succeeds(store, clock, starter):
    # Given a run whose holder went silent, and the job due at exactly the second its lease expires
    apply(store, "edge", schedule={"rate": "5m"})
    [silent] = tick(store, starter, clock).claimed
    clock.advance(LEASE_DURATION)
    assert store.get_job("edge").state.lease_expires_at == clock.now()
    # When discovery ticks in that second
    result = tick(store, starter, clock)
    # Then the lease counts as expired for the claim too: the job is claimed, the silent run fenced
    assert len(result.claimed) == 1
    assert result.conflicts == 0
    assert store.get_run(silent).status == RunStatus.ABANDONED


# ------------------------------------------------------- outage and recovery


@pytest.mark.parametrize("policy", POLICIES)
def test_rate_job_after_an_outage_runs_once_then_one_interval_later(store, clock, starter, policy):
    # Given a 10-minute rate job whose 09:00 slot the scheduler missed for 35 minutes
    apply(store, "rated", schedule={"rate": "10m"}, guardrails={"overlap": policy, "max_lateness": "1h"})
    clock.advance(timedelta(minutes=35))
    # When the first tick after the outage arrives, twice (at-least-once delivery), and ticks go on
    first = tick(store, starter, clock)
    duplicate = tick(store, starter, clock)
    assert first.claimed == ["rated.20261122T090000Z"]
    assert duplicate.claimed == duplicate.skipped == []
    run = store.get_run("rated.20261122T090000Z")
    assert run.trigger == "catch-up"
    # Then the cadence resumes one interval after the catch-up run, whether or not it has finished
    assert store.get_job("rated").state.next_run_at == START + timedelta(minutes=45)
    for _ in range(9):
        clock.advance(timedelta(minutes=1))
        assert tick(store, starter, clock).claimed == []
    clock.advance(timedelta(seconds=30))
    done = finish(store, clock, run.run_id)
    assert done.next_run.at == START + timedelta(minutes=45)
    assert tick(store, starter, clock).claimed == []  # and a late duplicate tick changes nothing
    clock.advance(timedelta(seconds=30))
    assert tick(store, starter, clock).claimed == ["rated.20261122T094500Z"]
    assert starter.started == ["rated.20261122T090000Z", "rated.20261122T094500Z"]


@pytest.mark.parametrize("policy", POLICIES)
def test_cron_job_after_an_outage_runs_once_then_at_the_next_slot(store, clock, starter, policy):
    # Given a */10 cron job, and a scheduler that was down from 09:00 to 09:35
    apply(
        store,
        "crony",
        schedule={"cron": "*/10 * * * *"},
        guardrails={"overlap": policy, "max_lateness": "1h"},
    )
    clock.advance(timedelta(minutes=35))
    # When the ticks resume (the first one delivered twice)
    assert tick(store, starter, clock).claimed == ["crony.20261122T090000Z"]
    assert tick(store, starter, clock).claimed == []
    # Then one catch-up run covers the missed slots, and the next run is the next slot after now
    assert store.get_job("crony").state.next_run_at == START + timedelta(minutes=40)
    clock.advance(timedelta(minutes=2))
    finish(store, clock, "crony.20261122T090000Z")
    assert store.get_job("crony").state.next_run_at == START + timedelta(minutes=40)
    clock.advance(timedelta(minutes=3))
    assert tick(store, starter, clock).claimed == ["crony.20261122T094000Z"]
    assert tick(store, starter, clock).claimed == []
    assert len(starter.started) == 2


# ------------------------------------------------------------- stranded runs


class DyingStarter(RecordingStarter):
    """Step Functions unreachable: the connection fails before the request is sent."""

    def start(self, run, budget):
        raise StartUnavailable("Could not connect to the endpoint URL")


def test_a_run_claimed_but_never_started_is_started_by_a_later_tick(store, clock, starter):
    # Given a claim whose StartExecution never happened (the connection failed)
    apply(store, "orphan", schedule={"rate": "1h"})
    dying = tick(store, DyingStarter(), clock)
    [run_id] = dying.claimed
    assert dying.start_failures == 1
    assert store.get_run(run_id).status == RunStatus.CLAIMED
    # When the ticks go on with Step Functions reachable again
    started_at = None
    for minute in range(1, 4):
        clock.advance(timedelta(minutes=1))
        result = tick(store, starter, clock)
        if result.late_starts:
            started_at = minute
            break
    # Then within about two ticks the run is started, under its own id, and says why it was late
    assert started_at is not None
    assert started_at <= 2
    assert result.late_starts == [run_id]
    assert starter.started == [run_id]
    assert "not started" in store.get_run(run_id).late_start
    # And the job is left alone until its next slot
    for _ in range(3):
        clock.advance(timedelta(minutes=1))
        quiet = tick(store, starter, clock)
        assert quiet.scanned == 0
    assert starter.started == [run_id]


def test_a_started_run_that_outlives_the_start_check_is_not_started_again(store, clock, starter):
    apply(store, "longrun", schedule={"rate": "1h"})
    [run_id] = tick(store, starter, clock).claimed
    run = store.get_run(run_id)
    run.status = RunStatus.RUNNING  # the planner marks the run running when its execution begins
    store.save_run(run)
    clock.advance(START_CHECK_AFTER + timedelta(minutes=1))
    result = tick(store, starter, clock)
    assert result.late_starts == []
    assert starter.started == [run_id]
    clock.advance(timedelta(minutes=1))
    assert tick(store, starter, clock).scanned == 0  # checked once, then out of the due index


class ThrottledStarter(RecordingStarter):
    """StartExecution throttled for the first `refusals` calls (a drained token bucket)."""

    def __init__(self, refusals: int) -> None:
        super().__init__()
        self.refusals = refusals
        self.calls = 0
        self.lock = threading.Lock()

    def start(self, run, budget):
        from cronpilot.domain.ports import StartThrottled

        with self.lock:
            self.calls += 1
            if self.calls <= self.refusals:
                raise StartThrottled("ThrottlingException: Rate exceeded")
            return super().start(run, budget)


def test_throttled_starts_are_retried_with_backoff_and_no_claim_is_lost(store, clock):
    for n in range(6):
        apply(store, f"burst-{n}", schedule={"rate": "1h"})
    starter = ThrottledStarter(refusals=9)
    waits: list[float] = []
    result = tick(store, starter, clock, workers=3, sleep=waits.append)
    assert sorted(starter.started) == sorted(result.claimed)
    assert len(result.claimed) == 6
    assert result.start_failures == 0
    assert waits  # backed off, briefly
    assert max(waits) <= 2.0


# ------------------------------------------------------------------ deadline


class SlowStore:
    """The real store, with every claim or skip taking `write_seconds` of simulated time."""

    def __init__(self, store, write_seconds: float) -> None:
        self._store = store
        self.write_seconds = write_seconds
        self.elapsed = 0.0
        self.lock = threading.Lock()

    def __getattr__(self, name):
        attribute = getattr(self._store, name)
        if name not in ("claim", "record_skip"):
            return attribute

        def slow(*args, **kwargs):
            with self.lock:
                self.elapsed += self.write_seconds
            return attribute(*args, **kwargs)

        return slow


def test_a_tick_stops_before_its_deadline_and_the_next_tick_finishes_the_work(store, clock, starter):
    # Given 40 due jobs, and a store so slow that one 60-second invocation cannot claim them all
    jobs = [f"slow-{n:02d}" for n in range(40)]
    for job_id in jobs:
        apply(store, job_id, schedule={"rate": "1h"})
    slow = SlowStore(store, write_seconds=2.0)
    # When a tick runs with a 60-second deadline
    first = tick(slow, starter, clock, workers=1, deadline=Deadline(lambda: 60.0 - slow.elapsed))
    # Then it stops taking work with a margin left, and says how much it left
    assert slow.elapsed <= 60.0
    assert 0 < len(first.claimed) < 40
    assert first.left == 40 - len(first.claimed)
    assert first.output()["left"] == first.left
    # And the next tick finishes the work: every job claimed and started exactly once
    clock.advance(timedelta(minutes=1))
    slow.elapsed = 0.0
    second = tick(slow, starter, clock, workers=1, deadline=Deadline(lambda: 60.0 - slow.elapsed))
    assert second.left == 0
    claims = Counter(first.claimed + second.claimed)
    assert sorted(claims) == sorted(f"{job}.20261122T090000Z" for job in jobs)
    assert set(claims.values()) == {1}
    assert sorted(starter.started) == sorted(claims)


def test_a_connection_error_at_start_execution_leaves_the_claim_to_the_start_check(store, clock):
    # Given the real starter over Step Functions (moto), whose endpoint refuses the first connections
    import boto3
    from botocore.exceptions import EndpointConnectionError
    from cronpilot.dal.executions import StepFunctionsStarter

    sfn = boto3.client("stepfunctions", region_name="us-east-1")
    machine = sfn.create_state_machine(
        name="runs",
        definition='{"StartAt": "Done", "States": {"Done": {"Type": "Succeed"}}}',
        roleArn="arn:aws:iam::123456789012:role/runs",
    )["stateMachineArn"]
    refusing = {"on": True}

    def refuse(**_):
        if refusing["on"]:
            raise EndpointConnectionError(endpoint_url="https://states.us-east-1.amazonaws.com")

    sfn.meta.events.register("before-send.sfn.StartExecution", refuse)
    starter = StepFunctionsStarter(sfn, machine)
    apply(store, "unreachable", schedule={"rate": "1h"})
    # When discovery claims while Step Functions is unreachable
    first = tick(store, starter, clock)
    [run_id] = first.claimed
    assert first.start_failures == 1
    assert store.get_run(run_id).status == RunStatus.CLAIMED
    # Then a later tick, with Step Functions back, starts that same run under its execution name
    refusing["on"] = False
    clock.advance(START_CHECK_AFTER)
    later = tick(store, starter, clock)
    assert later.late_starts == [run_id]
    [execution] = sfn.list_executions(stateMachineArn=machine)["executions"]
    assert execution["name"] == run_id
    assert store.get_run(run_id).late_start.startswith("not started 60s after its claim")
