"""The HTTP API: routes over the operator operations, one resolver for Lambda and `cronpilot local api`.

Routes only parse, call one operation and return its typed result; Powertools validates requests
against the same pydantic models the domain uses and generates the OpenAPI document from the routes.
Errors are RFC 9457 problem details that name the field and the fix.
"""

from __future__ import annotations

import base64
import json
from datetime import datetime
from http import HTTPStatus
from typing import Annotated, Any

from aws_lambda_powertools.event_handler import APIGatewayHttpResolver, Response
from aws_lambda_powertools.event_handler.exceptions import NotFoundError
from aws_lambda_powertools.event_handler.openapi.exceptions import (
    RequestUnsupportedContentType,
    RequestValidationError,
)
from aws_lambda_powertools.event_handler.openapi.params import Body, Header, Path, Query
from aws_lambda_powertools.event_handler.openapi.types import OpenAPIResponse, OpenAPIResponseHeader
from pydantic import BaseModel, Field

from cronpilot.clock import Clock
from cronpilot.domain import operations as ops
from cronpilot.domain.ports import JobNotFound, JobStore, RunNotFound
from cronpilot.models.job import JOB_ID_PATTERN, Job
from cronpilot.models.operations import (
    MAX_SPEND_DAYS,
    PAGE_LIMIT_MAX,
    ApplyResult,
    Explanation,
    FieldProblem,
    JobChange,
    JobDetail,
    JobPage,
    Problem,
    RetryRequest,
    RunDetail,
    RunPage,
)
from cronpilot.models.run import RunStatus
from cronpilot.observability import logger

API_VERSION = "1.0.0"
# A job document is a few KiB; the cap keeps a request far below DynamoDB's 400 KB item limit.
MAX_BODY_BYTES = 64 * 1024
PROBLEM_JSON = "application/problem+json"

app = APIGatewayHttpResolver(enable_validation=True)
JobId = Annotated[str, Path(pattern=JOB_ID_PATTERN, description="the job's id")]
RunId = Annotated[str, Path(description="a run id, `<job id>.<YYYYMMDDTHHMMSSZ>`")]


Responses = dict[int, OpenAPIResponse]


def _problem_response(description: str) -> OpenAPIResponse:
    return {"description": description, "content": {PROBLEM_JSON: {"model": Problem}}}


def _ok(description: str, *, etag: bool = False) -> OpenAPIResponse:
    """A success response; its schema is the route's return type."""
    if not etag:
        return {"description": description}
    header: OpenAPIResponseHeader = {
        "description": "the job document's version, for If-Match",
        "schema": {"type": "string"},
    }
    return {"description": description, "headers": {"ETag": header}}


_BAD_REQUEST: Responses = {400: _problem_response("Invalid request: each invalid field and how to fix it")}
_NOT_FOUND: Responses = {404: _problem_response("No such job or run")}
_TOO_LARGE: Responses = {
    413: _problem_response(f"Request body over {MAX_BODY_BYTES} bytes"),
    415: _problem_response("The body is not application/json"),
}


class Health(BaseModel):
    status: str = Field(description="'ok' when the API answers")
    version: str


class PauseRequest(BaseModel):
    until: datetime | None = Field(
        default=None, description="resume by itself at this time (ISO 8601, UTC unless it has an offset)"
    )


# ------------------------------------------------------------------ context


def _store() -> JobStore:
    return app.context["store"]


def _now() -> datetime:
    clock: Clock = app.context["clock"]
    return clock.now()


def handle(event: dict[str, Any], context: Any, *, store: JobStore, clock: Clock) -> dict[str, Any]:
    """Resolve one API Gateway (HTTP API, payload 2.0) event against a store and a clock."""
    if refused := _refuse_body(event):  # before any parsing or validation
        return refused
    app.append_context(store=store, clock=clock)
    return app.resolve(event, context)


def _refuse_body(event: dict[str, Any]) -> dict[str, Any] | None:
    """413 over the size limit; 415 for a body that is not JSON (Powertools would try to parse forms)."""
    size = _body_size(event)
    if size > MAX_BODY_BYTES:
        status, detail = 413, f"the request body has {size} bytes; at most {MAX_BODY_BYTES} are accepted"
    elif size and not _is_json(event.get("headers") or {}):
        status, detail = 415, "send the body as JSON with Content-Type: application/json"
    elif event.get("isBase64Encoded") and not _is_utf8(event.get("body") or ""):
        status, detail = 400, "body: not valid JSON: JSON is UTF-8 text"
    else:
        return None
    body = Problem(title=HTTPStatus(status).phrase, status=status, detail=detail)
    return {
        "statusCode": status,
        "headers": {"Content-Type": PROBLEM_JSON},
        "body": body.model_dump_json(),
        "isBase64Encoded": False,
    }


