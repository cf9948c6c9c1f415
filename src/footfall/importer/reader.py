"""Reading log files: plain, gzip or bzip2 (by their magic bytes), or standard input, in
blocks of whole lines.

Lines are decoded a block at a time (one UTF-8 decode per megabyte, not per line); a block
with bad bytes is decoded line by line so that only the bad lines are lost, as None.
"""

from __future__ import annotations

import bz2
import gzip
import sys
from collections.abc import Iterator
from pathlib import Path
from typing import IO, NamedTuple

BLOCK_BYTES = 1 << 20


class Block(NamedTuple):
    first_line: int  # the number (from 1) of the block's first line
    lines: list[str | None]  # None: not valid UTF-8
    position: int  # bytes of the file (compressed, as stored) read so far
    text: str | None  # the block's lines joined by "\n", when all are valid UTF-8 (for bulk parsing)


class LogFile:
    """One input: a path, or "-" for standard input."""

    def __init__(self, name: str) -> None:
        self.name = name
        self.size: int | None = None
        if name == "-":
            self._raw: IO[bytes] = sys.stdin.buffer
        else:
            path = Path(name)
            self._raw = path.open("rb")
            self.size = path.stat().st_size
        head = self._raw.peek(3)[:3] if hasattr(self._raw, "peek") else b""
        self._stream: IO[bytes]
        if head[:2] == b"\x1f\x8b":
            self._stream = gzip.GzipFile(fileobj=self._raw)  # type: ignore[assignment]
        elif head == b"BZh":
            self._stream = bz2.BZ2File(self._raw)
        else:
            self._stream = self._raw
        self._line = 1
        self._first: tuple[bytes, int] | None = None
        self._chunks = self._read()

    def position(self) -> int:
        try:
            return self._raw.tell()
        except OSError:  # a pipe
            return 0

    def head(self, lines: int) -> list[str]:
        """The first lines, for format detection; `blocks` and `chunks` still yield them."""
        if self._first is None:
            self._first = next(self._chunks, None)
        if self._first is None:
            return []
        return [line for line in decode(self._first[0])[0] if line][:lines]

    def chunks(self) -> Iterator[tuple[bytes, int]]:
        """Whole lines, about BLOCK_BYTES at a time, undecoded, with the position after them."""
        if self._first is not None:
            first, self._first = self._first, None
            yield first
        yield from self._chunks

    def blocks(self) -> Iterator[Block]:
        for data, position in self.chunks():
            lines, text = decode(data)
            yield Block(self._line, lines, position, text)
            self._line += len(lines)

    def _read(self) -> Iterator[tuple[bytes, int]]:
        carry = b""
        while True:
            data = self._stream.read(BLOCK_BYTES)
            if not data:
                break
            data = carry + data
            cut = data.rfind(b"\n")
            if cut < 0:
                carry = data
                continue
            carry = data[cut + 1 :]
            yield data[:cut], self.position()
        if carry:  # a last line without its newline: maybe truncated; the parser decides
            yield carry, self.position()

    def close(self) -> None:
        if self._stream is not self._raw:
            self._stream.close()
        if self._raw is not sys.stdin.buffer:
            self._raw.close()


def _utf8(line: bytes) -> str | None:
    try:
        return line.decode("utf-8")
    except UnicodeDecodeError:
        return None


def decode(data: bytes) -> tuple[list[str | None], str | None]:
    """The lines of a chunk (None for a line that is not UTF-8), and the chunk as text when
    all of it is UTF-8."""
    if b"\r" in data:  # Windows line ends (IIS)
        data = data.replace(b"\r\n", b"\n")
    try:
        text = data.decode("utf-8")
    except UnicodeDecodeError:
        return [_utf8(line) for line in data.split(b"\n")], None
    return list(text.split("\n")), text
