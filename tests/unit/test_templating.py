"""Extraction with JMESPath and substitution of `{{ steps.<endpoint>.<name> }}`: values are URL-encoded
in URLs, JSON-encoded in bodies, plain text in headers, bounded in size, and never evaluated."""

from __future__ import annotations

import json
from typing import Any

import pytest
from cronpilot.domain.templating import (
    MissingValue,
    ParsedBody,
    extract_values,
    hidden_texts,
    mask,
    referenced_endpoints,
    render,
)
from cronpilot.models.job import Endpoint
from cronpilot.models.workflow import MAX_VALUE_BYTES, ExtractSpec, Reference


def lookup_from(values: dict[tuple[str, str], Any]):
    def lookup(ref: Reference) -> Any:
        if (ref.endpoint_id, ref.name) not in values:
            raise MissingValue(f"{ref.expression} has no value")
        return values[(ref.endpoint_id, ref.name)]

    return lookup


def make(**fields: Any) -> Endpoint:
    return Endpoint.model_validate({"id": "use", "url": "https://api.example.com/x", **fields})


def specs(**paths: str) -> dict[str, ExtractSpec]:
    return {name: ExtractSpec(path=path) for name, path in paths.items()}


# ------------------------------------------------------------------ extraction


def test_extracts_values_of_any_json_type():
    body = ParsedBody(json.dumps({"auth": {"token": "t-1"}, "page": {"next": 7}, "ids": [1, 2]}), False)
    out = extract_values(specs(token="auth.token", cursor="page.next", ids="ids"), body)
    assert out.values == {"token": "t-1", "cursor": 7, "ids": [1, 2]}
    assert out.problems == {}


def test_a_path_that_matches_nothing_is_a_problem_not_a_value():
    out = extract_values(specs(cursor="page.next"), ParsedBody('{"page": {}}', False))
    assert out.values == {}
    assert out.problems == {"cursor": "'page.next' matched nothing in the response"}


def test_a_response_that_is_not_json_gives_no_values():
    out = extract_values(specs(token="token"), ParsedBody("<html>", False))
    assert out.problems == {"token": "the response is not JSON"}
    truncated = extract_values(specs(token="token"), ParsedBody('{"token": "abc', True))
    assert truncated.problems == {"token": "the response is larger than the parsed limit"}


def test_a_value_over_the_size_limit_is_refused():
    big = "x" * MAX_VALUE_BYTES
    out = extract_values(specs(blob="blob"), ParsedBody(json.dumps({"blob": big}), False))
    assert "blob" not in out.values
    assert f"more than the {MAX_VALUE_BYTES}-byte limit" in out.problems["blob"]


def test_hidden_values_are_masked_in_the_kept_body():
    extract = {"token": ExtractSpec(path="token"), "cursor": ExtractSpec(path="cursor", show=True)}
    body = '{"token": "s3cr3t-value", "cursor": "page-2"}'
    secrets = hidden_texts(extract, {"token": "s3cr3t-value", "cursor": "page-2"})
    assert mask(body, secrets) == '{"token": "[hidden]", "cursor": "page-2"}'


# ------------------------------------------------------------------ rendering


def test_values_in_the_path_and_query_are_url_encoded_as_one_piece():
    endpoint = make(url="https://api.example.com/items/{{ steps.list.id }}?cursor={{steps.list.cursor}}&n=1")
    rendered = render(endpoint, lookup_from({("list", "id"): "a/../b?c#d", ("list", "cursor"): "x&y=z %"}))
    assert rendered.url == "https://api.example.com/items/a%2F..%2Fb%3Fc%23d?cursor=x%26y%3Dz%20%25&n=1"


def test_a_value_cannot_move_the_request_to_another_host():
    endpoint = make(url="https://api.example.com/{{ steps.a.v }}")
    rendered = render(endpoint, lookup_from({("a", "v"): "@169.254.169.254/latest"}))
    assert rendered.url == "https://api.example.com/%40169.254.169.254%2Flatest"


