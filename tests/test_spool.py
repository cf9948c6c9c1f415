"""The spool's segment files: zero-filled ahead of the records, cut to them when closed, and
read back whole after a crash that left the zeros (or a torn record before them) behind."""

from __future__ import annotations

import asyncio
import shutil
from pathlib import Path

import pytest

from footfall.pipeline import spool as spool_module
from footfall.pipeline.spool import SEGMENT_SUFFIX, Spool, frame, read_segment


def records(n: int, start: int = 0) -> list[bytes]:
    return [b'{"site_id":1,"n":%d,"pad":"%s"}' % (i, b"x" * (i % 300)) for i in range(start, start + n)]


def test_a_segment_active_at_a_crash_reads_back_every_acknowledged_record(tmp_path: Path) -> None:
    spool = Spool(tmp_path / "spool", 64 << 20, 3600.0)  # neither size nor age closes it
    sent = records(2000)
    for payload in sent:  # one commit each: the file grows past its zeros several times
        spool.append_sync(frame(payload))
    (active,) = (tmp_path / "spool").glob("*" + SEGMENT_SUFFIX)
    crashed = tmp_path / f"crashed{SEGMENT_SUFFIX}"
    shutil.copyfile(active, crashed)  # the file as a crash right now would leave it
    spool.close()

    written = sum(len(frame(p)) for p in sent)
    assert crashed.stat().st_size > written  # zeros after the records
    assert crashed.read_bytes()[written:].strip(b"\0") == b""
    read = read_segment(crashed)
    assert read.records == sent
    assert read.torn_bytes == 0  # zeros are not a torn record

    # Closing cut the segment to its records.
    (closed,) = (tmp_path / "spool").glob("*" + SEGMENT_SUFFIX)
    assert closed.stat().st_size == written
    assert read_segment(closed).records == sent


def test_a_torn_record_before_the_zeros_is_dropped_and_reported(tmp_path: Path) -> None:
    whole = records(5)
    last = frame(b'{"site_id":1,"n":"the last one"}')
    path = tmp_path / f"0000000000000001{SEGMENT_SUFFIX}"
    path.write_bytes(b"".join(frame(p) for p in whole) + last[:-7] + bytes(4096))
    read = read_segment(path)
    assert read.records == whole
    assert read.torn_bytes == len(last) - 7


def test_the_zeros_grow_with_the_segment_and_stay_bounded(tmp_path: Path) -> None:
    spool = Spool(tmp_path / "spool", 64 << 20, 3600.0)
    group = b"".join(frame(p) for p in records(20))  # a group of single records: ~4 KB
    sizes = []
    for _ in range(1000):
        spool.append_sync(group, 20)
        (active,) = (tmp_path / "spool").glob("*" + SEGMENT_SUFFIX)
        sizes.append(active.stat().st_size)
    written = 1000 * len(group)
    # Zeros ahead double from ZERO_FILL_MIN, then stay at most ZERO_FILL_MAX beyond the records.
    assert sizes[0] == len(group) + spool_module.ZERO_FILL_MIN
    assert 0 < sizes[-1] - written <= spool_module.ZERO_FILL_MAX
    assert len(set(sizes)) < 20  # most commits overwrote zeros: the file did not grow each time
    # A batch-sized commit past the zeros grows the file by itself alone, with no zeros.
    big = b"".join(frame(p) for p in records(2000))
    spool.append_sync(big * (spool_module.ZERO_FILL_MAX // len(big) + 2), 1)
    (active,) = (tmp_path / "spool").glob("*" + SEGMENT_SUFFIX)
    assert active.stat().st_size == written + len(big) * (spool_module.ZERO_FILL_MAX // len(big) + 2)
    spool.close()
    assert spool.records_written == 1000 * 20 + 1


class CountingSpool(Spool):
    """A real spool that also keeps the record counts it was handed, one per hand-over."""

    handed: list[int]

    def submit(self, framed: bytes, done: spool_module.Done, count: int = 1) -> None:
        self.handed.append(count)
        super().submit(framed, done, count)


def test_one_pass_of_the_loop_hands_its_records_over_in_groups(tmp_path: Path) -> None:
    spool = CountingSpool(tmp_path / "spool", 64 << 20, 3600.0)
    spool.handed = []
    per_group = spool_module.LOOP_GROUP_RECORDS
    sent = records(2 * per_group + 5)

    async def one_pass() -> None:
        # No await between the appends: they all happen in one pass of the loop.
        futures = [spool.append(frame(p)) for p in sent]
        await asyncio.gather(*futures)

    asyncio.run(one_pass())
    spool.close()
    assert spool.handed == [per_group, per_group, 5]  # the first two while the pass went on
    (segment,) = (tmp_path / "spool").glob("*" + SEGMENT_SUFFIX)
    assert read_segment(segment).records == sent  # in order, each once
    assert spool.records_written == len(sent)


def test_a_kernel_that_refuses_synced_writes_gets_write_then_sync(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    # A pwritev flag this kernel does not know is refused (EOPNOTSUPP), as RWF_DSYNC is by
    # kernels before 4.7: the spool falls back to pwrite + fdatasync, and loses nothing.
    monkeypatch.setattr(spool_module, "_rwf_dsync", 1 << 30)
    spool = Spool(tmp_path / "spool", 64 << 20, 3600.0)
    sent = records(50)
    for payload in sent:
        spool.append_sync(frame(payload))
    assert spool_module._rwf_dsync is None
    spool.close()
    (segment,) = (tmp_path / "spool").glob("*" + SEGMENT_SUFFIX)
    assert read_segment(segment).records == sent
