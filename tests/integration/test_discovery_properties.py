"""A property-based model of the scheduler (issue 11): random sequences of ticks (duplicated, dying),
run starts, finishes and failures, manual triggers and clock steps, for jobs under every overlap
policy, with the real discovery, store (moto), planner, summarizer and finalizer. After every step:
every job is either claimable at its next slot or holds a live lease, and no slot runs twice."""

from __future__ import annotations

import contextlib
import os
from collections import Counter
from datetime import timedelta

import boto3
import pytest
from cronpilot.clock import FixedClock, from_iso
from cronpilot.dal import schema
from cronpilot.dal.health import DynamoHealthStore
from cronpilot.dal.store import Store
from cronpilot.domain.discovery import Discovery, record_id
from cronpilot.domain.finalizing import finalize_failure
from cronpilot.domain.operations import trigger_job
from cronpilot.domain.planning import plan_run
from cronpilot.domain.ports import LeaseLost, RunNotFound, StartUnavailable
from cronpilot.domain.strategies import DeterministicPlanner, DeterministicSummarizer
from cronpilot.domain.summarizing import summarize_run
from cronpilot.local.cloud import serialize_dynamodb_writes
from cronpilot.models.run import FailureEvent, RunRef, RunStatus
from hypothesis import HealthCheck, settings
from hypothesis import strategies as st
from hypothesis.stateful import RuleBasedStateMachine, initialize, invariant, rule
from moto import mock_aws

from tests.integration.conftest import START, RecordingStarter
from tests.support.factories import make_job

TABLE = "cronpilot-model"
SCHEDULES = [{"rate": "1m"}, {"rate": "5m"}, {"cron": "*/10 * * * *"}, {"cron": "0 * * * *"}]
POLICIES = ["skip", "buffer_one", "allow"]
CLOCK_STEPS = [1, 30, 59, 60, 61, 120, 300, 600, 1_800, 3 * 3_600]


class CountingStarter(RecordingStarter):
    def __init__(self) -> None:
        super().__init__()
        self.repeats: Counter[str] = Counter()

    def start(self, run, budget):
        outcome = super().start(run, budget)
        if outcome == "already-started":
            self.repeats[run.run_id] += 1
        return outcome


class ModelStore(Store):
    """The real store, reading only the due shards the model's jobs hash to (no other job exists, so
    the other shards are empty: skipping their queries only saves moto's time)."""

    job_ids: list[str]

    def due_shards(self) -> list[str]:
        return sorted({schema.due_shard(job_id) for job_id in self.job_ids})


class UnreachableStarter:
    def start(self, run, budget):
        raise StartUnavailable("Could not connect to the endpoint URL")