@pytest.mark.parametrize("value", [".", ".."])
def test_dot_segments_are_refused(value):
    endpoint = make(url="https://api.example.com/items/{{ steps.a.v }}/x")
    with pytest.raises(MissingValue, match=r"is '\.+', which would change the URL's path"):
        render(endpoint, lookup_from({("a", "v"): value}))


def test_numbers_and_booleans_become_their_json_text():
    endpoint = make(url="https://api.example.com/x?n={{ steps.a.n }}&f={{ steps.a.f }}&p={{ steps.a.p }}")
    rendered = render(endpoint, lookup_from({("a", "n"): 3, ("a", "f"): False, ("a", "p"): 1.5}))
    assert rendered.url.endswith("?n=3&f=false&p=1.5")


def test_an_object_cannot_go_in_a_url():
    endpoint = make(url="https://api.example.com/x?q={{ steps.a.obj }}")
    with pytest.raises(MissingValue, match=r"is an object; a URL takes text, a number or a boolean"):
        render(endpoint, lookup_from({("a", "obj"): {"k": 1}}))


def test_a_base_url_value_starts_the_url_and_the_rest_is_encoded():
    endpoint = make(url="{{ steps.login.base }}/v1/items?owner={{ steps.login.user }}")
    values = {("login", "base"): "https://eu.api.example.com/", ("login", "user"): "a b"}
    rendered = render(endpoint, lookup_from(values))
    assert rendered.url == "https://eu.api.example.com/v1/items?owner=a%20b"


@pytest.mark.parametrize(
    "base",
    ["ftp://files.example.com", "https://user:pw@api.example.com", "not a url", "https://x.example?q=1"],
)
def test_a_base_url_value_must_be_a_plain_http_url(base):
    endpoint = make(url="{{ steps.login.base }}/v1")
    with pytest.raises(MissingValue, match=r"\{\{ steps.login.base \}\}"):
        render(endpoint, lookup_from({("login", "base"): base}))


def test_header_values_are_text_and_may_not_smuggle_lines():
    endpoint = make(headers={"Authorization": "Bearer {{ steps.login.token }}", "X-Secret": {"secret": "s"}})
    rendered = render(endpoint, lookup_from({("login", "token"): "abc.def"}))
    assert rendered.headers["Authorization"] == "Bearer abc.def"
    assert rendered.headers["X-Secret"] == endpoint.headers["X-Secret"]
    with pytest.raises(MissingValue, match="contains control or non-ASCII characters"):
        render(endpoint, lookup_from({("login", "token"): "abc\r\nX-Evil: 1"}))


def test_a_whole_string_in_a_json_body_takes_the_value_with_its_type():
    endpoint = make(
        method="POST",
        body={"ids": "{{ steps.a.ids }}", "n": "{{ steps.a.n }}", "note": "at {{ steps.a.c }}!", "keep": 1},
    )
    rendered = render(endpoint, lookup_from({("a", "ids"): [1, 2], ("a", "n"): 5, ("a", "c"): 'q"uote'}))
    assert rendered.body == {"ids": [1, 2], "n": 5, "note": 'at q"uote!', "keep": 1}


def test_a_string_body_gets_json_encoded_values():
    endpoint = make(method="POST", body='{"token": {{ steps.a.t }}, "n": {{ steps.a.n }}}')
    rendered = render(endpoint, lookup_from({("a", "t"): 'x"}, "admin": true, "y": "', ("a", "n"): 2}))
    assert isinstance(rendered.body, str)
    assert json.loads(rendered.body) == {"token": 'x"}, "admin": true, "y": "', "n": 2}


def test_a_missing_value_names_the_expression():
    endpoint = make(url="https://api.example.com/x?c={{ steps.list.cursor }}")
    with pytest.raises(MissingValue, match=r"\{\{ steps.list.cursor \}\} has no value"):
        render(endpoint, lookup_from({}))


def test_referenced_endpoints_in_first_use_order():
    endpoint = make(
        url="https://api.example.com/{{ steps.b.x }}",
        headers={"A": "{{ steps.a.y }}"},
        method="POST",
        body={"z": "{{ steps.b.z }}", "c": ["{{ steps.c.w }}"]},
    )
    assert referenced_endpoints(endpoint) == ["b", "a", "c"]
    assert referenced_endpoints(make()) == []
