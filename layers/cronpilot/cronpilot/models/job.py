"""The job: what a user registers. Validated by pydantic; every error names the field and the fix."""

# No `from __future__ import annotations` in modules that define pydantic models: pydantic would
# compile and evaluate every annotation string while building them, on every Lambda cold start.

import json
import math
import re
from datetime import datetime, timedelta
from enum import StrEnum
from typing import Annotated, Any, Literal, NamedTuple, Self
from urllib.parse import urlsplit

from pydantic import (
    Discriminator,
    Field,
    GetCoreSchemaHandler,
    GetJsonSchemaHandler,
    StrictBool,
    Tag,
    ValidationError,
    field_validator,
    model_validator,
)
from pydantic.json_schema import JsonSchemaValue
from pydantic_core import core_schema, to_jsonable_python

from cronpilot.cron import CronExpression, parse_timezone
from cronpilot.durations import Duration, format_duration
from cronpilot.models.notify import MAX_RULES, NotifyRule
from cronpilot.models.workflow import (
    MAX_EXTRACTS_PER_JOB,
    REFERENCE_FORM,
    ExpectSpec,
    ExtractSpec,
    SigningSpec,
    Strict,
    check_extract_names,
    normalize_extract,
    request_references,
    starts_with_reference,
)

# Run ids are "<job id>.<YYYYMMDDTHHMMSSZ>" and double as Step Functions execution names, which allow
# 80 characters: 63 + 1 + 16 = 80. Lower-case letters, digits and hyphens avoid every forbidden character.
JOB_ID_PATTERN = r"^[a-z0-9](?:[a-z0-9-]{0,61}[a-z0-9])?$"
ENDPOINT_ID_PATTERN = r"^[a-z0-9](?:[a-z0-9_-]{0,62})$"
HEADER_NAME = re.compile(r"^[A-Za-z0-9!#$%&'*+.^_`|~-]+$")


DEFAULT_MAX_CONCURRENT_RUNS = 3
MAX_ENDPOINTS = 100


# ------------------------------------------------------------------ field types with cronpilot's words
# A job file is typed by hand: these types refuse booleans as numbers, non-finite and out-of-range
# values with the field's range in the message, instead of pydantic's generic wording.


def describe_value(value: object) -> str:
    """What a value looks like to someone who typed it in YAML or JSON."""
    if value is None:
        return "nothing (null)"
    if isinstance(value, bool):
        return "true" if value else "false"
    if isinstance(value, float) and not math.isfinite(value):
        return "NaN" if math.isnan(value) else "infinity"
    if isinstance(value, int) and value.bit_length() > 128:  # str() of a huge int is slow, or refused
        return "a number with more than 38 digits"
    if isinstance(value, int | float):
        text = str(value)
        return f"the number {text if len(text) <= 24 else text[:20] + '...'}"
    if isinstance(value, str):
        return "text" if len(value) > 40 else f"the text {value!r}"
    if isinstance(value, dict):
        return "a mapping"
    if isinstance(value, list | tuple):
        return "a list"
    return f"a {type(value).__name__}"


class WholeNumber(NamedTuple):
    """`Annotated[int, WholeNumber(1, 40)]`: an int in [low, high]; true/false, 2.5, "3" and NaN refused."""

    low: int
    high: int

    def check(self, value: object) -> object:
        if isinstance(value, bool) or not isinstance(value, int):
            raise ValueError(
                f"expected a whole number from {self.low} to {self.high}, got {describe_value(value)}"
            )
        if not self.low <= value <= self.high:
            raise ValueError(
                f"{describe_value(value).removeprefix('the number ')} is out of range: "
                f"use a whole number from {self.low} to {self.high}"
            )
        return value

    def __get_pydantic_core_schema__(
        self, source: Any, handler: GetCoreSchemaHandler
    ) -> core_schema.CoreSchema:
        return core_schema.no_info_before_validator_function(self.check, handler(source))

    def __get_pydantic_json_schema__(
        self, schema: core_schema.CoreSchema, handler: GetJsonSchemaHandler
    ) -> JsonSchemaValue:
        return {**handler(schema), "minimum": self.low, "maximum": self.high}


