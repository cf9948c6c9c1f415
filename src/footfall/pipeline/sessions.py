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

from footfall.store.base import SessionKeys, SessionMerge, SessionSpan, Store, VisitorWindow

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
    """Assigns session ids to a batch; remembers recent visits, asks the store for the rest."""

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

    def assign(self, batch: SessionKeys) -> tuple[list[int], list[SessionMerge]]:
        """Session ids for the batch, in batch order, and the stored visits to merge."""
        sites, visitors, times, keys = batch
        ids = [0] * len(times)
        implicit: list[int] = []
        for i, key in enumerate(keys):
            if key is None:
                implicit.append(i)
            else:
                ids[i] = explicit_session_id(sites[i], key)
        if not implicit:
            return ids, []
        implicit.sort(key=times.__getitem__)
        touched = self._load_missing([(sites[i], visitors[i], times[i]) for i in implicit])

        gap = self.gap_us
        all_spans = self._spans
        remap: dict[int, int] = {}
        merges: list[SessionMerge] = []
        for i in implicit:
            site, visitor, ts = sites[i], visitors[i], times[i]
            spans = all_spans[(site, visitor)]
            near = [s for s in spans if s[0] - gap < ts < s[1] + gap]
            if not near:
                span = [ts, ts, implicit_session_id(site, visitor, ts)]
                spans.append(span)
            else:
                if len(near) > 1:
                    near.sort(key=lambda s: s[0])
                span = near[0]
                for other in near[1:]:
                    spans.remove(other)
                    remap[other[2]] = span[2]
                    merges.append(SessionMerge(site, visitor, other[2], span[2], other[0], other[1]))
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
                ids[i] = final(ids[i])
            merges = [m._replace(new_session_id=final(m.new_session_id)) for m in merges]
        for visitor_key in touched:  # recency once per visitor and batch, not once per event
            all_spans.move_to_end(visitor_key)
        self._evict()
        return ids, merges

    def _load_missing(self, implicit: list[tuple[int, int, int]]) -> dict[VisitorKey, tuple[int, int]]:
        """Load from the store the visits near this batch that the cache does not cover.

        `implicit` is (site, visitor, ts) sorted by time; returns each visitor's time window."""
        batch: dict[VisitorKey, tuple[int, int]] = {}
        for site, visitor, ts in implicit:  # sorted by time, so the first event is the earliest
            key = (site, visitor)
            known = batch.get(key)
            batch[key] = (ts, ts) if known is None else (known[0], ts)
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
            return batch
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
        return batch

    def _evict(self) -> None:
        while len(self._spans) > self.max_visitors:
            key, _ = self._spans.popitem(last=False)
            self._covered.pop(key, None)