class SchedulerModel(RuleBasedStateMachine):
    def __init__(self) -> None:
        super().__init__()
        self._mock = mock_aws()
        self._mock.start()
        self._undo = serialize_dynamodb_writes()
        client = boto3.client("dynamodb", region_name="us-east-1")
        client.create_table(**schema.create_table_request(TABLE))
        self.store = ModelStore(TABLE, client)
        self.store.job_ids = self.job_ids = []
        self.health = DynamoHealthStore(TABLE, client)
        self.clock = FixedClock(START)
        self.starter = CountingStarter()
        self.ticks = 0

    def teardown(self) -> None:
        self._undo()
        self._mock.stop()

    @initialize(
        jobs=st.lists(
            st.tuples(st.sampled_from(SCHEDULES), st.sampled_from(POLICIES)), min_size=1, max_size=3
        )
    )
    def register(self, jobs) -> None:
        for n, (schedule, policy) in enumerate(jobs):
            guardrails = {"overlap": policy, "min_interval": "1m", "max_lateness": "2h"}
            if policy == "allow":
                guardrails["max_concurrent_runs"] = 2
            job = make_job(f"model-{n}", schedule=schedule, guardrails=guardrails)
            self.store.put_job(job, next_run_at=START, source="baseline", reason="model", now=START)
            self.job_ids.append(job.id)

    # ------------------------------------------------------------ rules

    @rule()
    def tick(self) -> None:
        """A tick (run twice in a row without a clock step, it is a duplicate delivery)."""
        self.ticks += 1
        now = self.clock.now()
        result = Discovery(self.store, self.starter, self.clock, owner=f"tick-{self.ticks}", workers=2).tick()
        # One invocation at a time: any conflict would be a claim that can never succeed
        assert result.conflicts == 0, result
        assert result.left == 0
        for job_id in self.job_ids:
            state = self.store.get_job(job_id).state
            assert state.next_run_at is None or state.next_run_at > now, (job_id, state)

    @rule()
    def dying_tick(self) -> None:
        """Discovery claims, then cannot reach Step Functions (or dies before StartExecution)."""
        self.ticks += 1
        dying = Discovery(
            self.store,
            UnreachableStarter(),
            self.clock,
            owner=f"dying-{self.ticks}",
            workers=2,
            sleep=_no_wait,
        )
        dying.tick()

    @rule(seconds=st.sampled_from(CLOCK_STEPS))
    def clock_steps_forward(self, seconds: int) -> None:
        self.clock.advance(timedelta(seconds=seconds))

    @rule(seconds=st.integers(min_value=1, max_value=5))
    def clock_steps_back(self, seconds: int) -> None:
        self.clock.advance(-timedelta(seconds=seconds))

    @rule(data=st.data())
    def execution_begins(self, data) -> None:
        """A started execution's first state: the planner marks the run running."""
        run = self._pick_live_started_run(data, RunStatus.CLAIMED)
        if run is not None:
            with contextlib.suppress(LeaseLost):
                plan_run(self.store, self.health, self.clock, _ref(run), DeterministicPlanner())

    @rule(data=st.data())
    def execution_succeeds(self, data) -> None:
        run = self._pick_live_started_run(data, RunStatus.RUNNING)
        if run is not None:
            with contextlib.suppress(LeaseLost):
                summarize_run(self.store, self.clock, _ref(run), DeterministicSummarizer())

    @rule(data=st.data())
    def execution_fails(self, data) -> None:
        run = self._pick_live_started_run(data, None)
        if run is not None:
            event = FailureEvent(**_ref(run).model_dump(), error={"Error": "States.TaskFailed"})
            finalize_failure(self.store, self.clock, event)

    @rule(data=st.data())
    def operator_triggers(self, data) -> None:
        trigger_job(self.store, data.draw(st.sampled_from(self.job_ids)), self.clock.now())

    def _pick_live_started_run(self, data, status):
        candidates = []
        for run_id in sorted(set(self.starter.started)):
            run = self.store.get_run(run_id)
            if not RunStatus(run.status).is_final and (status is None or run.status == status):
                candidates.append(run)
        return data.draw(st.sampled_from(candidates)) if candidates else None

    # ------------------------------------------------------- invariants

    @invariant()
    def every_job_is_claimable_at_its_next_slot_or_holds_a_live_lease(self) -> None:
        now = self.clock.now()
        for job_id in self.job_ids:
            record = self.store.get_job(job_id)
            state = record.state
            assert state.next_run_at is not None, job_id  # rates and crons always have a next slot
            # Indexed no later than its slot (or its start check), so a tick will read it
            due_at = self._indexed_due_at(job_id)
            assert due_at is not None, (job_id, state)
            assert due_at <= state.next_run_at, (job_id, due_at, state)
            if state.lease_live(now) and not record.job.guardrails.allows_concurrent_runs:
                continue  # the slot will be skipped (recorded) while the lease lives
            # The record the next claim or skip writes is free: nothing can block it
            next_id = record_id(record, state.next_run_at)
            try:
                existing = self.store.get_run(next_id)
            except RunNotFound:
                continue
            assert existing.status == RunStatus.START_FAILED, (next_id, existing.status)

    def _indexed_due_at(self, job_id: str):
        """The job's entry in the due index (keys only: the shard and `<due at>#<job id>`)."""
        response = self.store.client.query(
            TableName=TABLE,
            IndexName=schema.DUE_INDEX,
            KeyConditionExpression="#pk = :shard",
            FilterExpression="PK = :job",
            ExpressionAttributeNames={"#pk": schema.DUE_INDEX_PK},
            ExpressionAttributeValues={
                ":shard": {"S": schema.due_shard(job_id)},
                ":job": {"S": f"job#{job_id}"},
            },
        )
        entries = [item[schema.DUE_INDEX_SK]["S"].partition("#")[0] for item in response["Items"]]
        return from_iso(entries[0]) if entries else None

    @invariant()
    def no_slot_runs_twice(self) -> None:
        assert not self.starter.repeats, self.starter.repeats
        for job_id in self.job_ids:
            runs, _ = self.store.list_runs(job_id, limit=500)
            ran = [
                r.scheduled_at
                for r in runs
                if r.trigger in ("schedule", "catch-up")
                and r.status not in (RunStatus.SKIPPED, RunStatus.START_FAILED)
            ]
            assert len(ran) == len(set(ran)), (job_id, sorted(ran))
            epochs = [r.epoch for r in runs if r.status != RunStatus.SKIPPED]
            assert len(epochs) == len(set(epochs)), (job_id, sorted(epochs))


def _no_wait(seconds: float) -> None:
    pass


def _ref(run) -> RunRef:
    return RunRef(run_id=run.run_id, job_id=run.job_id, epoch=run.epoch)


SchedulerModel.TestCase.settings = settings(
    max_examples=int(os.environ.get("CRONPILOT_MODEL_EXAMPLES", "12")),
    stateful_step_count=30,
    deadline=None,
    suppress_health_check=[HealthCheck.too_slow, HealthCheck.filter_too_much],
)
test_scheduler_model = pytest.mark.slow(SchedulerModel.TestCase)