def _is_utf8(encoded: str) -> bool:
    """API Gateway base64-encodes bodies that are not text."""
    try:
        base64.b64decode(encoded).decode("utf-8")
    except (ValueError, UnicodeDecodeError):
        return False
    return True


def _is_json(headers: dict[str, str]) -> bool:
    content_type = next((v for k, v in headers.items() if k.lower() == "content-type"), "application/json")
    media = content_type.split(";")[0].strip().lower()
    return media == "application/json" or media.endswith("+json")


def _body_size(event: dict[str, Any]) -> int:
    body = event.get("body") or ""
    if event.get("isBase64Encoded"):
        return len(body) * 3 // 4 - body[-2:].count("=")
    return len(body.encode())


def _configure_openapi() -> None:
    """Title, description and the SigV4 security scheme of the document. Done when the document is
    generated, not at import: Powertools' OpenAPI models cost a cold start far more than the routes."""
    from aws_lambda_powertools.event_handler.openapi.models import APIKey, APIKeyIn

    app.configure_openapi(
        title="cronpilot",
        version=API_VERSION,
        description=(
            "Operate cronpilot jobs and read their runs. Every route requires AWS SigV4 (IAM) "
            "authorization; errors are RFC 9457 problem details (application/problem+json)."
        ),
        # API Gateway's convention for SigV4: an apiKey scheme on Authorization with this extension.
        security_schemes={
            "sigv4": APIKey(
                name="Authorization",
                in_=APIKeyIn.header,
                description="AWS Signature Version 4 (IAM): sign with credentials allowed execute-api:Invoke",
                **{"x-amazon-apigateway-authtype": "awsSigv4"},
            )
        },
        security=[{"sigv4": []}],
    )


def openapi_document() -> dict[str, Any]:
    """The OpenAPI document Powertools generates from the routes.

    Powertools documents a 422 validation response on every route; this API answers validation errors
    with 400 problem details instead (documented per route), so the unused 422 entries are dropped.
    """
    _configure_openapi()
    document = json.loads(app.get_openapi_json_schema())
    for path in document["paths"].values():
        for operation in path.values():
            operation.get("responses", {}).pop("422", None)
    schemas = document["components"]["schemas"]
    for unused in ("HTTPValidationError", "ValidationError"):
        schemas.pop(unused, None)
    return document


# ------------------------------------------------------------------ errors


def problem(status: int, detail: str, errors: list[FieldProblem] | None = None, **headers: str) -> Response:
    body = Problem(title=HTTPStatus(status).phrase, status=status, detail=detail, errors=errors or [])
    return Response(status, PROBLEM_JSON, body.model_dump_json(), headers=headers or None)


def _field_problem(error: dict[str, Any]) -> FieldProblem:
    if error["type"] == "json_invalid":
        return FieldProblem(field="body", message="not valid JSON: send the document as JSON")
    where, *rest = error["loc"]
    field = ".".join(str(part) for part in rest) or str(where)
    return FieldProblem(field=field, message=str(error["msg"]).removeprefix("Value error, "))


@app.exception_handler(RequestValidationError)
def _invalid_request(exc: RequestValidationError) -> Response:
    errors = exc.errors()
    if any(error["loc"][:1] == ("body",) for error in errors) and app.current_event.body:
        # Re-validate the document the way job files are validated: the same field names and fixes.
        try:
            ops.parse_job_document(app.current_event.json_body, "request body")
        except ops.JobDocumentInvalid as invalid:
            return _document_problem(invalid)
        except ValueError:  # not JSON at all: reported below
            pass
    fields = [_field_problem(error) for error in errors]
    return problem(400, "; ".join(f"{f.field}: {f.message}" for f in fields), fields)


def _document_problem(invalid: ops.JobDocumentInvalid) -> Response:
    fields = [FieldProblem(field=field, message=message) for field, message in invalid.problems]
    return problem(
        400, "the job document is invalid: " + "; ".join(f"{f.field}: {f.message}" for f in fields), fields
    )


@app.exception_handler(RequestUnsupportedContentType)
def _unsupported_body(exc: RequestUnsupportedContentType) -> Response:
    return problem(415, "send the body as JSON with Content-Type: application/json")


@app.exception_handler(ops.JobDocumentInvalid)
def _invalid_document(exc: ops.JobDocumentInvalid) -> Response:
    return _document_problem(exc)


