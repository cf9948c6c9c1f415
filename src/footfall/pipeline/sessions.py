"""Visits: which session each event belongs to. The writer's job, not the HTTP handler's.

An explicit `session_id` from the caller groups records as given. Otherwise a visit is one
visitor's events with gaps under the session timeout. Sessions are the connected runs of a
visitor's events ordered by time, so the grouping does not depend on arrival order:
historical replay, shuffled batches and live traffic give the same visits. An event that
lands between two runs joins them, and the later run is merged into the earlier.

Session ids are 64-bit; the top bit marks explicit sessions so the two kinds never mix.

A contract may instead give a session mode (event.SESSION_*; seed 004's server events): no
session (NULL), a new visit of the event's own, or the visitor's latest visit, which the event
joins however long ago that visit's last event was (if it was under way in the last day: a
visitor hash lasts one day anyway).

A batch is assigned in the store's engine (Store.assign_sessions: runs of the batch and the
stored visits near them, cut into connected components, a few set operations over the whole
batch). The session modes depend on the order of events, so a batch that uses them, or that
meets the overlapping visits they leave, is assigned here one event at a time, in order of
time, by the same rules (tests check that both give the same visits).
"""

from __future__ import annotations

from hashlib import blake2b

from footfall.event import SESSION_EXPLICIT_BIT, SESSION_ID_MIX, SESSION_MODE_PREFIX, SESSION_NEW, SESSION_NONE
from footfall.store.base import SessionKeys, SessionMerge, Staged, Store, VisitorWindows

EXPLICIT_BIT = SESSION_EXPLICIT_BIT
_LOW_BITS = EXPLICIT_BIT - 1


def _hash64(text: str) -> int:
    return int.from_bytes(blake2b(text.encode("utf-8", "surrogatepass"), digest_size=8).digest(), "big")


def explicit_session_id(site_id: int, key: str) -> int:
    return _hash64(f"x\x00{site_id}\x00{key}") | EXPLICIT_BIT


_MASK64 = (1 << 64) - 1


def implicit_session_id(visitor_id: int, start_us: int) -> int:
    """A visit's id from its visitor and start. `visitor_id` is already a keyed hash of site,
    address and agent, spread evenly over 64 bits, so arithmetic mixing is enough here: a
    visitor's visits differ in the scrambled start time, and ids of different visitors
    collide only by 63-bit chance. (A hash function cost 0.8 us on every new visit.)"""
    return (visitor_id ^ (start_us * SESSION_ID_MIX & _MASK64)) & _LOW_BITS


VisitorKey = tuple[int, int]  # (site_id, visitor_id)
LATEST_WINDOW_US = 86_400_000_000


