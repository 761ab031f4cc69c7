"""Stored documents are packed (zlib) only when that makes them smaller, deterministically, and read
back whatever format wrote them."""

from __future__ import annotations

import zlib

from boto3.dynamodb.types import Binary
from cronpilot.dal.items import pack_doc, unpack_doc
from hypothesis import given
from hypothesis import strategies as st


@given(st.text())
def test_a_packed_document_reads_back_and_is_never_larger_than_its_json(text: str) -> None:
    stored = pack_doc(text)
    size = len(stored) if isinstance(stored, bytes) else len(stored.encode())
    assert size <= len(text.encode())
    assert unpack_doc(stored) == text
    assert unpack_doc(Binary(stored) if isinstance(stored, bytes) else stored) == text


@given(st.text(min_size=200))
def test_the_same_document_packs_to_the_same_bytes(text: str) -> None:
    assert pack_doc(text) == pack_doc(text)


def test_a_json_document_of_the_size_of_a_job_packs_to_a_third() -> None:
    text = '{"endpoints":[' + ",".join(f'{{"id":"e{n}","url":"https://example.com/{n}"}}' for n in range(30))
    stored = pack_doc(text + "]}")
    assert isinstance(stored, bytes)
    assert len(stored) * 3 < len(text)
    assert zlib.decompress(stored).decode() == text + "]}"
