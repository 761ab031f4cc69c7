"""What an endpoint may declare beyond its request: values it extracts for later steps (`extract:`),
what its response must satisfy (`expect:`) and the key that signs its requests (`signing:`), plus the
syntax of `{{ steps.<endpoint id>.<name> }}` references. Pure: the job model validates with it, the
execution domain renders with it."""

# No `from __future__ import annotations` in modules that define pydantic models: pydantic would
# compile and evaluate every annotation string while building them, on every Lambda cold start.

import re
from collections.abc import Iterator, Mapping
from datetime import timedelta
from functools import lru_cache
from typing import Annotated, Any, NamedTuple, Self

import jmespath
from jmespath.exceptions import JMESPathError
from jmespath.parser import ParsedResult
from jmespath.visitor import TreeInterpreter
from pydantic import (
    BaseModel,
    ConfigDict,
    Field,
    StrictBool,
    field_validator,
    model_validator,
)

from cronpilot.durations import DurationText, format_duration, parse_duration

# Bounds on extracted values: each value's JSON text, and how many a job may declare, so one run
# holds at most MAX_EXTRACTS_PER_JOB * MAX_VALUE_BYTES (128 KiB) of them.
MAX_VALUE_BYTES = 4096
MAX_EXTRACTS_PER_JOB = 32
# Responses parsed for `extract` or JSON assertions are read up to this size (the stored body stays 8 KiB).
MAX_PARSED_BODY_BYTES = 256 << 10

EXTRACT_NAME = re.compile(r"^[A-Za-z_][A-Za-z0-9_]{0,63}$")
# Anything that opens like a reference is one, and must be well formed; other `{{ }}` text is literal.
_REFERENCE = re.compile(r"\{\{\s*(steps?\b[^{}]*?)\s*\}\}")
_WELL_FORMED = re.compile(r"^steps\.([a-z0-9][a-z0-9_-]{0,62})\.([A-Za-z_][A-Za-z0-9_]{0,63})$")
REFERENCE_FORM = "{{ steps.<endpoint id>.<name> }}"


class TemplateSyntaxError(ValueError):
    pass


class Reference(NamedTuple):
    """One `{{ steps.<endpoint>.<name> }}` reference and where it sits in its text."""

    endpoint_id: str
    name: str
    start: int  # where `{{` begins in its text
    end: int

    @property
    def expression(self) -> str:
        return f"{{{{ steps.{self.endpoint_id}.{self.name} }}}}"


def find_references(text: str) -> tuple[Reference, ...]:
    """Every reference in `text`, in order; TemplateSyntaxError for one that is not exactly
    `{{ steps.<endpoint id>.<name> }}` (templates substitute values, they never evaluate anything)."""
    if "{{" not in text:  # the common case, kept cheap for every step that uses no templates
        return ()
    return _parse_references(text)


@lru_cache(maxsize=4096)  # the texts are a job's own URL, headers and body: parsed once per container
def _parse_references(text: str) -> tuple[Reference, ...]:
    found = []
    for match in _REFERENCE.finditer(text):
        parsed = _WELL_FORMED.match(match.group(1))
        if parsed is None:
            raise TemplateSyntaxError(
                f"{match.group(0)!r} is not a reference: write {REFERENCE_FORM} "
                "(substitution only, no expressions or filters)"
            )
        found.append(Reference(parsed.group(1), parsed.group(2), match.start(), match.end()))
    return tuple(found)


@lru_cache(maxsize=1024)
def compile_jmespath(expression: str) -> ParsedResult:
    return jmespath.compile(expression)


_INTERPRETER = TreeInterpreter()  # stateless between searches: one for every expression


def search(expression: str, document: Any) -> Any:
    """The JMESPath `expression` evaluated on `document` (compiled once per container)."""
    return _INTERPRETER.visit(compile_jmespath(expression).parsed, document)


def _check_jmespath(expression: str) -> str:
    try:
        compile_jmespath(expression)
    except JMESPathError as exc:
        first_line = str(exc).splitlines()[0] if str(exc) else type(exc).__name__
        raise ValueError(
            f"{expression!r} is not a valid JMESPath expression ({first_line}): "
            "fix it, e.g. 'data.token' or 'items[0].id'"
        ) from None
    return expression


class Strict(BaseModel):
    """The base of every model a job file holds (job, notify and workflow): one class, built once.
    Validators are built when a model is first used (defer_build), so a model that is only ever a
    field of Job is built once, inside Job's, and a function pays for what it validates."""

    model_config = ConfigDict(extra="forbid", frozen=True, str_strip_whitespace=True, defer_build=True)


