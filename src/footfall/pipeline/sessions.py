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
"""

from __future__ import annotations

from collections import OrderedDict
from hashlib import blake2b

from footfall.event import SESSION_MODE_PREFIX, SESSION_NEW, SESSION_NONE
from footfall.store.base import SessionKeys, SessionMerge, Store, VisitorWindows

EXPLICIT_BIT = 1 << 63
_LOW_BITS = EXPLICIT_BIT - 1


def _hash64(text: str) -> int:
    return int.from_bytes(blake2b(text.encode("utf-8", "surrogatepass"), digest_size=8).digest(), "big")


def explicit_session_id(site_id: int, key: str) -> int:
    return _hash64(f"x\x00{site_id}\x00{key}") | EXPLICIT_BIT


_MIX = 0x9E37_79B9_7F4A_7C15  # odd (2**64 / golden ratio): multiplying by it permutes 64-bit values
_MASK64 = (1 << 64) - 1


def implicit_session_id(visitor_id: int, start_us: int) -> int:
    """A visit's id from its visitor and start. `visitor_id` is already a keyed hash of site,
    address and agent, spread evenly over 64 bits, so arithmetic mixing is enough here: a
    visitor's visits differ in the scrambled start time, and ids of different visitors
    collide only by 63-bit chance. (A hash function cost 0.8 us on every new visit.)"""
    return (visitor_id ^ (start_us * _MIX & _MASK64)) & _LOW_BITS


VisitorKey = tuple[int, int]  # (site_id, visitor_id)
LATEST_WINDOW_US = 86_400_000_000


class Sessionizer:
    """Assigns session ids to a batch; remembers recent visits, asks the store for the rest."""

    def __init__(self, store: Store, gap_us: int, max_visitors: int = 200_000) -> None:
        self.store = store
        self.gap_us = gap_us
        # A stored visit an event without an explicit session joins ended at most this long
        # before it: within the gap, or the day of the "latest" mode (store.commit_staged).
        self.reach_us = max(gap_us, LATEST_WINDOW_US)
        self.max_visitors = max_visitors
        # visitor -> its known visits as [start_us, end_us, session_id], least recent first
        self._spans: OrderedDict[VisitorKey, list[list[int]]] = OrderedDict()
        # visitor -> [lo_us, hi_us]: the cache holds every visit an event in this window can
        # touch. Visits stored before this writer started lie anywhere in time, so an event
        # outside the window still needs the store (a late event, a restart, shuffled batches).
        self._covered: dict[VisitorKey, tuple[int, int]] = {}

    def reset(self) -> None:
        """Forget cached visits (after a failed commit the cache may be ahead of the store)."""
        self._spans.clear()
        self._covered.clear()

    def assign(self, batch: SessionKeys) -> tuple[list[int | None], list[SessionMerge]]:
        """Session ids for the batch, in batch order (None: no session), and the stored visits
        to merge."""
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
        # This loop and _load_missing run for every event the writer loads: one visitor key
        # per event, built once, and C-level dict and zip work where it will do.
        visitor_keys = [(sites[i], visitors[i]) for i in implicit]
        ordered_times = [times[i] for i in implicit]
        touched = self._load_missing(visitor_keys, ordered_times)
        if modes:  # a latest visit may have begun up to a day before its event
            back_keys: list[VisitorKey] = []
            back_times: list[int] = []
            for i in implicit:
                if i in modes:
                    visitor = (sites[i], visitors[i])
                    back_keys += (visitor, visitor)
                    back_times += (times[i] - LATEST_WINDOW_US, times[i])
            self._load_missing(back_keys, back_times)

        gap = self.gap_us
        all_spans = self._spans
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
        move_to_end = all_spans.move_to_end
        for visitor_key in touched:  # recency once per visitor and batch, not once per event
            move_to_end(visitor_key)
        self._evict()
        return ids, merges

    def _load_missing(self, visitor_keys: list[VisitorKey], times: list[int]) -> dict[VisitorKey, int]:
        """Load from the store the visits near this batch that the cache does not cover.

        The events are given sorted by time; returns each visitor's first time in the batch."""
        # The last pair wins in a dict: reversed, that is each visitor's earliest event.
        first = dict(zip(reversed(visitor_keys), reversed(times), strict=True))
        last = dict(zip(visitor_keys, times, strict=True))
        wanted = VisitorWindows([], [], [], [])
        want_site, want_visitor, want_lo, want_hi = wanted
        covered_of = self._covered
        spans_of = self._spans
        for key, lo in first.items():
            hi = last[key]
            covered = covered_of.get(key)
            if covered is None:  # a visitor this writer has not seen (or has forgotten)
                want_site.append(key[0])
                want_visitor.append(key[1])
                want_lo.append(lo)
                want_hi.append(hi)
                covered_of[key] = (lo, hi)
                spans_of[key] = []
                continue
            # Ask only for the uncovered parts; together with the covered window they cover
            # the union, so the coverage stays one window per visitor.
            if lo < covered[0] or hi > covered[1]:
                for part_lo, part_hi in ((lo, covered[0]), (covered[1], hi)):
                    if part_lo < part_hi:
                        want_site.append(key[0])
                        want_visitor.append(key[1])
                        want_lo.append(part_lo)
                        want_hi.append(part_hi)
                covered_of[key] = (min(lo, covered[0]), max(hi, covered[1]))
        if want_site:
            for found in self.store.session_spans(wanted, self.gap_us):
                spans = spans_of[(found.site_id, found.visitor_id)]
                # A visit already cached is the same visit: this writer committed every change to it.
                if not any(known[2] == found.session_id for known in spans):
                    spans.append([found.start_us, found.end_us, found.session_id])
        return first

    def _evict(self) -> None:
        while len(self._spans) > self.max_visitors:
            key, _ = self._spans.popitem(last=False)
            self._covered.pop(key, None)


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