class DurationWithin(NamedTuple):
    """`Annotated[Duration, DurationWithin(low, high)]`: the range is part of every message."""

    low: timedelta
    high: timedelta

    @property
    def expected(self) -> str:
        return (
            f"use a duration from {format_duration(self.low)} to {format_duration(self.high)}, such as '15m'"
        )

    def check(self, value: Any, handler: core_schema.ValidatorFunctionWrapHandler) -> timedelta:
        try:
            parsed: timedelta = handler(value)
        except ValidationError as exc:
            problem = str(exc.errors()[0]["msg"]).removeprefix("Value error, ").split(": use ")[0]
            raise ValueError(f"{problem}: {self.expected}") from None
        if not self.low <= parsed <= self.high:
            raise ValueError(f"{format_duration(parsed)} is out of range: {self.expected}")
        return parsed

    def __get_pydantic_core_schema__(
        self, source: Any, handler: GetCoreSchemaHandler
    ) -> core_schema.CoreSchema:
        return core_schema.no_info_wrap_validator_function(self.check, handler(source))


ONE_YEAR = timedelta(days=366)
# Far longer than any real one; keeps the parsers (and the messages that quote them) small.
MAX_CRON_LENGTH = 200
MAX_TIMEZONE_LENGTH = 64
# How long a standing AI decision may be reused without asking the model again, and its ceiling.
DEFAULT_MAX_DECISION_AGE = timedelta(hours=24)
MAX_DECISION_AGE_LIMIT = timedelta(days=30)
DEFAULT_MAX_PAUSE = timedelta(days=7)
MAX_WATCH_EXPRESSIONS = 10


class JobStatus(StrEnum):
    ACTIVE = "active"
    PAUSED = "paused"


class OverlapPolicy(StrEnum):
    SKIP = "skip"
    BUFFER_ONE = "buffer_one"
    ALLOW = "allow"


class LlmProvider(StrEnum):
    INHERIT = "inherit"
    ANTHROPIC = "anthropic"
    BEDROCK = "bedrock"
    NONE = "none"


class Schedule(Strict):
    """Exactly one of cron (5 fields, evaluated in `timezone`), rate, or a one-off `at`."""

    cron: str | None = None
    # At least 1m: the scheduler ticks once a minute.
    rate: Annotated[Duration, DurationWithin(timedelta(minutes=1), ONE_YEAR)] | None = None
    at: datetime | None = None
    timezone: str = "UTC"

    @field_validator("cron")
    @classmethod
    def _cron_parses(cls, value: str | None) -> str | None:
        if value is not None and len(value) > MAX_CRON_LENGTH:
            raise ValueError(
                f"cron is longer than {MAX_CRON_LENGTH} characters: write 5 fields, e.g. '0 9 * * MON-FRI'"
            )
        if value is not None:
            CronExpression.parse(value)
        return value

    @field_validator("timezone")
    @classmethod
    def _timezone_exists(cls, value: str) -> str:
        if len(value) > MAX_TIMEZONE_LENGTH:
            raise ValueError("unknown time zone (too long): use an IANA name such as 'Europe/Berlin'")
        parse_timezone(value)
        return value

    @model_validator(mode="after")
    def _exactly_one_kind(self) -> Self:
        kinds = [name for name in ("cron", "rate", "at") if getattr(self, name) is not None]
        if len(kinds) != 1:
            raise ValueError(
                "set exactly one of 'cron', 'rate' or 'at' "
                f"(found {', '.join(kinds) or 'none'}): e.g. cron: '0 9 * * MON-FRI'"
            )
        return self

    @property
    def kind(self) -> Literal["cron", "rate", "at"]:
        if self.cron is not None:
            return "cron"
        return "rate" if self.rate is not None else "at"

    def describe(self) -> str:
        if self.cron is not None:
            return f"cron '{self.cron}' ({self.timezone})"
        if self.rate is not None:
            from cronpilot.durations import format_duration

            return f"every {format_duration(self.rate)}"
        return f"once at {self.at} ({self.timezone})"


