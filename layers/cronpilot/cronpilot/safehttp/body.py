"""Bounded, streamed response body reading.

httpx's own decoders inflate a whole network chunk at once: a 64 KiB chunk of a gzip bomb becomes
~64 MiB in memory before any size check can run. Here the raw bytes are read with `iter_raw` and
inflated with zlib's `max_length`, so at most `CHUNK` decoded bytes exist per step and reading stops
as soon as the cap is passed.
"""

from __future__ import annotations

import codecs
import zlib
from collections.abc import Callable
from dataclasses import dataclass, field
from typing import Protocol

import httpx

CHUNK = 64 << 10
SUPPORTED_ENCODINGS = "gzip, deflate"
_MAX_ENCODING_LAYERS = 2


class BodyTooLarge(Exception):
    pass


class UnsupportedEncoding(Exception):
    pass


class _Decoder(Protocol):
    def feed(self, data: bytes) -> None: ...

    def read(self, max_bytes: int) -> bytes:
        """Up to max_bytes of decoded output; b"" when more input is needed."""
        ...


class _Identity:
    def __init__(self) -> None:
        self._pending = b""

    def feed(self, data: bytes) -> None:
        self._pending += data

    def read(self, max_bytes: int) -> bytes:
        out, self._pending = self._pending[:max_bytes], self._pending[max_bytes:]
        return out


class _Zlib:
    """gzip (multi-member) or deflate (zlib-wrapped, or raw as some servers send it)."""

    def __init__(self, encoding: str) -> None:
        self._gzip = encoding in ("gzip", "x-gzip")
        self._raw_fallback = not self._gzip
        self._pending = b""
        self._new()

    def _new(self, wbits: int | None = None) -> None:
        self._d = zlib.decompressobj(wbits if wbits is not None else (31 if self._gzip else 15))

    def feed(self, data: bytes) -> None:
        self._pending += data

    def read(self, max_bytes: int) -> bytes:
        while True:
            if self._d.eof:
                rest = self._d.unused_data + self._pending
                if not (self._gzip and rest):
                    self._pending = b""  # trailing garbage after the stream is ignored
                    return b""
                self._pending = rest
                self._new()
            try:
                out = self._d.decompress(self._pending, max_bytes)
            except zlib.error:
                if not self._raw_fallback:
                    raise
                self._raw_fallback = False
                self._new(-15)
                continue
            if out or self._pending:
                self._raw_fallback = False
            self._pending = self._d.unconsumed_tail
            if out or not self._d.eof:
                return out


class _Chain:
    """Decodes `first` then feeds its output, in bounded pieces, to `second`."""

    def __init__(self, first: _Decoder, second: _Decoder) -> None:
        self._first = first
        self._second = second

    def feed(self, data: bytes) -> None:
        self._first.feed(data)

    def read(self, max_bytes: int) -> bytes:
        while True:
            out = self._second.read(max_bytes)
            if out:
                return out
            middle = self._first.read(CHUNK)
            if not middle:
                return b""
            self._second.feed(middle)


def make_decoder(content_encoding: str) -> _Decoder:
    # Encodings are listed in the order they were applied: decode from the last one.
    encodings = [e.strip().lower() for e in content_encoding.split(",") if e.strip()]
    encodings = [e for e in encodings if e != "identity"]
    if len(encodings) > _MAX_ENCODING_LAYERS:
        raise UnsupportedEncoding(f"{len(encodings)} content-encoding layers")
    decoder: _Decoder = _Identity()
    for index, encoding in enumerate(reversed(encodings)):
        if encoding not in ("gzip", "x-gzip", "deflate"):
            raise UnsupportedEncoding(f"content-encoding {encoding[:32]!r} is not supported")
        layer = _Zlib(encoding)
        decoder = layer if index == 0 else _Chain(decoder, layer)
    return decoder


@dataclass
class BodyReader:
    """Accumulates the decoded body: counts everything, keeps only the first `keep` bytes."""

    limit: int
    keep: int
    remaining: Callable[[], float] = lambda: 1.0  # seconds left in the send's budget
    total: int = 0
    kept: bytearray = field(default_factory=bytearray)

    def read(self, response: httpx.Response) -> None:
        """Raises BodyTooLarge past `limit` decoded bytes (or a comparable amount of raw bytes)."""
        decoder = make_decoder(response.headers.get("content-encoding", ""))
        raw_total = 0
        raw_limit = self.limit + CHUNK  # compressed data is never much bigger than its content
        for raw in response.iter_raw():
            if self.remaining() <= 0:
                # The socket reads are clamped to the deadline already; this also covers a stream
                # that keeps delivering data quickly without ever ending.
                raise httpx.ReadTimeout("total time budget exhausted")
            raw_total += len(raw)
            decoder.feed(raw)
            self._drain(decoder)
            if raw_total > raw_limit:
                raise BodyTooLarge
        self._drain(decoder)

    def _drain(self, decoder: _Decoder) -> None:
        while out := decoder.read(min(CHUNK, self.limit + 1 - self.total)):
            if len(self.kept) < self.keep:
                self.kept += out[: self.keep - len(self.kept)]
            self.total += len(out)
            if self.total > self.limit:
                raise BodyTooLarge

    @property
    def truncated(self) -> bool:
        return self.total > len(self.kept)

    def text(self) -> str:
        # A cut in the middle of a multi-byte character is dropped rather than shown as U+FFFD.
        return codecs.getincrementaldecoder("utf-8")(errors="replace").decode(
            bytes(self.kept), final=not self.truncated
        )
