"""One log file read as a stream within its limits.

Every byte of a log file comes from outside: a gzip bomb, a log server that
drips a byte a second, a download cut short, a line with no end. The file is
read in chunks and decompressed as it arrives, so memory stays bounded
whatever comes in. Whatever stops the reading (a limit, the deadline, broken
input) ends the stream cleanly and is kept as a :class:`Cut`: the lines read
before it are indexed and the gap is reported, never the whole file lost.
"""

from __future__ import annotations

import io
import zlib
from dataclasses import dataclass
from typing import Callable, Iterator

from ..config import IngestSettings

GZIP_MAGIC = b"\x1f\x8b"
CHUNK = 64 * 1024
MIN_TEXT_BLOCK = 4096  # bounded_text reads ``limit`` bytes at a time from this limit on

Chunks = Callable[[int], bytes]  # up to n bytes (fewer as they come); b"" at the end


@dataclass(frozen=True)
class Cut:
    """Why the rest of a file is not indexed. ``broken``: the input is at
    fault (cut short, too slow, corrupt), not merely over a limit."""

    reason: str
    broken: bool


class StopReading(Exception):
    """Raised by a layer of the stream: the file ends here, for ``cut``'s reason."""

    def __init__(self, cut: Cut) -> None:
        super().__init__(cut.reason)
        self.cut = cut


class BuildBudget:
    """The bytes after decompression a build may still read (``ingest.max_build_bytes``)."""

    def __init__(self, limit: int) -> None:
        self.limit = limit
        self.used = 0

    @property
    def left(self) -> int:
        return max(self.limit - self.used, 0)


def _at_limit(read: Chunks, cut: Cut) -> bytes:
    """A layer that may give no more: a file exactly at the limit is whole,
    one with a byte more is cut."""
    if read(1):
        raise StopReading(cut)
    return b""


class FetchedBytes:
    """The file's bytes as fetched or read from disk: at most ``max_file_bytes``."""

    def __init__(self, read: Chunks, limit: int) -> None:
        self._read = read
        self.limit = limit
        self.count = 0

    def read(self, size: int) -> bytes:
        room = self.limit - self.count
        if room <= 0:
            return _at_limit(self._read, Cut(f"more than {self.limit} bytes to fetch (ingest.max_file_bytes)", False))
        data = self._read(min(size, room))
        self.count += len(data)
        return data


class Gunzip:
    """gzip data decompressed as it streams in, at most ``size`` bytes per read
    whatever the ratio. Members written one after another (``cat a.gz b.gz``)
    are read on; bytes after the last member that are no gzip are ignored, as
    ``gunzip`` does; data ending inside a member is a cut."""

    def __init__(self, read: Chunks) -> None:
        self._read = read
        self._inflate = zlib.decompressobj(16 + zlib.MAX_WBITS)
        self._pending = b""  # compressed bytes given but not yet taken
        self._in_member = False
        self._members = 0
        self._done = False

    def read(self, size: int) -> bytes:
        while not self._done:
            data = self._pending or self._read(CHUNK)
            if not data:
                self._done = True
                if self._in_member:
                    raise StopReading(Cut("the gzip data ends early (truncated)", True))
                return b""
            try:
                out = self._inflate.decompress(data, size)
            except zlib.error as exc:
                self._done = True
                if self._members and not self._in_member:
                    return b""  # trailing bytes after the last member
                raise StopReading(Cut(f"corrupt gzip data ({exc})", True)) from None
            self._in_member = True
            self._pending = self._inflate.unconsumed_tail
            if self._inflate.eof:
                self._members += 1
                self._pending = self._inflate.unused_data
                self._inflate = zlib.decompressobj(16 + zlib.MAX_WBITS)
                self._in_member = False
            if out:
                return out
        return b""


class GzipIfMagic:
    """A ``.gz`` file: decompressed when it starts like gzip. Log servers often
    answer for ``x.txt.gz`` with the text itself (the transfer already
    decompressed), so the name alone does not say."""

    def __init__(self, read: Chunks) -> None:
        self._read = read
        self._head = b""
        self._source: Chunks | None = None

    def read(self, size: int) -> bytes:
        if self._source is None:
            while len(self._head) < len(GZIP_MAGIC):
                more = self._read(CHUNK)
                if not more:
                    break
                self._head += more
            head, self._head = self._head, b""
            replay = _Replay(head, self._read)
            self._source = Gunzip(replay.read).read if head.startswith(GZIP_MAGIC) else replay.read
        return self._source(size)


