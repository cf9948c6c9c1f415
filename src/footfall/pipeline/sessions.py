"""Visits: which session each event belongs to. The writer's job, not the HTTP handler's.

An explicit `session_id` from the caller groups records as given. Otherwise a visit is one
visitor's events with gaps under the session timeout. Sessions are the connected runs of a
visitor's events ordered by time, so the grouping does not depend on arrival order:
historical replay, shuffled batches and live traffic give the same visits. An event that
lands between two runs joins them, and the later run is merged into the earlier.

Session ids are 64-bit; the top bit marks explicit sessions so the two kinds never mix.
"""

from __future__ import annotations

from collections import OrderedDict
from hashlib import blake2b

from footfall.event import Event
from footfall.store.base import SessionMerge, SessionSpan, Store, VisitorWindow

EXPLICIT_BIT = 1 << 63
_LOW_BITS = EXPLICIT_BIT - 1


def _hash64(text: str) -> int:
    return int.from_bytes(blake2b(text.encode("utf-8", "surrogatepass"), digest_size=8).digest(), "big")


def explicit_session_id(site_id: int, key: str) -> int:
    return _hash64(f"x\x00{site_id}\x00{key}") | EXPLICIT_BIT


def implicit_session_id(site_id: int, visitor_id: int, start_us: int) -> int:
    return _hash64(f"v\x00{site_id}\x00{visitor_id}\x00{start_us}") & _LOW_BITS


VisitorKey = tuple[int, int]  # (site_id, visitor_id)


class Sessionizer:
    """Assigns `session_id` to events; remembers recent visits, asks the store for the rest."""

    def __init__(self, store: Store, gap_us: int, max_visitors: int = 200_000) -> None:
        self.store = store
        self.gap_us = gap_us
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

    def assign(self, events: list[Event]) -> list[SessionMerge]:
        implicit: list[Event] = []
        for e in events:
            if e.session_key is not None:
                e.session_id = explicit_session_id(e.site_id, e.session_key)
            else:
                implicit.append(e)
        if not implicit:
            return []
        implicit.sort(key=lambda e: e.ts)
        self._load_missing(implicit)

        gap = self.gap_us
        remap: dict[int, int] = {}
        merges: list[SessionMerge] = []
        for e in implicit:
            key = (e.site_id, e.visitor_id)
            spans = self._spans[key]
            self._spans.move_to_end(key)
            near = [s for s in spans if s[0] - gap < e.ts < s[1] + gap]
            if not near:
                span = [e.ts, e.ts, implicit_session_id(e.site_id, e.visitor_id, e.ts)]
                spans.append(span)
            else:
                near.sort(key=lambda s: s[0])
                span = near[0]
                for other in near[1:]:
                    spans.remove(other)
                    remap[other[2]] = span[2]
                    merges.append(
                        SessionMerge(e.site_id, e.visitor_id, other[2], span[2], other[0], other[1])
                    )
                    span[1] = max(span[1], other[1])
                span[0] = min(span[0], e.ts)
                span[1] = max(span[1], e.ts)
            e.session_id = span[2]
        if remap:
            # A visit merged into one that was itself merged later ends in the last one.
            def final(session_id: int) -> int:
                while session_id in remap:
                    session_id = remap[session_id]
                return session_id

            for e in implicit:
                e.session_id = final(e.session_id)
            merges = [m._replace(new_session_id=final(m.new_session_id)) for m in merges]
        self._evict()
        return merges

    def _load_missing(self, implicit: list[Event]) -> None:
        """Load from the store the visits near this batch that the cache does not cover."""
        batch: dict[VisitorKey, tuple[int, int]] = {}
        for e in implicit:  # sorted by time, so the first event is the earliest
            key = (e.site_id, e.visitor_id)
            lo = batch[key][0] if key in batch else e.ts
            batch[key] = (lo, e.ts)
        wanted: list[VisitorWindow] = []
        for key, (lo, hi) in batch.items():
            covered = self._covered.get(key)
            if covered is None:
                wanted.append(VisitorWindow(key[0], key[1], lo, hi))
                continue
            # Ask only for the uncovered parts; together with the covered window they cover
            # the union, so the coverage stays one window per visitor.
            if lo < covered[0]:
                wanted.append(VisitorWindow(key[0], key[1], lo, covered[0]))
            if hi > covered[1]:
                wanted.append(VisitorWindow(key[0], key[1], covered[1], hi))
        if not wanted:
            return
        found: list[SessionSpan] = self.store.session_spans(wanted, self.gap_us)
        for w in wanted:
            key = (w.site_id, w.visitor_id)
            self._spans.setdefault(key, [])
            lo, hi = self._covered.get(key, (w.lo_us, w.hi_us))
            self._covered[key] = (min(lo, w.lo_us), max(hi, w.hi_us))
        for s in found:
            spans = self._spans[(s.site_id, s.visitor_id)]
            # A visit already cached is the same visit: this writer committed every change to it.
            if not any(known[2] == s.session_id for known in spans):
                spans.append([s.start_us, s.end_us, s.session_id])

    def _evict(self) -> None:
        while len(self._spans) > self.max_visitors:
            key, _ = self._spans.popitem(last=False)
            self._covered.pop(key, None)