class Guardrails(Strict):
    min_interval: Annotated[Duration, DurationWithin(timedelta(0), ONE_YEAR)] = timedelta(minutes=1)
    max_interval: Annotated[Duration, DurationWithin(timedelta(minutes=1), ONE_YEAR)] = timedelta(days=1)
    max_steps: Annotated[int, WholeNumber(1, MAX_ENDPOINTS)] = 20
    max_parallel: Annotated[int, WholeNumber(1, 40)] = 5
    max_tokens_per_run: Annotated[int, WholeNumber(0, 10_000_000)] = 20_000
    max_tokens_per_day: Annotated[int, WholeNumber(0, 1_000_000_000)] = 200_000
    max_lateness: Annotated[Duration, DurationWithin(timedelta(0), ONE_YEAR)] = timedelta(hours=1)
    jitter: Annotated[Duration, DurationWithin(timedelta(0), timedelta(days=1))] = timedelta(0)
    overlap: OverlapPolicy = OverlapPolicy.SKIP
    # With overlap `allow`, how many runs may be in flight at once; a slot beyond it is skipped (overlap).
    max_concurrent_runs: Annotated[int, WholeNumber(1, 20)] = DEFAULT_MAX_CONCURRENT_RUNS
    # The longest an AI plan or next-run proposal is reused without news before the model is asked again.
    max_decision_age: Duration = DEFAULT_MAX_DECISION_AGE
    # The longest pause the AI may put the job in; a longer one is clamped (source `clamped-pause`).
    max_pause: Duration = DEFAULT_MAX_PAUSE

    @field_validator("max_decision_age")
    @classmethod
    def _decision_age_range(cls, value: timedelta) -> timedelta:
        if not timedelta(minutes=1) <= value <= MAX_DECISION_AGE_LIMIT:
            raise ValueError(
                f"max_decision_age {format_duration(value)} is outside 1m..30d: "
                "use e.g. 24h (the default) or at most 30d"
            )
        return value

    @field_validator("max_pause")
    @classmethod
    def _pause_positive(cls, value: timedelta) -> timedelta:
        if value < timedelta(minutes=1):
            raise ValueError(
                f"max_pause {format_duration(value)} is shorter than 1m: use e.g. 7d (the default)"
            )
        return value

    @property
    def allows_concurrent_runs(self) -> bool:
        return self.overlap == OverlapPolicy.ALLOW

    @model_validator(mode="after")
    def _interval_order(self) -> Self:
        if self.min_interval > self.max_interval:
            raise ValueError(
                f"min_interval ({self.min_interval}) is greater than max_interval ({self.max_interval}): "
                "make min_interval <= max_interval"
            )
        # Compared with the default, not model_fields_set: stored job documents carry every default.
        concurrency_set = self.max_concurrent_runs != DEFAULT_MAX_CONCURRENT_RUNS
        if concurrency_set and self.overlap != OverlapPolicy.ALLOW:
            raise ValueError(
                f"max_concurrent_runs only applies to overlap 'allow' (this job has '{self.overlap.value}'): "
                "set overlap: allow, or remove max_concurrent_runs"
            )
        if self.min_interval < timedelta(minutes=1):
            raise ValueError("min_interval must be at least 1m: the scheduler ticks once a minute")
        return self


class SecretRef(Strict):
    """A header value kept in Secrets Manager or SSM Parameter Store, resolved at call time only."""

    secret: str | None = None
    parameter: str | None = None
    json_key: str | None = None

    @model_validator(mode="after")
    def _one_source(self) -> Self:
        if (self.secret is None) == (self.parameter is None):
            raise ValueError(
                "a header reference sets exactly one of 'secret' (Secrets Manager) or 'parameter' (SSM)"
            )
        return self


def _header_value_kind(value: Any) -> str | None:
    if isinstance(value, str):
        return "text"
    return "reference" if isinstance(value, dict | SecretRef) else None


# Tagged unions validate only the member that fits, so one bad value is one message, not one per member.
HeaderValue = Annotated[
    Annotated[str, Tag("text")] | Annotated[SecretRef, Tag("reference")],
    Discriminator(
        _header_value_kind,
        custom_error_type="header_value",
        custom_error_message=(
            "a header value is text, or a mapping with 'secret' or 'parameter' (a reference): "
            "quote numbers and booleans"
        ),
    ),
]


