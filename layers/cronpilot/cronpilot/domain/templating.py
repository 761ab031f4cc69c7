"""Step outputs: values extracted from a JSON response with JMESPath, and `{{ steps.<endpoint>.<name> }}`
references filled in a later step's request. Substitution only: a value is URL-encoded in a URL,
JSON-encoded in a body, and checked as plain header text; nothing in a value is ever evaluated."""

from __future__ import annotations

import json
import re
from collections.abc import Callable, Mapping
from dataclasses import dataclass, field
from typing import Any, NamedTuple
from urllib.parse import quote, urlsplit

from cronpilot.models.job import Endpoint, SecretRef
from cronpilot.models.workflow import (
    MAX_VALUE_BYTES,
    ExtractSpec,
    Reference,
    find_references,
    search,
)

_HEADER_TEXT = re.compile(r"^[\x20-\x7e\t]*$")
# Text that JSON writes unchanged (printable ASCII other than '"' and '\\').
_PLAIN_JSON_TEXT = re.compile(r"^[\x20\x21\x23-\x5b\x5d-\x7e]*$")
NOT_JSON = "the response is not JSON"


class MissingValue(Exception):
    """A reference that cannot be filled; the message names the expression and why."""


Lookup = Callable[[Reference], Any]


@dataclass
class ParsedBody:
    """A response body parsed once for both extraction and assertions."""

    text: str
    truncated: bool
    _document: Any = None
    _error: str | None = None
    _parsed: bool = False

    def document(self) -> tuple[Any, str | None]:
        """(the JSON document, None) or (None, why there is none)."""
        if not self._parsed:
            self._parsed = True
            try:
                self._document = json.loads(self.text)
            except ValueError:
                self._error = "the response is larger than the parsed limit" if self.truncated else NOT_JSON
        return self._document, self._error


@dataclass
class Extracted:
    """The values a response yielded for later steps, and why any are missing."""

    values: dict[str, Any] = field(default_factory=dict)
    problems: dict[str, str] = field(default_factory=dict)  # name -> why it has no value


def extract_values(extract: Mapping[str, ExtractSpec], body: ParsedBody) -> Extracted:
    """Evaluate each JMESPath on the response. A value that is absent (null) or larger than
    MAX_VALUE_BYTES is recorded as a problem, so the step that needs it fails with the reason."""
    out = Extracted()
    if not extract:
        return out
    document, error = body.document()
    for name, spec in extract.items():
        if error is not None:
            out.problems[name] = error
            continue
        value = search(spec.path, document)
        if value is None:
            out.problems[name] = f"{spec.path!r} matched nothing in the response"
            continue
        size = _json_size(value)
        if size > MAX_VALUE_BYTES:
            out.problems[name] = f"the value is {size} bytes, more than the {MAX_VALUE_BYTES}-byte limit"
            continue
        out.values[name] = value
    return out


def _json_size(value: Any) -> int:
    if isinstance(value, bool | int | float) or value is None:
        return 32  # never near the limit; spares a json.dumps per value on every step
    if isinstance(value, str) and len(value) * 6 + 2 <= MAX_VALUE_BYTES:
        return len(value) * 6 + 2  # the worst case of JSON escaping is still inside the limit
    return len(json.dumps(value, separators=(",", ":")).encode())


def hidden_texts(extract: Mapping[str, ExtractSpec], values: Mapping[str, Any]) -> list[str]:
    """The texts of values not marked `show`, longest first: masked wherever the body is kept."""
    texts = set()
    for name, value in values.items():
        spec = extract.get(name)
        if spec is None or spec.show:
            continue
        for leaf in _leaves(value):
            if len(leaf) >= 4:  # shorter ones (true, 1, ids like "ok") would mask half the body
                texts.add(leaf)
    return sorted(texts, key=len, reverse=True)


def _leaves(value: Any) -> list[str]:
    if isinstance(value, dict):
        return [text for item in value.values() for text in _leaves(item)]
    if isinstance(value, list):
        return [text for item in value for text in _leaves(item)]
    if isinstance(value, str):
        escaped = json.dumps(value)[1:-1] if not _PLAIN_JSON_TEXT.match(value) else value
        return [value, escaped] if escaped != value else [value]  # as sent, and as escaped in JSON
    return [json.dumps(value)]


def mask(text: str, secrets: list[str]) -> str:
    for secret in secrets:
        text = text.replace(secret, "[hidden]")
    return text


# ------------------------------------------------------------------ rendering


class RenderedRequest(NamedTuple):
    """An endpoint's URL, headers and body with its references filled in."""

    url: str
    headers: dict[str, str | SecretRef]
    body: str | dict | list | None


