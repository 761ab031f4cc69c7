"""Summarizing a run: record its outcome, choose the next run inside the guardrails, release the
lease, all fenced by the run's epoch. (A run that failed is finalized in finalizing.py.)"""

from __future__ import annotations

from collections import Counter
from datetime import datetime

from cronpilot.clock import Clock
from cronpilot.domain.news import experienced_circuits, inputs_of, observe
from cronpilot.domain.notifications import notify_outcome
from cronpilot.domain.ports import JobRecord, JobStore, LeaseLost, NoticeQueue, RunOutcome
from cronpilot.domain.scheduling import cadence_anchor, clamp_next_run, failure_backoff
from cronpilot.domain.strategies import Proposal, SummaryContext, SummaryStrategy
from cronpilot.durations import format_duration
from cronpilot.models.job import JobStatus
from cronpilot.models.run import NextRunDecision, RunRecord, RunRef, RunStatus, StepStatus
from cronpilot.observability import record_run_outcome

# A concurrent run's finish races newer claims; each lost race re-reads the job once.
FINISH_ATTEMPTS = 3
# Decisions that pause the job (the operator's pause mechanism, ending at the decision's time).
PAUSE_SOURCES = frozenset({"paused", "clamped-pause"})


def _outcome_status(counts: Counter[str]) -> RunStatus:
    if counts[StepStatus.FAILED] == 0 and counts[StepStatus.SKIPPED] == 0:
        return RunStatus.SUCCEEDED
    if counts[StepStatus.SUCCEEDED] == 0 and counts[StepStatus.FAILED] > 0:
        return RunStatus.FAILED
    return RunStatus.PARTIAL


def summarize_run(
    store: JobStore,
    clock: Clock,
    ref: RunRef,
    strategy: SummaryStrategy,
    notices: NoticeQueue | None = None,
) -> RunOutcome:
    record = store.get_job(ref.job_id)
    run = store.get_fenced_run(ref.run_id, ref.epoch)
    if RunStatus(run.status).is_final:  # a retried invocation after the outcome was recorded
        return {"status": run.status}
    now = clock.now()
    results = list(store.get_step_results(run.run_id).values())
    counts = Counter(str(r.status) for r in results)
    run.step_counts = {s.value: counts[s] for s in StepStatus}
    run.status = _outcome_status(counts)
    run.finished_at = now
    failures = record.state.consecutive_failures + 1 if counts[StepStatus.FAILED] else 0

    run.observations = observe(record.job, results)
    context = SummaryContext(
        run=run,
        results=results,
        now=now,
        standing=store.get_decision(ref.job_id, "summarize"),
        inputs=inputs_of(record.job, experienced_circuits(results), run.observations),
    )
    proposal = strategy.propose(record.job, context)
    run.finished_at = clock.now()  # the run's duration includes summarizing (a model call can be slow)
    run.summary = proposal.summary
    run.tokens = run.tokens + proposal.tokens
    run.llm_failures += proposal.failures
    if proposal.consult is not None:
        run.consults.append(proposal.consult)
    decision = decide_next_run(record, run, proposal, failures, now)
    run.next_run = decision
    write_outcome(store, record, run, decision, failures, proposal)
    record_run_outcome(run.status)
    notify_outcome(notices, store, record.job, run, record.state.consecutive_failures, now)
    return {"status": run.status}


