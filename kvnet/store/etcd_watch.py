"""etcd's watch, made into `Store.wait_events`: one reconnecting watch stream and an in-memory log.

`EventLog` keeps one watch on the whole keyspace open from the revision it started at and appends
every event to a list (the last `keep` of them). When the stream breaks (a member was killed, the
cluster lost its leader) it reconnects, through any endpoint, from the revision after the last one
it saw, so nothing is lost or delivered twice. Long-polls are answered from that list: an agent's
watch costs no etcd watch of its own, and a put reaches waiting pollers as soon as etcd sends it.

Why the whole keyspace: every etcd revision is made by a write, so each revision has at least one
event there. Having seen revision R therefore proves that everything up to R has arrived, which is
how `wait_events(..., timeout=0)` knows it is complete without guessing with a sleep.

Revisions here are etcd's; `kvnet.store.etcd` maps them to kvnet's (etcd's = kvnet's + 1).
"""

from __future__ import annotations

import bisect
import json
import logging
import queue
import threading
import time
from collections.abc import Callable, Iterator

import grpc
from aetcd import rpc

from kvnet.store.base import Event

log = logging.getLogger("kvnet.store.etcd")
ALL_KEYS = b"\0"
RECONNECT_BACKOFF = (0.05, 1.0)


class StreamCompacted(Exception):
    def __init__(self, compact_revision: int) -> None:
        super().__init__(f"compacted at {compact_revision}")
        self.compact_revision = compact_revision


class StreamLost(grpc.RpcError):
    """The watch stream ended or was canceled by the server: reconnect."""

    def code(self) -> grpc.StatusCode:
        return grpc.StatusCode.UNAVAILABLE

    def details(self) -> str:
        return str(self)


class WatchStream:
    """One etcd watch over the whole keyspace from `start` (inclusive); iterate for responses."""

    def __init__(self, stub: rpc.WatchStub, start: int) -> None:
        self._requests: queue.Queue[rpc.WatchRequest | None] = queue.Queue()
        create = rpc.WatchCreateRequest(key=ALL_KEYS, range_end=ALL_KEYS, start_revision=start)
        self._requests.put(rpc.WatchRequest(create_request=create))
        self.call = stub.Watch(self._iter_requests(), wait_for_ready=True)

    def _iter_requests(self) -> Iterator[rpc.WatchRequest]:
        while (request := self._requests.get()) is not None:
            yield request

    def __iter__(self) -> Iterator[list[Event]]:
        """Event batches (one or more whole revisions each); StreamCompacted if `start` is gone."""
        for resp in self.call:
            if resp.compact_revision:
                raise StreamCompacted(resp.compact_revision)
            if resp.canceled:
                raise StreamLost(f"watch canceled by the server: {resp.cancel_reason}")
            if resp.events:
                yield [to_event(e) for e in resp.events]

    def close(self) -> None:
        self._requests.put(None)
        self.call.cancel()


def to_event(e: rpc.Event) -> Event:
    kv = e.kv
    if e.type == rpc.Event.EventType.DELETE:
        return Event("delete", kv.key.decode(), None, kv.mod_revision)
    return Event("put", kv.key.decode(), json.loads(kv.value), kv.mod_revision)


def read_history(stub: rpc.WatchStub, start: int, end: int, timeout: float) -> list[Event]:
    """Every event with start <= revision < end (etcd revisions; end - 1 must exist)."""
    if end - 1 < max(start, 2):  # revision 1 is etcd's empty initial state: it has no event
        return []
    stream = WatchStream(stub, start)
    timer = threading.Timer(timeout, stream.call.cancel)
    timer.start()
    events: list[Event] = []
    try:
        for batch in stream:
            events += [e for e in batch if e.revision < end]
            if batch[-1].revision >= end - 1:
                return events
    finally:
        timer.cancel()
        stream.close()
    raise StreamLost("watch stream ended before the history was read")


class EventLog:
    """The recent history of the whole keyspace, kept current by a reconnecting watch."""

    def __init__(self, stub: rpc.WatchStub, start: int, keep: int = 50_000) -> None:
        self._stub = stub
        self.keep = keep
        self._cond = threading.Condition()
        self._revs: list[int] = []
        self._events: list[Event] = []
        self.floor = start  # every event with revision >= floor is in the log (once it arrived)
        self.next = start  # the stream resumes from here: one past the last revision seen
        self.reconnects = 0
        self._stream: WatchStream | None = None
        self._closed = False
        self._thread = threading.Thread(target=self._run, name="etcd-watch", daemon=True)
        self._thread.start()

    # -- feeding --------------------------------------------------------------------------------
    def _run(self) -> None:
        backoff = RECONNECT_BACKOFF[0]
        while not self._closed:
            try:
                self._stream = WatchStream(self._stub, self.next)
                for batch in self._stream:
                    self._append(batch)
                    backoff = RECONNECT_BACKOFF[0]
            except StreamCompacted as exc:  # we were away longer than etcd keeps history
                log.warning("watch fell behind compaction at %d; callers before it re-list", exc.compact_revision)
                with self._cond:
                    self._revs, self._events = [], []
                    self.floor = self.next = exc.compact_revision
                    self._cond.notify_all()
            except grpc.RpcError as exc:
                if self._closed:
                    return
                log.info("etcd watch stream broke (%s); resuming from revision %d", exc, self.next)
            self.reconnects += 1
            time.sleep(backoff)  # reconnect pacing, not synchronisation
            backoff = min(backoff * 2, RECONNECT_BACKOFF[1])

    def _append(self, batch: list[Event]) -> None:
        with self._cond:
            for event in batch:
                if event.revision >= self.next:  # a reconnect resumes at `next`: never a duplicate
                    self._revs.append(event.revision)
                    self._events.append(event)
            self.next = max(self.next, batch[-1].revision + 1)
            if len(self._events) > 2 * self.keep:
                self._trim(len(self._events) - self.keep)
            self._cond.notify_all()

    def _trim(self, count: int) -> None:
        while count < len(self._revs) and self._revs[count] == self._revs[count - 1]:
            count += 1  # never split a revision
        self.floor = self._revs[count] if count < len(self._revs) else self.next
        del self._revs[:count], self._events[:count]

    def raise_floor(self, revision: int) -> None:
        """Forget events below `revision` (the store was compacted there)."""
        with self._cond:
            if revision > self.floor:
                self._trim(bisect.bisect_left(self._revs, revision))
                self.floor = max(self.floor, revision)

    # -- reading --------------------------------------------------------------------------------
    def wait(self, prefix: str, start: int, current: int, timeout: float, grace: float) -> list[Event] | None:
        """Events under `prefix` from `start` on: the first batch there is, or [] once `timeout`
        passed and everything up to `current` (the store's revision on entry) has arrived (waiting
        up to `grace` more for that). None when `start` is below the log's floor."""
        deadline = time.monotonic() + timeout
        matches: Callable[[Event], bool] = lambda e: e.key.startswith(prefix)  # noqa: E731
        with self._cond:
            while True:
                if start < self.floor:
                    return None
                found = [e for e in self._events[bisect.bisect_left(self._revs, start):] if matches(e)]
                now = time.monotonic()
                caught_up = self.next > current or current < 2  # etcd's revision 1 has no event
                if found or (now >= deadline and caught_up) or now >= deadline + grace:
                    return found
                self._cond.wait((deadline if now < deadline else deadline + grace) - now)

    def close(self) -> None:
        self._closed = True
        if self._stream is not None:
            self._stream.close()