class ExtractSpec(Strict):
    """`name: <JMESPath>` or `name: {path: <JMESPath>, show: true}`. Hidden values (the default)
    never reach the AI, logs or state payloads and are masked in the stored response body."""

    path: str = Field(min_length=1)
    show: StrictBool = False

    @field_validator("path")
    @classmethod
    def _compiles(cls, value: str) -> str:
        return _check_jmespath(value)


def normalize_extract(value: Any) -> Any:
    """`name: <JMESPath>` is short for `name: {path: <JMESPath>}`."""
    if isinstance(value, dict):
        return {name: {"path": spec} if isinstance(spec, str) else spec for name, spec in value.items()}
    return value


def check_extract_names(value: dict[str, ExtractSpec]) -> dict[str, ExtractSpec]:
    for name in value:
        if not EXTRACT_NAME.match(name):
            raise ValueError(
                f"extract name {name!r} is not allowed: use letters, digits and '_' "
                "(starting with a letter or '_', at most 64 characters)"
            )
    if len(value) > MAX_EXTRACTS_PER_JOB:
        raise ValueError(f"{len(value)} extracted values, at most {MAX_EXTRACTS_PER_JOB}: extract fewer")
    return value


_MILLISECONDS = re.compile(r"^\s*(\d+)\s*ms\s*$")
_STATUS_RANGE = re.compile(r"^([1-5])(?:xx|XX)$|^([1-5]\d\d)\s*-\s*([1-5]\d\d)$|^([1-5]\d\d)$")


class StatusRange(NamedTuple):
    """An accepted status code or range from `expect.status`."""

    low: int
    high: int
    text: str

    def accepts(self, status: int) -> bool:
        return self.low <= status <= self.high


def parse_status(item: int | str) -> StatusRange:
    """200, "200", "2xx" or "200-299"."""
    text = str(item).strip()
    match = _STATUS_RANGE.match(text)
    if match is None or isinstance(item, bool):
        raise ValueError(f"status {item!r} is not a status code or range: use e.g. 200, '2xx' or '200-299'")
    if match.group(1):
        low = int(match.group(1)) * 100
        return StatusRange(low, low + 99, text)
    if match.group(2):
        low, high = int(match.group(2)), int(match.group(3))
        if low > high:
            raise ValueError(f"status range {text!r} is backwards: write the lower code first")
        return StatusRange(low, high, text)
    code = int(match.group(4))
    return StatusRange(code, code, text)


def parse_latency(value: Any) -> timedelta:
    """Latency limits are often below a second: '500ms' as well as the usual duration forms."""
    if isinstance(value, str) and (match := _MILLISECONDS.match(value)):
        return timedelta(milliseconds=int(match.group(1)))
    return parse_duration(value)


def format_latency(value: timedelta) -> str:
    milliseconds = round(value.total_seconds() * 1000)
    return format_duration(value) if milliseconds % 1000 == 0 else f"{milliseconds}ms"


Latency = Annotated[timedelta, DurationText(parse_latency, format_latency)]


class ExpectSpec(Strict):
    """What a response must satisfy for its step to succeed. A failing assertion fails the step with
    error kind `assertion`; it is re-sent only when `retry_on_failure` says so."""

    status: tuple[int | str, ...] | None = None  # accepted codes or ranges; default: any 2xx
    json_: dict[str, Any] = Field(default_factory=dict, alias="json")  # JMESPath -> expected value
    contains: str | None = Field(default=None, min_length=1)
    max_latency: Latency | None = None
    retry_on_failure: StrictBool = False

    model_config = ConfigDict(extra="forbid", frozen=True, populate_by_name=True, serialize_by_alias=True)

    @field_validator("status", mode="before")
    @classmethod
    def _one_or_many(cls, value: Any) -> Any:
        return [value] if isinstance(value, int | str) else value

    @field_validator("status")
    @classmethod
    def _statuses_parse(cls, value: tuple[int | str, ...] | None) -> tuple[int | str, ...] | None:
        if value is not None:
            if not value:
                raise ValueError("status is an empty list: list the accepted codes, e.g. [200, 204]")
            for item in value:
                parse_status(item)
        return value

    @field_validator("json_")
    @classmethod
    def _paths_compile(cls, value: dict[str, Any]) -> dict[str, Any]:
        for expression in value:
            _check_jmespath(expression)
        return value

    @field_validator("max_latency")
    @classmethod
    def _latency_positive(cls, value: timedelta | None) -> timedelta | None:
        if value is not None and value <= timedelta(0):
            raise ValueError("max_latency must be positive, e.g. '2s'")
        return value

    @model_validator(mode="after")
    def _says_something(self) -> Self:
        if self.status is None and not self.json_ and self.contains is None and self.max_latency is None:
            raise ValueError("expect is empty: set status, json, contains or max_latency (or remove it)")
        return self

    def status_ranges(self) -> tuple[StatusRange, ...] | None:
        return None if self.status is None else _status_ranges(self.status)

    @property
    def reads_json(self) -> bool:
        return bool(self.json_)