class _Replay:
    """Bytes already taken from a source, given out again before the rest of it."""

    def __init__(self, head: bytes, read: Chunks) -> None:
        self._head = head
        self._read = read

    def read(self, size: int) -> bytes:
        if self._head:
            out, self._head = self._head[:size], self._head[size:]
            return out
        return self._read(size)


class DecompressedBytes:
    """Bytes after decompression: at most ``max_decompressed_bytes`` of this
    file and what is left of the build's budget."""

    def __init__(self, read: Chunks, limit: int, budget: BuildBudget) -> None:
        self._read = read
        self.limit = limit
        self.budget = budget
        self.count = 0

    def read(self, size: int) -> bytes:
        room = min(self.limit - self.count, self.budget.left)
        if room <= 0:
            if self.count >= self.limit:
                cut = Cut(f"more than {self.limit} bytes after decompression (ingest.max_decompressed_bytes)", False)
            else:
                cut = Cut(f"the build's {self.budget.limit} bytes are used up (ingest.max_build_bytes)", False)
            return _at_limit(self._read, cut)
        data = self._read(min(size, room))
        self.count += len(data)
        self.budget.used += len(data)
        return data


class _Raw(io.RawIOBase):
    """The top of the layers as a raw stream, so io's buffered ``readline``
    (in C) splits the lines. A cut ends the stream and is kept."""

    def __init__(self, read: Chunks) -> None:
        self._read = read
        self.cut: Cut | None = None

    def readable(self) -> bool:
        return True

    def readinto(self, buffer: bytearray | memoryview) -> int:  # type: ignore[override]
        if self.cut is not None:
            return 0
        try:
            data = self._read(len(buffer))
        except StopReading as stop:
            self.cut = stop.cut
            return 0
        buffer[: len(data)] = data
        return len(data)


class LogStream:
    """One log file's lines, within the limits. Iteration ends early at a
    cut; :attr:`cut` then says why and :attr:`kept` how many bytes (after
    decompression) were read before it."""

    def __init__(
        self,
        read: Chunks,
        *,
        gzip_name: bool,
        limits: IngestSettings,
        budget: BuildBudget,
        transfer_gzip: bool = False,
        close: Callable[[], None] = lambda: None,
    ) -> None:
        """``read``: the bytes as they arrive (raising :class:`StopReading`
        when the source fails part way); ``transfer_gzip``: the server
        compressed them for the transfer (``Content-Encoding: gzip``);
        ``gzip_name``: the file is a ``.gz``."""
        fetched = FetchedBytes(read, limits.max_file_bytes)
        layer: Chunks = fetched.read
        if transfer_gzip:
            layer = Gunzip(layer).read
        if gzip_name:
            layer = GzipIfMagic(layer).read
        self._decompressed = DecompressedBytes(layer, limits.max_decompressed_bytes, budget)
        self._raw = _Raw(self._decompressed.read)
        self._buffered = io.BufferedReader(self._raw, CHUNK)
        self._close = close
        self.max_line_bytes = limits.max_line_bytes

    @property
    def cut(self) -> Cut | None:
        return self._raw.cut

    @property
    def kept(self) -> int:
        return self._decompressed.count

    def lines(self) -> Iterator[bytes]:
        return bounded_lines(self._buffered, self.max_line_bytes)

    def line_batches(self) -> Iterator[list[bytes]]:
        """:meth:`lines` a block of the file at a time, each line without its
        ``\\n``: split by ``bytes.split`` in C rather than a ``readline`` per
        line (the writer reads every line of every build this way)."""
        return bounded_line_batches(self._buffered.read1, self.max_line_bytes)

    def text(self) -> Iterator[bytes]:
        """:meth:`line_batches` as blocks of bytes, each line ended by
        ``\n``: what the spool keeps of a log file."""
        return bounded_text(self._buffered.read1, self.max_line_bytes)

    def chunks(self) -> Iterator[bytes]:
        """The bytes as they are (within the byte limits), for a file that is
        not lines of text: a subunit stream is binary."""
        read = self._buffered.read1
        while True:
            data = read(CHUNK)
            if not data:
                return
            yield data

    def close(self) -> None:
        self._close()

    def __enter__(self) -> "LogStream":
        return self

    def __exit__(self, *_: object) -> None:
        self.close()


