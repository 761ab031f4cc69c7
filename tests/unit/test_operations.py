"""The operations the CLI, the API and the MCP server share, against the in-memory store: cursors,
filtered paging, versioned updates, dry runs and explanations."""

from __future__ import annotations

from datetime import UTC, datetime, timedelta

import pytest
from cronpilot.clock import FixedClock
from cronpilot.domain import operations as ops
from cronpilot.domain.discovery import Discovery
from cronpilot.domain.ports import JobNotFound
from cronpilot.models.run import RunStatus

from tests.support.factories import job_doc, make_job
from tests.support.memory import InMemoryStore, RecordingStarter

START = datetime(2026, 11, 22, 9, 0, tzinfo=UTC)


def ticked(store: InMemoryStore, minutes: int) -> list[str]:
    """A 1-minute job ticked `minutes` times: one claimed run, then a skipped slot (overlap) per tick."""
    ops.apply_job(store, make_job("ticker", schedule={"rate": "1m"}), START)
    run_ids: list[str] = []
    for minute in range(1, minutes + 1):
        result = Discovery(
            store, RecordingStarter(), FixedClock(START + timedelta(minutes=minute)), "t"
        ).tick()
        run_ids += result.claimed + [run_id for run_id, _ in result.skipped]
    return run_ids


def test_job_pages_cover_every_job_once_in_id_order():
    store = InMemoryStore()
    for job_id in ("e", "a", "d", "b", "c"):
        ops.apply_job(store, make_job(job_id), START)
    seen, cursor = [], None
    while True:
        page = ops.list_jobs(store, limit=2, cursor=cursor)
        seen += [job.job_id for job in page.jobs]
        if (cursor := page.next_cursor) is None:
            break
    assert seen == ["a", "b", "c", "d", "e"]


@pytest.mark.parametrize("cursor", ["garbage", "eyJrIjoiam9icyJ9", "", "!!!"])
def test_a_cursor_that_is_not_this_listings_is_refused_naming_the_field(cursor):
    store = InMemoryStore()
    ticked(store, 3)
    runs_cursor = ops.list_runs(store, "ticker", limit=1).next_cursor
    if cursor == "":
        # an empty cursor is the first page; a runs cursor is not a jobs cursor
        assert ops.list_jobs(store, cursor=cursor).jobs
        cursor = runs_cursor
    with pytest.raises(ops.InvalidInput) as raised:
        ops.list_jobs(store, cursor=cursor)
    assert raised.value.field == "cursor"


def test_filtered_runs_page_by_the_filter_and_stop_at_the_read_cap(monkeypatch):
    store = InMemoryStore()
    run_ids = ticked(store, 7)  # one claimed, six skipped
    skipped = ops.list_runs(store, "ticker", limit=4, status=RunStatus.SKIPPED)
    rest = ops.list_runs(store, "ticker", limit=4, status=RunStatus.SKIPPED, cursor=skipped.next_cursor)
    assert [r.run_id for r in skipped.runs + rest.runs] == sorted(run_ids[1:], reverse=True)
    assert rest.next_cursor is None
    # a rare filter reads at most MAX_RUNS_EXAMINED runs, then hands back a cursor to continue
    monkeypatch.setattr(ops, "MAX_RUNS_EXAMINED", 3)
    first = ops.list_runs(store, "ticker", limit=2, status=RunStatus.CLAIMED)
    assert first.runs == []
    assert first.next_cursor is not None
    found = []
    cursor = first.next_cursor
    while cursor:
        page = ops.list_runs(store, "ticker", limit=2, status=RunStatus.CLAIMED, cursor=cursor)
        found += [r.run_id for r in page.runs]
        cursor = page.next_cursor
    assert found == [run_ids[0]]
    with pytest.raises(JobNotFound):
        ops.list_runs(store, "ghost")
    with pytest.raises(ops.InvalidInput):
        ops.list_runs(store, "ticker", limit=0)