def _body_kind(value: Any) -> str | None:
    if isinstance(value, str):
        return "text"
    if isinstance(value, dict):
        return "mapping"
    return "list" if isinstance(value, list | tuple) else None


Body = Annotated[
    Annotated[str, Tag("text")]
    | Annotated[dict[str, Any], Tag("mapping")]
    | Annotated[list[Any], Tag("list")],
    Discriminator(
        _body_kind,
        custom_error_type="body",
        custom_error_message="a body is text, a mapping or a list (sent as JSON): quote it to send as text",
    ),
]


def _first_non_finite(body: Any) -> str | None:
    """The path of the first NaN or infinity in a JSON-like body (iterative: bodies may nest deep)."""
    pending: list[tuple[str, Any]] = [("", body)]
    while pending:
        path, value = pending.pop()
        if isinstance(value, float) and not math.isfinite(value):
            return path or "(the body)"
        if isinstance(value, dict):
            pending.extend((f"{path}.{key}" if path else str(key), item) for key, item in value.items())
        elif isinstance(value, list | tuple):
            pending.extend((f"{path}[{index}]", item) for index, item in enumerate(value))
    return None


class Endpoint(Strict):
    id: Annotated[str, Field(pattern=ENDPOINT_ID_PATTERN)]
    method: Literal["GET", "HEAD", "POST", "PUT", "PATCH", "DELETE", "OPTIONS"] = "GET"
    url: str
    headers: dict[str, HeaderValue] = Field(default_factory=dict)
    body: Body | None = None
    timeout: Annotated[Duration, DurationWithin(timedelta(seconds=1), timedelta(minutes=10))] = timedelta(
        seconds=10
    )
    description: str = ""
    depends_on: tuple[str, ...] = ()
    on_dependency_failure: Literal["skip", "continue"] = "skip"
    retryable: StrictBool | None = None
    # JMESPath expressions over the JSON response; a change of any value is news for the AI pilot.
    watch: tuple[str, ...] = ()
    # Step outputs, assertions and request signing (see models/workflow.py).
    extract: dict[str, ExtractSpec] = Field(default_factory=dict)
    expect: ExpectSpec | None = None
    signing: SigningSpec | None = None

    @field_validator("extract", mode="before")
    @classmethod
    def _extract_shorthand(cls, value: object) -> object:
        return normalize_extract(value)

    @field_validator("extract")
    @classmethod
    def _extract_names(cls, value: dict[str, ExtractSpec]) -> dict[str, ExtractSpec]:
        return check_extract_names(value)

    @model_validator(mode="after")
    def _references_well_placed(self) -> Self:
        _, problems = request_references(self.url, self.headers, self.body)
        if starts_with_reference(self.url) and self.secret_header_names():
            # The host comes from a response: a stored credential must never follow it there.
            problems.append(
                "headers: an endpoint whose URL starts with a reference cannot send secret headers "
                f"({', '.join(sorted(self.secret_header_names()))}): use a token an earlier step extracted, "
                "or register the host in the URL"
            )
        if problems:
            raise ValueError("; ".join(problems))
        return self

    @field_validator("method", mode="before")
    @classmethod
    def _upper(cls, value: object) -> object:
        return value.upper() if isinstance(value, str) else value

    @field_validator("url")
    @classmethod
    def _http_url(cls, value: str) -> str:
        if starts_with_reference(value):
            return value  # a base URL from an earlier step: checked when sent, by the egress policy
        parts = urlsplit(value)
        if parts.scheme not in ("http", "https"):
            raise ValueError(
                f"url scheme {parts.scheme or '(none)'!r} is not allowed: use an http:// or https:// URL"
            )
        if not parts.hostname:
            raise ValueError("url has no host: use a full URL such as https://api.example.com/path")
        if parts.username or parts.password:
            raise ValueError("url must not carry credentials: put them in a header that references a secret")
        return value

    @field_validator("headers")
    @classmethod
    def _header_names(cls, value: dict[str, HeaderValue]) -> dict[str, HeaderValue]:
        for name in value:
            if not HEADER_NAME.match(name):
                raise ValueError(
                    f"header name {name!r} is not a valid HTTP token: use letters, digits and '-'"
                )
        return value

    @field_validator("body")
    @classmethod
    def _json_body(cls, value: Any) -> Any:
        if not isinstance(value, dict | list):
            return value
        try:  # C speed for the common case; the slow walk only when something is there to find
            json.dumps(value, allow_nan=False)
            return value
        except RecursionError:
            raise ValueError("the body is nested too deep: flatten it or send it as text") from None
        except (ValueError, TypeError):  # NaN or infinity; a YAML date or time
            pass
        where = _first_non_finite(value)
        if where is not None:
            raise ValueError(
                f"{where} is NaN or infinity, which JSON cannot carry: use a finite number or quote it"
            )
        # As it is stored and sent: a YAML date in a body becomes its ISO text here, not only after a
        # round trip through the store (so a re-applied file compares equal to the stored job).
        return to_jsonable_python(value)

    @field_validator("watch")
    @classmethod
    def _watch_compiles(cls, value: tuple[str, ...]) -> tuple[str, ...]:
        if len(value) > MAX_WATCH_EXPRESSIONS:
            raise ValueError(f"at most {MAX_WATCH_EXPRESSIONS} watch expressions: keep the ones that matter")
        import jmespath
        from jmespath.exceptions import JMESPathError

        for n, expression in enumerate(value):
            try:
                jmespath.compile(expression)
            except JMESPathError as exc:
                detail = str(exc).splitlines()[0]
                raise ValueError(
                    f"watch[{n}] {expression!r} is not a JMESPath expression ({detail}): "
                    "write e.g. 'status' or 'data.items[0].version'"
                ) from None
        return value

    def secret_header_names(self) -> frozenset[str]:
        return frozenset(name.lower() for name, v in self.headers.items() if isinstance(v, SecretRef))