@app.exception_handler(ops.InvalidInput)
def _invalid_input(exc: ops.InvalidInput) -> Response:
    return problem(400, str(exc), [FieldProblem(field=exc.field, message=exc.message)])


@app.exception_handler([JobNotFound, RunNotFound])
def _not_found(exc: Exception) -> Response:
    return problem(404, str(exc))


@app.not_found
def _no_route(exc: NotFoundError) -> Response:
    event = app.current_event
    return problem(404, f"no route {event.http_method} {event.path}: see /openapi.json")


@app.exception_handler(ops.PreconditionFailed)
def _stale(exc: ops.PreconditionFailed) -> Response:
    return problem(412, str(exc))


@app.exception_handler(ops.OperationError)
def _conflict(exc: ops.OperationError) -> Response:
    return problem(409, str(exc))


@app.exception_handler(Exception)
def _unexpected(exc: Exception) -> Response:
    logger.exception("unexpected error in the API")
    return problem(500, "internal error: the request was not completed (see the API's logs)")


# ------------------------------------------------------------------ routes


@app.get("/health", operation_id="health", tags=["meta"], summary="The API answers")
def health() -> Health:
    return Health(status="ok", version=API_VERSION)


@app.get("/openapi.json", include_in_schema=False)
def openapi() -> dict[str, Any]:
    return openapi_document()


@app.get(
    "/schemas/job",
    operation_id="getJobSchema",
    tags=["meta"],
    summary="JSON Schema of a job document",
)
def job_schema() -> dict[str, Any]:
    return Job.model_json_schema()


@app.get(
    "/jobs",
    operation_id="listJobs",
    tags=["jobs"],
    summary="Jobs in id order, a page at a time",
    responses={200: _ok("A page of jobs"), **_BAD_REQUEST},
)
def list_jobs(
    limit: Annotated[int, Query(ge=1, le=PAGE_LIMIT_MAX, description="jobs per page")] = 50,
    cursor: Annotated[str | None, Query(description="next_cursor of the previous page")] = None,
) -> JobPage:
    return ops.list_jobs(_store(), limit=limit, cursor=cursor)


@app.get(
    "/jobs/<job_id>",
    operation_id="getJob",
    tags=["jobs"],
    summary="A job: its document, next run and who chose it, lease, failing streak",
    responses={200: _ok("The job", etag=True), **_BAD_REQUEST, **_NOT_FOUND},
)
def get_job(
    job_id: JobId,
    spend_days: Annotated[
        int,
        Query(
            ge=0,
            le=MAX_SPEND_DAYS,
            description="include the AI spend per UTC day over this many days (read from those days' runs)",
        ),
    ] = 0,
) -> Response[JobDetail]:
    detail = ops.show_job(_store(), job_id, _now(), spend_days=spend_days)
    return Response(200, "application/json", detail, headers={"ETag": detail.etag})


@app.put(
    "/jobs/<job_id>",
    operation_id="putJob",
    tags=["jobs"],
    summary="Create or update a job from its document; the result shows the diff",
    description=(
        "Send the ETag of a GET as If-Match to update only the version you read (412 otherwise); "
        "If-None-Match: * creates only. A pause set by an operator outlives the update. "
        "dry_run=true shows the diff without writing."
    ),
    responses={
        200: _ok("Updated, unchanged, or (dry_run) what would change", etag=True),
        201: _ok("Created", etag=True),
        **_BAD_REQUEST,
        412: _problem_response(
            "The job changed since the ETag in If-Match (or exists, with If-None-Match: *)"
        ),
        **_TOO_LARGE,
    },
)
def put_job(
    job_id: JobId,
    job: Annotated[Job, Body(description="the job document (the same as a job file)")],
    if_match: Annotated[
        str | None, Header(alias="If-Match", description="ETag from GET /jobs/{job_id}")
    ] = None,
    if_none_match: Annotated[
        str | None, Header(alias="If-None-Match", description="`*`: create only")
    ] = None,
    dry_run: Annotated[bool, Query(description="show the diff, write nothing")] = False,
) -> Response[ApplyResult]:
    if job.id != job_id:
        raise ops.InvalidInput(
            "id", f"the document's id {job.id!r} differs from the URL's {job_id!r}: make them equal"
        )
    result = ops.apply_job(
        _store(), job, _now(), if_match=if_match, create_only=if_none_match == "*", dry_run=dry_run
    )
    status = 201 if result.action == "created" and not dry_run else 200
    return Response(status, "application/json", result, headers={"ETag": result.etag})