def test_apply_with_if_match_dry_run_and_create_only():
    store = InMemoryStore()
    created = ops.apply_job(store, make_job("job", goal="v1"), START)
    assert (created.action, created.etag) == ("created", ops.show_job(store, "job").etag)
    # a dry run shows the diff and writes nothing
    dry = ops.apply_job(store, make_job("job", goal="v2"), START, dry_run=True)
    assert '+  "goal": "v2"' in dry.diff
    assert ops.show_job(store, "job").job.goal == "v1"
    # a stale ETag is refused, the current one updates and changes the ETag
    ops.pause_job(store, "job", START)
    with pytest.raises(ops.PreconditionFailed, match="changed since you read it"):
        ops.apply_job(store, make_job("job", goal="v2"), START, if_match=created.etag)
    current = ops.show_job(store, "job").etag
    updated = ops.apply_job(store, make_job("job", goal="v2"), START, if_match=f'"x", {current}')
    assert updated.action == "updated"
    assert updated.etag != current
    assert ops.show_job(store, "job").job.status == "paused"  # the operator's pause outlives the update
    with pytest.raises(ops.PreconditionFailed):
        ops.apply_job(store, make_job("job"), START, create_only=True)
    with pytest.raises(ops.PreconditionFailed, match="does not exist"):
        ops.apply_job(store, make_job("new"), START, if_match=current)
    # If-Match: * means "any current version" (RFC 9110): it updates a job, never creates one
    with pytest.raises(ops.PreconditionFailed):
        ops.apply_job(store, make_job("new"), START, if_match="*")
    assert (
        ops.apply_job(store, make_job("job", goal="v3", status="paused"), START, if_match="*").action
        == "updated"
    )


def test_a_job_document_is_checked_with_the_job_file_messages():
    with pytest.raises(ops.JobDocumentInvalid) as raised:
        ops.parse_job_document(job_doc("bad", schedule={"cron": "x"}, colour="blue"))
    fields = dict(raised.value.problems)
    assert set(fields) == {"schedule.cron", "colour"}
    assert fields["colour"] == "unknown field: remove it or check its spelling"
    with pytest.raises(ops.JobDocumentInvalid):
        ops.parse_job_document(["not", "a", "mapping"])


def test_explain_says_why_the_last_run_happened_then_and_why_the_next_is_when_it_is():
    store = InMemoryStore()
    ops.apply_job(store, make_job("quiet"), START)
    assert ops.explain_job(store, "quiet").text.startswith("quiet has not run yet.")
    ticked(store, 2)
    explained = ops.explain_job(store, "ticker")
    assert explained.skip_reason == "overlap"
    assert explained.run_next_decision is None  # a skipped slot decides nothing
    assert "because it was the job's next slot on its baseline schedule" in explained.text
    assert f"The next run is at {(START + timedelta(minutes=3)).isoformat().replace('+00:00', 'Z')}" in (
        explained.text
    )
    ops.trigger_job(store, "ticker", START + timedelta(minutes=2))
    assert "(manual)" in ops.explain_job(store, "ticker").text


def test_each_change_says_what_it_did():
    store = InMemoryStore()
    ops.apply_job(store, make_job("job", schedule={"rate": "10m"}), START)
    until = START + timedelta(days=1)
    assert ops.pause_job(store, "job", START, until).model_dump(
        include={"action", "status", "next_run_at"}
    ) == {
        "action": "paused",
        "status": "paused",
        "next_run_at": until,
    }
    with pytest.raises(ops.OperationError, match="resume it first"):
        ops.trigger_job(store, "job", START)
    assert ops.resume_job(store, "job", START).next_run_at == START + timedelta(minutes=10)
    assert ops.trigger_job(store, "job", START).next_run_at == START
    assert ops.delete_job(store, "job", START).status is None
    with pytest.raises(JobNotFound):
        ops.show_job(store, "job")