@lru_cache(maxsize=256)
def _status_ranges(items: tuple[int | str, ...]) -> tuple[StatusRange, ...]:
    return tuple(parse_status(item) for item in items)


class SigningSpec(Strict):
    """`signing: {secret: NAME}`: a Secrets Manager secret holding a `whsec_` key, or a JSON object
    {"current": "whsec_...", "next": "whsec_..."} while a key is rotated (both signatures are sent)."""

    secret: str = Field(min_length=1, max_length=2048)


def _walk_strings(value: Any, path: str) -> Iterator[tuple[str, str, bool]]:
    """(field path, text, is a mapping key) for every string in a JSON body."""
    if isinstance(value, str):
        yield path, value, False
    elif isinstance(value, dict):
        for key, item in value.items():
            yield f"{path}.{key}", str(key), True
            yield from _walk_strings(item, f"{path}.{key}")
    elif isinstance(value, list):
        for index, item in enumerate(value):
            yield from _walk_strings(item, f"{path}[{index}]")


def starts_with_reference(url: str) -> bool:
    return url.lstrip().startswith("{{")


def url_reference_problem(url: str) -> str | None:
    """References may fill the path and query, or start the URL (a base URL a step returned, e.g. an
    OAuth `instance_url`); the scheme and host the user typed are never templated."""
    references = find_references(url)
    if not references:
        return None
    if references[0].start == 0:
        rest = url[references[0].end :]
        if rest and rest[0] not in "/?":
            return (
                f"url: after {references[0].expression} the URL must go on with '/' or '?': "
                "a reference that starts the URL supplies its scheme and host"
            )
        return None
    authority_end = url.find("/", url.find("//") + 2) if "//" in url else -1
    prefix = url if authority_end < 0 else url[:authority_end]
    for query_or_fragment in "?#":
        if query_or_fragment in prefix:
            prefix = prefix[: prefix.index(query_or_fragment)]
    if any(ref.start < len(prefix) for ref in references):
        return (
            "url: a reference may fill the path or query, not the scheme, host or port "
            "(or start the whole URL: '{{ steps.<endpoint>.<name> }}/path')"
        )
    return None


def request_references(
    url: str, headers: Mapping[str, Any], body: Any
) -> tuple[list[tuple[str, Reference]], list[str]]:
    """((field, reference) pairs, problems) for one endpoint's request. Secret header references are
    not strings and cannot hold templates; mapping keys in a JSON body cannot either."""
    found: list[tuple[str, Reference]] = []
    problems: list[str] = []

    def scan(field: str, text: str) -> None:
        try:
            found.extend((field, ref) for ref in find_references(text))
        except TemplateSyntaxError as exc:
            problems.append(f"{field}: {exc}")

    scan("url", url)
    if not problems and (problem := url_reference_problem(url)):
        problems.append(problem)
    for name, value in headers.items():
        if isinstance(value, str):
            scan(f"headers.{name}", value)
    if isinstance(body, str):
        scan("body", body)
    elif body is not None:
        for field, text, is_key in _walk_strings(body, "body"):
            if is_key and "{{" in text:
                problems.append(f"{field}: a JSON key cannot hold a reference; put it in the value")
            elif not is_key:
                scan(field, text)
    return found, problems


__all__ = [
    "MAX_EXTRACTS_PER_JOB",
    "MAX_PARSED_BODY_BYTES",
    "MAX_VALUE_BYTES",
    "ExpectSpec",
    "ExtractSpec",
    "Reference",
    "SigningSpec",
    "StatusRange",
    "Strict",
    "TemplateSyntaxError",
    "check_extract_names",
    "compile_jmespath",
    "find_references",
    "normalize_extract",
    "parse_status",
    "request_references",
    "search",
    "starts_with_reference",
]