class Sessionizer:
    """Assigns session ids to a staged batch, from the batch and the visits already stored
    (the writer commits each batch before the next, so the store knows every visit)."""

    def __init__(self, store: Store, gap_us: int) -> None:
        self.store = store
        self.gap_us = gap_us
        # A stored visit an event without an explicit session joins ended at most this long
        # before it: within the gap, or the day of the "latest" mode (store.commit_staged).
        self.reach_us = max(gap_us, LATEST_WINDOW_US)

    def assign(self, staged: Staged) -> tuple[list[int | None] | None, list[SessionMerge]]:
        """The staged events' sessions, and the stored visits to merge. The ids: None when the
        store gave the events their sessions itself, else one per event in staging order (see
        Store.commit_staged)."""
        if not staged.modes:
            explicit = {(site, key): explicit_session_id(site, key) for site, key in staged.explicit_keys}
            merges = self.store.assign_sessions(self.gap_us, explicit)
            if merges is not None:
                return None, merges
        return self.assign_in_order(self.store.staged_session_keys())

    def assign_in_order(self, batch: SessionKeys) -> tuple[list[int | None], list[SessionMerge]]:
        """Session ids for the batch, in batch order (None: no session), event by event in
        order of time, and the stored visits to merge."""
        sites, visitors, times, keys = batch
        ids: list[int | None] = [0] * len(times)
        implicit: list[int] = []
        modes: dict[int, str] = {}  # batch position -> SESSION_NEW or SESSION_LATEST
        for i, key in enumerate(keys):
            if key is None:
                implicit.append(i)
            elif key.startswith(SESSION_MODE_PREFIX):
                if key == SESSION_NONE:
                    ids[i] = None
                else:
                    modes[i] = key
                    implicit.append(i)
            else:
                ids[i] = explicit_session_id(sites[i], key)
        if not implicit:
            return ids, []
        implicit.sort(key=times.__getitem__)
        visitor_keys = [(sites[i], visitors[i]) for i in implicit]
        ordered_times = [times[i] for i in implicit]
        back_times = [times[i] - LATEST_WINDOW_US if i in modes else times[i] for i in implicit]
        # A latest visit may have begun up to a day before its event.
        all_spans = self._load(visitor_keys, back_times, ordered_times)

        gap = self.gap_us
        remap: dict[int, int] = {}
        merges: list[SessionMerge] = []
        for i, visitor_key, ts in zip(implicit, visitor_keys, ordered_times, strict=True):
            spans = all_spans[visitor_key]
            if modes and i in modes:
                ids[i] = _attach(modes[i], spans, visitor_key[1], ts)
                continue
            near = [s for s in spans if s[0] - gap < ts < s[1] + gap] if spans else None
            if not near:
                span = [ts, ts, implicit_session_id(visitor_key[1], ts)]
                spans.append(span)
            else:
                if len(near) > 1:
                    near.sort(key=lambda s: s[0])
                span = near[0]
                for other in near[1:]:
                    spans.remove(other)
                    remap[other[2]] = span[2]
                    merges.append(SessionMerge(*visitor_key, other[2], span[2], other[0], other[1]))
                    span[1] = max(span[1], other[1])
                if ts < span[0]:
                    span[0] = ts
                elif ts > span[1]:
                    span[1] = ts
            ids[i] = span[2]
        if remap:
            # A visit merged into one that was itself merged later ends in the last one.
            def final(session_id: int) -> int:
                while session_id in remap:
                    session_id = remap[session_id]
                return session_id

            for i in implicit:
                session_id = ids[i]
                if session_id is not None:
                    ids[i] = final(session_id)
            merges = [m._replace(new_session_id=final(m.new_session_id)) for m in merges]
        return ids, merges

    def _load(self, visitor_keys: list[VisitorKey], lo: list[int], hi: list[int]) -> dict[VisitorKey, list[list[int]]]:
        """Each visitor's stored visits near its events (between its least `lo` and greatest
        `hi`), as [start_us, end_us, session_id]."""
        first: dict[VisitorKey, int] = {}
        last: dict[VisitorKey, int] = {}
        for key, a, b in zip(visitor_keys, lo, hi, strict=True):
            first[key] = min(first.get(key, a), a)
            last[key] = max(last.get(key, b), b)
        spans: dict[VisitorKey, list[list[int]]] = {key: [] for key in first}
        windows = VisitorWindows(
            [k[0] for k in first], [k[1] for k in first], list(first.values()), [last[k] for k in first]
        )
        for found in self.store.session_spans(windows, self.gap_us):
            spans[(found.site_id, found.visitor_id)].append([found.start_us, found.end_us, found.session_id])
        return spans


def _attach(mode: str, spans: list[list[int]], visitor_id: int, ts: int) -> int | None:
    """The session of an event sent with a session mode (SESSION_NEW or SESSION_LATEST)."""
    if mode == SESSION_NEW:
        spans.append([ts, ts, implicit_session_id(visitor_id, ts)])
        return spans[-1][2]
    begun = [s for s in spans if s[0] <= ts and s[1] >= ts - LATEST_WINDOW_US]
    if not begun:
        return None  # seed 004: with no visit to join, the event has no session
    span = max(begun, key=lambda s: s[0])
    span[1] = max(span[1], ts)
    return span[2]