def referenced_endpoints(endpoint: Endpoint) -> list[str]:
    """The producers whose results this endpoint's request needs, in first-use order."""
    ids: list[str] = []
    for text in _template_texts(endpoint):
        for ref in find_references(text):
            if ref.endpoint_id not in ids:
                ids.append(ref.endpoint_id)
    return ids


def _template_texts(endpoint: Endpoint) -> list[str]:
    texts = [endpoint.url, *(v for v in endpoint.headers.values() if isinstance(v, str))]
    if isinstance(endpoint.body, str):
        texts.append(endpoint.body)
    elif endpoint.body is not None and "{{" in json.dumps(endpoint.body):
        texts.append(json.dumps(endpoint.body))
    return texts


def render(endpoint: Endpoint, lookup: Lookup) -> RenderedRequest:
    """The endpoint's request with every reference filled; MissingValue names the first that cannot be."""
    return RenderedRequest(
        url=_render_url(endpoint.url, lookup),
        headers={
            name: value if isinstance(value, SecretRef) else _render_header(name, value, lookup)
            for name, value in endpoint.headers.items()
        },
        body=_render_body(endpoint.body, lookup),
    )


def _text_of(ref: Reference, value: Any, where: str) -> str:
    if isinstance(value, bool):
        return "true" if value else "false"
    if isinstance(value, int | float):
        return json.dumps(value)
    if isinstance(value, str):
        return value
    kind = "an object" if isinstance(value, dict) else "a list"
    raise MissingValue(
        f"{ref.expression} is {kind}; {where} takes text, a number or a boolean: "
        "extract a single field instead"
    )


def _substitute(text: str, lookup: Lookup, encode: Callable[[Reference, Any], str]) -> str:
    references = find_references(text)
    if not references:
        return text
    parts: list[str] = []
    position = 0
    for ref in references:
        parts.append(text[position : ref.start])
        parts.append(encode(ref, lookup(ref)))
        position = ref.end
    parts.append(text[position:])
    return "".join(parts)


def _render_url(url: str, lookup: Lookup) -> str:
    references = find_references(url)
    if not references:
        return url
    base = ""
    rest = url
    if references[0].start == 0:  # a base URL: taken whole, then checked like a registered URL
        first = references[0]
        base = _base_url(first, lookup(first))
        rest = url[first.end :]

    def encode(ref: Reference, value: Any) -> str:
        text = _text_of(ref, value, "a URL")
        if text in (".", ".."):
            raise MissingValue(f"{ref.expression} is {text!r}, which would change the URL's path")
        return quote(text, safe="")  # '/', '?', '&', '#' and '%' included: a value stays one piece

    return base + _substitute(rest, lookup, encode)


def _base_url(ref: Reference, value: Any) -> str:
    text = _text_of(ref, value, "the start of a URL").rstrip("/")
    parts = urlsplit(text)
    if parts.scheme not in ("http", "https") or not parts.hostname:
        raise MissingValue(f"{ref.expression} is not an http(s) URL with a host, so it cannot start the URL")
    if parts.username or parts.password or parts.query or parts.fragment:
        raise MissingValue(
            f"{ref.expression} carries credentials, a query or a fragment, so it cannot start the URL"
        )
    return text


def _render_header(name: str, value: str, lookup: Lookup) -> str:
    def encode(ref: Reference, found: Any) -> str:
        text = _text_of(ref, found, f"header {name}")
        if not _HEADER_TEXT.match(text):
            raise MissingValue(
                f"{ref.expression} contains control or non-ASCII characters, so it cannot go in header {name}"
            )
        return text

    return _substitute(value, lookup, encode)


def _json_text(ref: Reference, value: Any) -> str:
    return json.dumps(value)


def _render_body(body: str | dict | list | None, lookup: Lookup) -> str | dict | list | None:
    if body is None:
        return None
    if isinstance(body, str):
        return _substitute(body, lookup, _json_text)  # a string value arrives quoted: '"abc"'
    return _render_json(body, lookup)


def _render_json(node: Any, lookup: Lookup) -> Any:
    if isinstance(node, dict):
        return {key: _render_json(value, lookup) for key, value in node.items()}
    if isinstance(node, list):
        return [_render_json(item, lookup) for item in node]
    if not isinstance(node, str) or "{{" not in node:
        return node
    references = find_references(node)
    if len(references) == 1 and references[0].start == 0 and references[0].end == len(node):
        return lookup(references[0])  # the whole string: the value itself, of any JSON type
    return _substitute(node, lookup, _text_in_json_string)


def _text_in_json_string(ref: Reference, value: Any) -> str:
    return value if isinstance(value, str) else json.dumps(value)