@app.delete(
    "/jobs/<job_id>",
    operation_id="deleteJob",
    tags=["jobs"],
    summary="Delete a job (refused while a run is in flight unless force=true)",
    responses={
        200: _ok("Deleted"),
        **_BAD_REQUEST,
        **_NOT_FOUND,
        409: _problem_response("A run is in flight"),
    },
)
def delete_job(
    job_id: JobId,
    force: Annotated[bool, Query(description="delete even while runs are in flight")] = False,
) -> JobChange:
    return ops.delete_job(_store(), job_id, _now(), force=force)


@app.post(
    "/jobs/<job_id>/pause",
    operation_id="pauseJob",
    tags=["jobs"],
    summary="Pause now, or until a time",
    responses={200: _ok("Paused"), **_BAD_REQUEST, **_NOT_FOUND, **_TOO_LARGE},
)
def pause_job(job_id: JobId, request: Annotated[PauseRequest | None, Body()] = None) -> JobChange:
    until = request.until if request else None
    return ops.pause_job(_store(), job_id, _now(), ops.aware(until) if until else None)


@app.post(
    "/jobs/<job_id>/resume",
    operation_id="resumeJob",
    tags=["jobs"],
    summary="Resume a paused job at its next baseline slot",
    responses={200: _ok("Resumed"), **_BAD_REQUEST, **_NOT_FOUND},
)
def resume_job(job_id: JobId) -> JobChange:
    return ops.resume_job(_store(), job_id, _now())


class TriggerRequest(BaseModel):
    ask_ai: bool = Field(
        default=False, description="consult the AI pilot on this run even if nothing changed"
    )


@app.post(
    "/jobs/<job_id>/trigger",
    operation_id="triggerJob",
    tags=["jobs"],
    summary="Run now (on the next scheduler tick), under the job's overlap policy",
    responses={
        200: _ok("Triggered: it runs on the next scheduler tick"),
        **_BAD_REQUEST,
        **_NOT_FOUND,
        409: _problem_response("The job is paused"),
        **_TOO_LARGE,
    },
)
def trigger_job(job_id: JobId, request: Annotated[TriggerRequest | None, Body()] = None) -> JobChange:
    return ops.trigger_job(_store(), job_id, _now(), ask_ai=bool(request and request.ask_ai))


@app.get(
    "/jobs/<job_id>/explain",
    operation_id="explainJob",
    tags=["jobs"],
    summary="Why the last run happened when it did, and why the next one is when it is",
    responses={200: _ok("The explanation"), **_BAD_REQUEST, **_NOT_FOUND},
)
def explain_job(job_id: JobId) -> Explanation:
    return ops.explain_job(_store(), job_id)


@app.get(
    "/jobs/<job_id>/runs",
    operation_id="listRuns",
    tags=["runs"],
    summary="A job's runs, newest first",
    responses={200: _ok("A page of runs, newest first"), **_BAD_REQUEST, **_NOT_FOUND},
)
def list_runs(
    job_id: JobId,
    limit: Annotated[int, Query(ge=1, le=PAGE_LIMIT_MAX, description="runs per page")] = 20,
    cursor: Annotated[str | None, Query(description="next_cursor of the previous page")] = None,
    status: Annotated[RunStatus | None, Query(description="only runs with this status")] = None,
    trigger: Annotated[
        str | None, Query(description="only runs with this trigger (schedule, manual, ...)")
    ] = None,
) -> RunPage:
    return ops.list_runs(_store(), job_id, limit=limit, cursor=cursor, status=status, trigger=trigger)


@app.get(
    "/runs/<run_id>",
    operation_id="getRun",
    tags=["runs"],
    summary="A run: plan, steps, summary, next-run decision, tokens",
    responses={200: _ok("The run"), **_BAD_REQUEST, **_NOT_FOUND},
)
def get_run(run_id: RunId) -> RunDetail:
    return ops.show_run(_store(), run_id)


class RetryBody(BaseModel):
    failed_only: bool = Field(
        default=False, description="re-execute only failed and skipped steps; reuse the others' results"
    )


@app.post(
    "/runs/<run_id>/retry",
    operation_id="retryRun",
    tags=["runs"],
    summary="Replay a finished run as a new run on the next scheduler tick (trigger retry)",
    responses={
        200: _ok("The retry is requested"),
        **_BAD_REQUEST,
        **_NOT_FOUND,
        409: _problem_response("The run cannot be replayed now (the reason says why)"),
        **_TOO_LARGE,
    },
)
def retry_run(run_id: RunId, request: Annotated[RetryBody | None, Body()] = None) -> RetryRequest:
    return ops.retry_run(_store(), run_id, _now(), failed_only=bool(request and request.failed_only))