class LlmSettings(Strict):
    provider: LlmProvider = LlmProvider.INHERIT
    model: str | None = None
    shadow: StrictBool = False
    # `on-news`: reuse the model's standing decisions until news arrives; `every-run`: ask on every run.
    consult: Literal["on-news", "every-run"] = "on-news"


class Job(Strict):
    id: Annotated[str, Field(pattern=JOB_ID_PATTERN)]
    name: str = ""
    goal: str = Field(default="", max_length=4000)
    schedule: Schedule
    guardrails: Guardrails = Field(default_factory=Guardrails)
    # Counted by _endpoint_count, not min/max_length: pydantic would add a false "too short" line whenever
    # the only endpoint is invalid (it counts the valid ones).
    endpoints: tuple[Endpoint, ...] = Field(json_schema_extra={"minItems": 1, "maxItems": MAX_ENDPOINTS})
    status: JobStatus = JobStatus.ACTIVE
    llm: LlmSettings = Field(default_factory=LlmSettings)
    signing: SigningSpec | None = None  # signs every endpoint's requests unless the endpoint sets its own
    notify: tuple[NotifyRule, ...] = Field(default=(), max_length=MAX_RULES)

    @field_validator("endpoints", mode="before")
    @classmethod
    def _endpoint_count(cls, value: Any) -> Any:
        if isinstance(value, list | tuple) and not value:
            raise ValueError("a job needs at least one endpoint: add one under 'endpoints'")
        if isinstance(value, list | tuple) and len(value) > MAX_ENDPOINTS:
            raise ValueError(
                f"{len(value)} endpoints are more than a job may have ({MAX_ENDPOINTS}): split the job"
            )
        return value

    @field_validator("endpoints")
    @classmethod
    def _endpoint_graph(cls, endpoints: tuple[Endpoint, ...]) -> tuple[Endpoint, ...]:
        ids = [e.id for e in endpoints]
        duplicates = sorted({i for i in ids if ids.count(i) > 1})
        if duplicates:
            raise ValueError(f"duplicate endpoint ids {duplicates}: give every endpoint a unique id")
        known = set(ids)
        for endpoint in endpoints:
            for dep in endpoint.depends_on:
                if dep == endpoint.id:
                    raise ValueError(f"endpoint {endpoint.id!r} depends on itself: remove it from depends_on")
                if dep not in known:
                    raise ValueError(
                        f"endpoint {endpoint.id!r} depends_on unknown endpoint {dep!r}: "
                        f"use one of {sorted(known)}"
                    )
        from cronpilot.dag import find_cycle

        cycle = find_cycle({e.id: e.depends_on for e in endpoints})
        if cycle:
            raise ValueError(f"dependency cycle {' -> '.join(cycle)}: remove one of these depends_on entries")
        return endpoints

    @field_validator("endpoints")
    @classmethod
    def _references_resolve(cls, endpoints: tuple[Endpoint, ...]) -> tuple[Endpoint, ...]:
        problems = reference_problems(endpoints)
        if problems:
            raise ValueError("; ".join(problems))
        return endpoints

    @model_validator(mode="after")
    def _fits_max_steps(self) -> Self:
        if len(self.endpoints) > self.guardrails.max_steps:
            # The deterministic plan calls every endpoint, so the whole job must fit max_steps.
            raise ValueError(
                f"{len(self.endpoints)} endpoints exceed guardrails.max_steps ({self.guardrails.max_steps}): "
                "raise max_steps or split the job"
            )
        return self

    def endpoint(self, endpoint_id: str) -> Endpoint:
        for endpoint in self.endpoints:
            if endpoint.id == endpoint_id:
                return endpoint
        raise KeyError(endpoint_id)

    def signing_for(self, endpoint: Endpoint) -> SigningSpec | None:
        return endpoint.signing or self.signing


