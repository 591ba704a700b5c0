"""The etcd store: the `Store` interface on an etcd v3 cluster (several endpoints, failover).

- `commit` is one etcd Txn: compares on mod_revision, then every put/delete. All or nothing; a failed
  compare is `RetryableConflict`. When the connection breaks after a Txn was sent, its outcome is
  unknown: the store reads the written keys back, returns the revision if the Txn landed and resends
  it otherwise (its compares make sure at most one copy can ever apply), so a write happens once.
- `range` lists by prefix in pages, every page read at the revision of the first one.
- `wait_events` is served by one reconnecting watch per process (`kvnet.store.etcd_watch`).
- `lease_put` binds a key to a lease (host liveness): the key vanishes `ttl` seconds after the last call.

etcd's first revision (the empty store) is 1, kvnet's is 0: kvnet revision = etcd revision - 1, so
both engines number their history the same way. Talks gRPC through the protobuf stubs that aetcd
ships, on a synchronous channel (no event loop needed); reads and writes retry through another
endpoint until `timeout`, then fail with `StoreUnavailable` (HTTP 503).
"""

from __future__ import annotations

import json
import threading
import time
from collections.abc import Callable
from typing import TypeVar

import grpc
from aetcd import rpc

from kvnet.errors import Compacted, InvalidInput, KvnetError, RetryableConflict
from kvnet.store.base import Compare, Delete, Entry, Event, Op, Put, Store, prefix_end
from kvnet.store.etcd_watch import EventLog, StreamCompacted, read_history

OFFSET = 1  # etcd revision = kvnet revision + OFFSET
PAGE = 1000
RETRY = (grpc.StatusCode.UNAVAILABLE, grpc.StatusCode.DEADLINE_EXCEEDED, grpc.StatusCode.UNKNOWN,
         grpc.StatusCode.CANCELLED)
CHANNEL_OPTIONS = [("grpc.initial_reconnect_backoff_ms", 50), ("grpc.min_reconnect_backoff_ms", 50),
                   ("grpc.max_reconnect_backoff_ms", 500), ("grpc.keepalive_time_ms", 10_000),
                   ("grpc.keepalive_timeout_ms", 3_000)]
T = TypeVar("T")


class StoreUnavailable(KvnetError):
    """No etcd member answered in time: the cluster is down or has no quorum; retry later."""

    status = 503