def bounded_lines(handle: io.BufferedReader, limit: int) -> Iterator[bytes]:
    """The lines of ``handle``, none longer than ``limit`` bytes: a longer one
    is cut, ending with a marker that says how much was dropped, and the rest
    of it is skipped without ever being held whole."""
    readline = handle.readline
    while True:
        line = readline(limit + 1)
        if len(line) <= limit or line[-1:] == b"\n":
            if not line:
                return
            yield line
            continue
        total = len(line)
        while True:
            rest = readline(CHUNK)
            total += len(rest)
            if rest[-1:] == b"\n":
                total -= 1
            if not rest or rest[-1:] == b"\n":
                break
        yield cut_line(line, total, limit)


class _OpenLine:
    """The line not ended yet, across blocks read: its bytes while they are
    at most ``limit``, past that only its first limit + 1 and its length so
    far (a line with no end is never held whole)."""

    __slots__ = ("limit", "carry", "long_head", "long_total")

    def __init__(self, limit: int) -> None:
        self.limit = limit
        self.carry = b""
        self.long_head: bytes | None = None
        self.long_total = 0

    def extend(self, data: bytes) -> None:
        """More of the line, not its end."""
        if self.long_head is not None:
            self.long_total += len(data)
        else:
            self.carry += data
            if len(self.carry) > self.limit:
                self.long_head, self.long_total, self.carry = self.carry[: self.limit + 1], len(self.carry), b""

    def end(self, tail: bytes) -> bytes:
        """The line that ``tail`` ends, cut to ``limit``; the next one starts empty."""
        if self.long_head is not None:
            line = cut_line(self.long_head, self.long_total + len(tail), self.limit)
            self.long_head = None
        else:
            line = self.carry + tail
            if len(line) > self.limit:
                line = cut_line(line[: self.limit + 1], len(line), self.limit)
        self.carry = b""
        return line

    def rest(self) -> bytes | None:
        """The line the input ended in without a ``\\n``, cut to ``limit``; None when there is none."""
        if self.long_head is not None:
            return cut_line(self.long_head, self.long_total, self.limit)
        return self.carry or None


def bounded_line_batches(read: Chunks, limit: int, block: int = 4 * CHUNK) -> Iterator[list[bytes]]:
    """The lines :func:`bounded_lines` gives, without their ``\\n``, in lists:
    one per block read. A line longer than ``limit`` is cut the same way,
    and the rest of it skipped (counted) as it streams by, never held whole."""
    open_line = _OpenLine(limit)

    def bounded(line: bytes) -> bytes:
        return line if len(line) <= limit else cut_line(line[: limit + 1], len(line), limit)

    while data := read(block):
        pieces = data.split(b"\n")
        ended, rest = pieces[:-1], pieces[-1]
        out: list[bytes] = []
        if ended:
            out.append(open_line.end(ended[0]))
            middle = ended[1:]
            if middle and max(map(len, middle)) > limit:
                middle = [bounded(line) for line in middle]
            out.extend(middle)
        open_line.extend(rest)
        if out:
            yield out
    last = open_line.rest()
    if last is not None:
        yield [last]


def bounded_text(read: Chunks, limit: int) -> Iterator[bytes]:
    """The lines :func:`bounded_line_batches` gives, each ended by ``\n``, in
    blocks of bytes, as the spool stores them. A block read no longer than
    ``limit`` can hold no line over it but its first (which goes on from the
    last block) and its last (which goes on in the next), so the lines in
    between are passed on as read: not split and joined again (that was
    ~40% of a fetch worker's time)."""
    if limit < MIN_TEXT_BLOCK:  # blocks that small would cost more than the split
        for batch in bounded_line_batches(read, limit):
            batch.append(b"")
            yield b"\n".join(batch)
        return
    open_line = _OpenLine(limit)
    while data := read(limit):
        first = data.find(b"\n")
        if first < 0:
            open_line.extend(data)
            continue
        head = open_line.end(data[:first])
        last = data.rfind(b"\n")
        open_line.extend(data[last + 1:])  # under ``limit``: so is the block
        yield head + data[first:last + 1]
    rest = open_line.rest()
    if rest is not None:
        yield rest + b"\n"


def cut_line(head: bytes, total: int, limit: int) -> bytes:
    """A line of ``total`` bytes, of which ``head`` are the first, cut to at
    most ``limit`` bytes with its marker (when the limit leaves room for one)."""
    keep = limit
    for _ in range(3):  # the marker's length depends on the number it holds
        keep = max(limit - len(_marker(total - keep)), 0)
    return head[:keep] + _marker(total - keep)


def _marker(dropped: int) -> bytes:
    return f" [... {dropped} bytes truncated]".encode()