def ancestors(endpoints: tuple[Endpoint, ...]) -> dict[str, set[str]]:
    """Every endpoint's direct and transitive dependencies (the graph is known to be acyclic)."""
    direct = {e.id: e.depends_on for e in endpoints}
    found: dict[str, set[str]] = {}

    def visit(endpoint_id: str) -> set[str]:
        if endpoint_id not in found:
            found[endpoint_id] = set()
            for dep in direct.get(endpoint_id, ()):
                found[endpoint_id] |= {dep, *visit(dep)}
        return found[endpoint_id]

    for endpoint_id in direct:
        visit(endpoint_id)
    return found


def reference_problems(endpoints: tuple[Endpoint, ...]) -> list[str]:
    """A reference must name an endpoint this one depends on (directly or through another dependency)
    and a value that endpoint extracts: then every plan runs the producer before the consumer."""
    by_id = {e.id: e for e in endpoints}
    upstream = ancestors(endpoints)
    problems: list[str] = []
    declared = sum(len(e.extract) for e in endpoints)
    if declared > MAX_EXTRACTS_PER_JOB:
        problems.append(
            f"the endpoints extract {declared} values, at most {MAX_EXTRACTS_PER_JOB} per job: extract fewer"
        )
    for endpoint in endpoints:
        references, _ = request_references(endpoint.url, endpoint.headers, endpoint.body)
        for field, ref in references:
            where = f"endpoint {endpoint.id!r} {field}: {ref.expression}"
            producer = by_id.get(ref.endpoint_id)
            if producer is None:
                problems.append(
                    f"{where} names unknown endpoint {ref.endpoint_id!r}: use one of {sorted(by_id)} "
                    f"in {REFERENCE_FORM}"
                )
            elif producer.id == endpoint.id:
                problems.append(
                    f"{where} refers to its own endpoint: a step can use values of the steps it depends on"
                )
            elif ref.name not in producer.extract:
                offered = ", ".join(sorted(producer.extract)) or "nothing"
                problems.append(
                    f"{where}: endpoint {producer.id!r} extracts no {ref.name!r} (it extracts {offered}): "
                    f"add extract: {{{ref.name}: <JMESPath>}} to {producer.id!r}, or use a name it extracts"
                )
            elif producer.id not in upstream.get(endpoint.id, set()):
                problems.append(
                    f"{where}: endpoint {endpoint.id!r} does not depend on {producer.id!r}: add "
                    f"{producer.id!r} to its depends_on (directly or through one of its dependencies)"
                )
    return problems