class EtcdStore(Store):
    def __init__(self, endpoints: list[str], *, timeout: float = 10.0, attempt_timeout: float = 2.0) -> None:
        self.endpoints = endpoints
        self.timeout = timeout
        self.attempt_timeout = attempt_timeout
        self._channel = grpc.insecure_channel("ipv4:" + ",".join(endpoints), options=CHANNEL_OPTIONS)
        self._kv = rpc.KVStub(self._channel)
        self._watch = rpc.WatchStub(self._channel)
        self._lease = rpc.LeaseStub(self._channel)
        self._log: EventLog | None = None
        self._log_lock = threading.Lock()
        self._leases: dict[str, int] = {}
        self._compacted = 0

    # -- plumbing -------------------------------------------------------------------------------
    def _retry(self, call: Callable[[], T], what: str, on_error: Callable[[], T | None] | None = None) -> T:
        """`call` until it answers; on a connection-level error wait for another endpoint, until
        `timeout`. `on_error` (for writes) says whether the failed attempt had landed after all."""
        deadline = time.monotonic() + self.timeout
        backoff = 0.02
        while True:
            try:
                return call()
            except grpc.RpcError as exc:
                if _code(exc) not in RETRY:
                    raise
                last = exc
            if on_error is not None:
                try:
                    landed = on_error()
                except grpc.RpcError:
                    landed = None
                if landed is not None:
                    return landed
            if time.monotonic() + backoff > deadline:
                raise StoreUnavailable(f"etcd at {','.join(self.endpoints)} did not answer {what} within "
                                       f"{self.timeout:.0f}s ({_details(last)}); retry later")
            time.sleep(backoff)  # pacing between attempts, not synchronisation
            backoff = min(backoff * 2, 0.5)

    def _range(self, **fields: object) -> rpc.RangeResponse:
        request = rpc.RangeRequest(**fields)
        return self._retry(lambda: self._kv.Range(request, timeout=self.attempt_timeout, wait_for_ready=True),
                           "a read")

    # -- reads ----------------------------------------------------------------------------------
    def get(self, key: str) -> Entry | None:
        resp = self._range(key=key.encode())
        return _entry(resp.kvs[0]) if resp.kvs else None

    def range(self, prefix: str) -> tuple[list[Entry], int]:
        kvs, revision = self._pages(prefix, keys_only=False)
        return [_entry(kv) for kv in kvs], revision - OFFSET

    def keys(self, prefix: str) -> list[str]:
        return [kv.key.decode() for kv in self._pages(prefix, keys_only=True)[0]]

    def _pages(self, prefix: str, keys_only: bool) -> tuple[list[rpc.KeyValue], int]:
        """Every key under `prefix`, PAGE at a time, all read at one pinned revision."""
        while True:
            kvs: list[rpc.KeyValue] = []
            start, end, revision = prefix.encode(), prefix_end(prefix).encode(), 0
            try:
                while True:
                    resp = self._range(key=start, range_end=end, limit=PAGE, revision=revision, keys_only=keys_only)
                    revision = revision or resp.header.revision
                    kvs += resp.kvs
                    if not resp.more or not resp.kvs:
                        return kvs, revision
                    start = resp.kvs[-1].key + b"\0"
            except grpc.RpcError as exc:
                if _code(exc) != grpc.StatusCode.OUT_OF_RANGE:
                    raise
                # the pinned revision was compacted between two pages: list again from scratch

    def revision(self) -> int:
        return self._range(key=b"\0", count_only=True).header.revision - OFFSET

    def compact_revision(self) -> int:
        """The newest compaction this process made or was told about (etcd does not report it)."""
        return self._compacted

    # -- writes ---------------------------------------------------------------------------------
    def commit(self, compares: list[Compare], ops: list[Op]) -> int:
        request = rpc.TxnRequest(compare=[_compare(c) for c in compares], success=[_request_op(op) for op in ops])
        lost = False  # an earlier attempt was sent but its answer lost: it may have landed

        def attempt() -> rpc.TxnResponse:
            nonlocal lost
            try:
                return self._kv.Txn(request, timeout=self.attempt_timeout, wait_for_ready=True)
            except grpc.RpcError:
                lost = True
                raise

        resp = self._retry(attempt, "a write", on_error=lambda: self._landed(ops))
        if isinstance(resp, int):
            return resp
        if resp.succeeded:
            return resp.header.revision - OFFSET
        landed = self._landed(ops) if lost else None
        if landed is not None:
            return landed
        raise RetryableConflict(f"another writer changed {', '.join(sorted({c.key for c in compares}))} "
                                "since this transaction read it; nothing was written; retry")

    def _landed(self, ops: list[Op]) -> int | None:
        """After a lost answer: the revision of our Txn if its effects are all there, else None."""
        revisions = set()
        for op in ops:
            entry = self._get_once(op.key)
            if isinstance(op, Put):
                if entry is None or entry.value != op.value:
                    return None
                revisions.add(entry.mod_revision)
            elif entry is not None:
                return None
        if len(revisions) > 1:
            return None
        return revisions.pop() if revisions else self.revision()

    def _get_once(self, key: str) -> Entry | None:
        resp = self._kv.Range(rpc.RangeRequest(key=key.encode()), timeout=self.attempt_timeout, wait_for_ready=True)
        return _entry(resp.kvs[0]) if resp.kvs else None

    def compact(self, revision: int) -> None:
        """Forget the history below `revision` (etcd Compact, physical)."""
        request = rpc.CompactionRequest(revision=revision + OFFSET, physical=True)
        try:
            self._retry(lambda: self._kv.Compact(request, timeout=self.timeout, wait_for_ready=True), "a compaction")
        except grpc.RpcError as exc:
            if _code(exc) != grpc.StatusCode.OUT_OF_RANGE:
                raise
            if "future" in _details(exc):
                raise InvalidInput(f"cannot compact at {revision}: it is past the current revision") from None
        self._compacted = max(self._compacted, revision)
        if self._log is not None:
            self._log.raise_floor(revision + OFFSET)

    # -- leases ---------------------------------------------------------------------------------
    def lease_put(self, key: str, value: dict[str, object], ttl: int) -> None:
        """Keep `key` alive for `ttl` more seconds: refresh its lease, or put it with a new one."""
        lease = self._leases.get(key)
        if lease is None:
            entry = self._range(key=key.encode())
            lease = entry.kvs[0].lease if entry.kvs else 0
        if lease and self._keepalive(lease) > 0:
            self._leases[key] = lease
            return
        grant = self._retry(lambda: self._lease.LeaseGrant(rpc.LeaseGrantRequest(TTL=ttl),
                                                           timeout=self.attempt_timeout, wait_for_ready=True),
                            "a lease grant")
        put = rpc.PutRequest(key=key.encode(), value=_encode(value), lease=grant.ID)
        self._retry(lambda: self._kv.Put(put, timeout=self.attempt_timeout, wait_for_ready=True), "a write")
        self._leases[key] = grant.ID

    def _keepalive(self, lease: int) -> int:
        """The lease's new TTL after one keepalive (0: it had expired)."""
        def once() -> int:
            responses = self._lease.LeaseKeepAlive(iter([rpc.LeaseKeepAliveRequest(ID=lease)]),
                                                   timeout=self.attempt_timeout, wait_for_ready=True)
            return next(iter(responses)).TTL
        return self._retry(once, "a lease keepalive")

    # -- watch ----------------------------------------------------------------------------------
    def wait_events(self, prefix: str, from_revision: int, timeout: float) -> list[Event]:
        start = from_revision + OFFSET
        current = self.revision() + OFFSET
        log = self._event_log(start, current)
        while True:
            events = log.wait(prefix, start, current, timeout, grace=self.timeout)
            if events is not None:
                return [_kvnet_event(e) for e in events]
            older = [e for e in self._history(start, log.floor) if e.key.startswith(prefix)]
            if older:
                return [_kvnet_event(e) for e in older]
            start = log.floor

    def _event_log(self, start: int, current: int) -> EventLog:
        with self._log_lock:
            if self._log is None:
                # from the first caller's revision (or the last 1000): older callers read history
                self._log = EventLog(self._watch, min(max(start, current + 1 - 1000), current + 1))
            return self._log

    def _history(self, start: int, end: int) -> list[Event]:
        try:
            return self._retry(lambda: read_history(self._watch, start, end, self.attempt_timeout), "a watch")
        except StreamCompacted as exc:
            self._compacted = max(self._compacted, exc.compact_revision - OFFSET)
            raise Compacted(f"revision {start - OFFSET} is compacted (oldest kept: "
                            f"{exc.compact_revision - OFFSET}); re-list and watch from the list's revision + 1",
                            exc.compact_revision - OFFSET) from None

    def close(self) -> None:
        if self._log is not None:
            self._log.close()
        self._channel.close()


