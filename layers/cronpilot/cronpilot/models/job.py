"""The job: what a user registers. Validated by pydantic; every error names the field and the fix."""

from __future__ import annotations

import re
from datetime import datetime, timedelta
from enum import StrEnum
from typing import Annotated, Literal, Self
from urllib.parse import urlsplit

from pydantic import BaseModel, ConfigDict, Field, field_validator, model_validator

from cronpilot.cron import CronExpression, parse_timezone
from cronpilot.durations import Duration, format_duration
from cronpilot.models.notify import MAX_RULES, NotifyRule
from cronpilot.models.workflow import (
    MAX_EXTRACTS_PER_JOB,
    REFERENCE_FORM,
    ExpectSpec,
    ExtractSpec,
    SigningSpec,
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
# How long a standing AI decision may be reused without asking the model again, and its ceiling.
DEFAULT_MAX_DECISION_AGE = timedelta(hours=24)
MAX_DECISION_AGE_LIMIT = timedelta(days=30)
DEFAULT_MAX_PAUSE = timedelta(days=7)
MAX_WATCH_EXPRESSIONS = 10


class Strict(BaseModel):
    model_config = ConfigDict(extra="forbid", frozen=True, str_strip_whitespace=True)


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
    rate: Duration | None = None
    at: datetime | None = None
    timezone: str = "UTC"

    @field_validator("cron")
    @classmethod
    def _cron_parses(cls, value: str | None) -> str | None:
        if value is not None:
            CronExpression.parse(value)
        return value

    @field_validator("timezone")
    @classmethod
    def _timezone_exists(cls, value: str) -> str:
        parse_timezone(value)
        return value

    @field_validator("rate")
    @classmethod
    def _rate_is_sane(cls, value: timedelta | None) -> timedelta | None:
        if value is not None and value < timedelta(minutes=1):
            raise ValueError("rate must be at least 1m: the scheduler ticks once a minute")
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
    min_interval: Duration = timedelta(minutes=1)
    max_interval: Duration = timedelta(days=1)
    max_steps: int = Field(default=20, ge=1, le=100)
    max_parallel: int = Field(default=5, ge=1, le=40)
    max_tokens_per_run: int = Field(default=20_000, ge=0)
    max_tokens_per_day: int = Field(default=200_000, ge=0)
    max_lateness: Duration = timedelta(hours=1)
    jitter: Duration = timedelta(0)
    overlap: OverlapPolicy = OverlapPolicy.SKIP
    # With overlap `allow`, how many runs may be in flight at once; a slot beyond it is skipped (overlap).
    max_concurrent_runs: int = Field(default=DEFAULT_MAX_CONCURRENT_RUNS, ge=1, le=20)
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


HeaderValue = str | SecretRef


class Endpoint(Strict):
    id: Annotated[str, Field(pattern=ENDPOINT_ID_PATTERN)]
    method: Literal["GET", "HEAD", "POST", "PUT", "PATCH", "DELETE", "OPTIONS"] = "GET"
    url: str
    headers: dict[str, HeaderValue] = Field(default_factory=dict)
    body: str | dict | list | None = None
    timeout: Duration = timedelta(seconds=10)
    description: str = ""
    depends_on: tuple[str, ...] = ()
    on_dependency_failure: Literal["skip", "continue"] = "skip"
    retryable: bool | None = None
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

    @field_validator("timeout")
    @classmethod
    def _timeout_range(cls, value: timedelta) -> timedelta:
        if not timedelta(seconds=1) <= value <= timedelta(minutes=10):
            raise ValueError("timeout must be between 1s and 10m")
        return value

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
    shadow: bool = False
    # `on-news`: reuse the model's standing decisions until news arrives; `every-run`: ask on every run.
    consult: Literal["on-news", "every-run"] = "on-news"


class Job(Strict):
    id: Annotated[str, Field(pattern=JOB_ID_PATTERN)]
    name: str = ""
    goal: str = Field(default="", max_length=4000)
    schedule: Schedule
    guardrails: Guardrails = Field(default_factory=Guardrails)
    endpoints: tuple[Endpoint, ...] = Field(min_length=1, max_length=100)
    status: JobStatus = JobStatus.ACTIVE
    llm: LlmSettings = Field(default_factory=LlmSettings)
    signing: SigningSpec | None = None  # signs every endpoint's requests unless the endpoint sets its own
    notify: tuple[NotifyRule, ...] = Field(default=(), max_length=MAX_RULES)

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
