"""The spool's segment files: zero-filled ahead of the records, cut to them when closed, and
read back whole after a crash that left the zeros (or a torn record before them) behind."""

from __future__ import annotations

import asyncio
import os
import shutil
import signal
from pathlib import Path

import pytest

from footfall.pipeline import spool as spool_module
from footfall.pipeline import syncer
from footfall.pipeline.spool import SEGMENT_SUFFIX, Spool, frame, frame_lines, read_segment


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


def test_a_request_s_records_framed_as_lines_read_back_in_order_beside_single_frames(tmp_path: Path) -> None:
    """A batch request's records share one frame (newline-ended lines, one checksum); they read
    back as the same records, in order, among single-record frames; a torn lines frame drops
    all of its records (none of them was acknowledged: the frame is synced whole), not the
    frames before it."""
    batch, single, empty = records(1000), records(1, 1000), frame_lines(b"")
    torn = frame_lines(b"".join(p + b"\n" for p in records(3, 2000)))
    path = tmp_path / f"0000000000000001{SEGMENT_SUFFIX}"
    path.write_bytes(
        frame_lines(b"".join(p + b"\n" for p in batch)) + frame(single[0]) + empty
        + frame_lines(single[0] + b"\n") + torn[:-5] + bytes(4096)
    )
    read = read_segment(path)
    assert read.records == [*batch, single[0], single[0]]
    assert read.torn_bytes == len(torn) - 5


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
    """A real spool that also keeps the record counts it writes, one per group."""

    handed: list[int]

    def _write(self, data: bytes, count: int, seq: int = 0) -> None:
        self.handed.append(count)
        super()._write(data, count, seq)


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


def helper_pid(spool: Spool) -> int:
    helper = spool._helper
    assert helper is not None, "the loop's groups go through a sync helper"
    return helper.process.pid


def test_loop_groups_are_synced_by_a_helper_process_that_stops_with_the_spool(tmp_path: Path) -> None:
    spool = Spool(tmp_path / "spool", 64 << 20, 3600.0)
    sent = records(500)
    pids: list[int] = []

    async def stream() -> None:
        for i in range(0, len(sent), 7):  # a pass of the loop per 7 records
            await asyncio.gather(*(spool.append(frame(p)) for p in sent[i : i + 7]))
            pids.append(helper_pid(spool))

    asyncio.run(stream())
    assert len(set(pids)) == 1  # one helper for the whole stream
    assert spool.fsyncs >= 1 and spool.records_written == len(sent)
    spool.close()
    with pytest.raises(ProcessLookupError):  # reaped: gone, not a zombie
        os.kill(pids[0], 0)
    (segment,) = (tmp_path / "spool").glob("*" + SEGMENT_SUFFIX)
    assert read_segment(segment).records == sent


def test_a_killed_helper_loses_nothing_and_is_replaced(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setattr(spool_module, "HELPER_RESTART_AFTER_S", 0.05)
    spool = Spool(tmp_path / "spool", 64 << 20, 3600.0)
    sent = records(3000)
    helpers: set[int] = set()

    async def stream() -> None:
        killed = False
        for i in range(0, len(sent), 20):
            futures = [spool.append(frame(p)) for p in sent[i : i + 20]]
            if spool._helper is not None:
                helpers.add(helper_pid(spool))
                if not killed and i >= 1000:  # with groups in flight
                    os.kill(helper_pid(spool), signal.SIGKILL)
                    killed = True
            await asyncio.gather(*futures)  # every append is acknowledged: none fails
            if i == 1500:
                await asyncio.sleep(0.1)  # past HELPER_RESTART_AFTER_S: a new helper starts

    asyncio.run(stream())
    spool.close()
    assert len(helpers) == 2
    (segment,) = (tmp_path / "spool").glob("*" + SEGMENT_SUFFIX)
    assert read_segment(segment).records == sent  # in order, each once


def test_segments_sealed_while_their_sync_is_out_reach_the_writer_whole_and_in_order(tmp_path: Path) -> None:
    # 2 KiB segments: nearly every group fills one, so segments are sealed with their
    # groups' sync still out, and must wait for it before the writer may see them.
    spool = Spool(tmp_path / "spool", 2 << 10, 3600.0)
    sent = records(400)
    futures: dict[bytes, asyncio.Future[None]] = {}
    checked = 0

    async def stream() -> None:
        nonlocal checked
        for i in range(0, len(sent), 10):
            group = [spool.append(frame(p)) for p in sent[i : i + 10]]
            futures.update(zip(sent[i : i + 10], group, strict=True))
            await asyncio.sleep(0)  # the group is written; its sync is (most often) out
            for segment in spool.closed_segments():  # what the writer may read now
                for record in read_segment(segment).records:
                    assert futures[record].done(), "a segment reached the writer before its sync"
                    checked += 1
            await asyncio.gather(*group)

    asyncio.run(stream())
    spool.close()
    segments = sorted((tmp_path / "spool").glob("*" + SEGMENT_SUFFIX))
    assert len(segments) > 20 and checked > 0
    assert [r for s in segments for r in read_segment(s).records] == sent
    assert all(read_segment(s).torn_bytes == 0 for s in segments)


def test_without_a_helper_the_loop_syncs_its_groups_itself(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setattr(syncer.sys, "executable", str(tmp_path / "no-such-python"))
    spool = Spool(tmp_path / "spool", 64 << 20, 3600.0)
    sent = records(100)

    async def stream() -> None:
        await asyncio.gather(*(spool.append(frame(p)) for p in sent))
        assert spool._helper is None

    asyncio.run(stream())
    spool.close()
    (segment,) = (tmp_path / "spool").glob("*" + SEGMENT_SUFFIX)
    assert read_segment(segment).records == sent


def test_a_spool_serves_one_event_loop_after_another(tmp_path: Path) -> None:
    spool = Spool(tmp_path / "spool", 64 << 20, 3600.0)
    sent = records(60)

    async def stream(part: list[bytes]) -> int:
        await asyncio.gather(*(spool.append(frame(p)) for p in part))
        return helper_pid(spool)

    first = asyncio.run(stream(sent[:30]))
    second = asyncio.run(stream(sent[30:]))
    spool.close()
    assert first != second
    (segment,) = (tmp_path / "spool").glob("*" + SEGMENT_SUFFIX)
    assert read_segment(segment).records == sent


def test_a_segment_that_cannot_be_cut_is_still_handed_over(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    # Handing a segment over runs as its groups settle: a failure there must not leave their
    # requests waiting. Uncut, the segment keeps its zeros, which readers skip.
    def refuse(fd: int, length: int) -> None:
        raise OSError(5, "Input/output error")

    monkeypatch.setattr(os, "ftruncate", refuse)
    spool = Spool(tmp_path / "spool", 2 << 10, 3600.0)
    sent = records(200)

    async def stream() -> None:
        for i in range(0, len(sent), 10):
            await asyncio.wait_for(asyncio.gather(*(spool.append(frame(p)) for p in sent[i : i + 10])), 10)

    asyncio.run(stream())
    spool.close()
    segments = spool.closed_segments()
    assert len(segments) >= 5  # each handed over uncut
    assert all(s.stat().st_size >= spool_module.ZERO_FILL_MIN for s in segments)  # zeros kept
    assert [r for s in segments for r in read_segment(s).records] == sent