def _code(exc: grpc.RpcError) -> grpc.StatusCode:
    code = getattr(exc, "code", None)
    return code() if callable(code) else grpc.StatusCode.UNAVAILABLE


def _details(exc: grpc.RpcError) -> str:
    details = getattr(exc, "details", None)
    return (details() if callable(details) else str(exc)) or ""


def _encode(value: dict[str, object]) -> bytes:
    return json.dumps(value, separators=(",", ":")).encode()


def _entry(kv: rpc.KeyValue) -> Entry:
    return Entry(key=kv.key.decode(), value=json.loads(kv.value), mod_revision=kv.mod_revision - OFFSET,
                 create_revision=kv.create_revision - OFFSET)


def _kvnet_event(e: Event) -> Event:
    return Event(e.type, e.key, e.value, e.revision - OFFSET)


def _compare(c: Compare) -> rpc.Compare:
    if c.range_end is None:  # mod_revision 0 (absent) is 0 in etcd too
        return rpc.Compare(result=rpc.Compare.EQUAL, target=rpc.Compare.MOD, key=c.key.encode(),
                           mod_revision=c.mod_revision + OFFSET if c.mod_revision else 0)
    return rpc.Compare(result=rpc.Compare.LESS, target=rpc.Compare.MOD, key=c.key.encode(),
                       range_end=c.range_end.encode(), mod_revision=c.mod_revision + OFFSET)


def _request_op(op: Op) -> rpc.RequestOp:
    if isinstance(op, Put):
        return rpc.RequestOp(request_put=rpc.PutRequest(key=op.key.encode(), value=_encode(op.value)))
    assert isinstance(op, Delete)
    return rpc.RequestOp(request_delete_range=rpc.DeleteRangeRequest(key=op.key.encode()))