def decide_next_run(
    record: JobRecord, run: RunRecord, proposal: Proposal, failures: int, now: datetime
) -> NextRunDecision:
    """Code decides: buffered runs go next, failures back off, pauses are honoured, the rest is clamped."""
    now = now.replace(microsecond=0)  # next runs are stored to the second
    guardrails = record.job.guardrails
    shadow = _shadow_decision(record, run, proposal.shadow, now)
    if record.state.buffered:
        return NextRunDecision(
            at=now,
            source="buffered",
            reason="a slot was buffered while this run was in flight",
            shadow=shadow,
        )
    if proposal.pause_until is not None:
        return _pause(record, run, proposal, now, shadow)
    if failures:
        delay = failure_backoff(failures, guardrails)
        return NextRunDecision(
            at=now + delay,
            source="backoff",
            reason=f"{failures} consecutive failing run(s): backing off {delay}",
            proposed_at=proposal.at,
            shadow=shadow,
        )
    if proposal.at is None:
        return NextRunDecision(at=None, source=proposal.source, reason=proposal.reason, shadow=shadow)
    clamped = clamp_next_run(
        proposal.at,
        source=proposal.source,
        reason=proposal.reason,
        guardrails=guardrails,
        scheduled_at=cadence_anchor(run),
        now=now,
    )
    return NextRunDecision(
        at=clamped.at,
        source=clamped.source,
        reason=clamped.reason,
        proposed_at=proposal.at,
        shadow=shadow,
        reused_from=proposal.reused_from,
    )


def _pause(
    record: JobRecord, run: RunRecord, proposal: Proposal, now: datetime, shadow: NextRunDecision | None
) -> NextRunDecision:
    """A pause ends by `max_pause` at the latest (`clamped-pause`); one that would end before
    min_interval is no pause, just the earliest next run the guardrails allow."""
    guardrails = record.job.guardrails
    assert proposal.pause_until is not None
    until, source, reason = proposal.pause_until, "paused", proposal.reason
    lower = max(run.scheduled_at + guardrails.min_interval, now)
    if until > now + guardrails.max_pause:
        until, source = now + guardrails.max_pause, "clamped-pause"
        reason = f"{reason}; pause shortened to max_pause {format_duration(guardrails.max_pause)}"
    elif until < lower:
        until, source = lower, "clamped-min"
        reason = f"{reason}; raised to min_interval {format_duration(guardrails.min_interval)}"
    return NextRunDecision(
        at=until,
        source=source,
        reason=reason,
        proposed_at=proposal.pause_until,
        shadow=shadow,
        reused_from=proposal.reused_from,
    )


def _shadow_decision(
    record: JobRecord, run: RunRecord, shadow: Proposal | None, now: datetime
) -> NextRunDecision | None:
    if shadow is None or shadow.at is None:
        return None
    clamped = clamp_next_run(
        shadow.at,
        source=shadow.source,
        reason=shadow.reason,
        guardrails=record.job.guardrails,
        scheduled_at=cadence_anchor(run),
        now=now,
    )
    return NextRunDecision(at=clamped.at, source=clamped.source, reason=clamped.reason, proposed_at=shadow.at)


def write_outcome(
    store: JobStore,
    record: JobRecord,
    run: RunRecord,
    decision: NextRunDecision,
    failures: int,
    proposal: Proposal | None = None,
) -> None:
    """Write the outcome. A concurrent run that a newer run overtook (even while this one was being
    summarized) records its decision as superseded: the newest run in flight sets the next run."""
    for _ in range(FINISH_ATTEMPTS):
        latest = record.state.epoch == run.epoch
        if not latest and run.concurrent:
            run.next_run = NextRunDecision(
                at=record.state.next_run_at,
                source="superseded",
                reason=f"run {record.state.current_run_id} started later and decides the next run",
                proposed_at=decision.at,
            )
        pause_until = decision.at if decision.source in PAUSE_SOURCES else None
        try:
            store.finish_run(
                run,
                next_run_at=decision.at,
                next_run_source=decision.source,
                next_run_reason=decision.reason,
                consecutive_failures=failures,
                pause_until=pause_until,
                index_due=record.job.status == JobStatus.ACTIVE,
                latest=latest or not run.concurrent,
                decision=proposal.standing if proposal else None,
            )
            return
        except LeaseLost:
            if not (run.concurrent and latest):
                raise
            record = store.get_job(run.job_id)  # a newer run was claimed meanwhile: look again
    raise LeaseLost(f"run {run.run_id} kept losing the race to finish against newer runs")
