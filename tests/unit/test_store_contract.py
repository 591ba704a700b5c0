"""The store contract: every engine must pass these unchanged (SQLite, and a real 3-member etcd cluster,
fresh for each test so that its history starts empty, when etcd is installed)."""

from __future__ import annotations

import shutil
import threading
from collections.abc import Callable, Iterator
from pathlib import Path

import pytest

from kvnet.errors import Compacted, RetryableConflict
from kvnet.store.base import Compare, Delete, Put, Store, prefix_end
from kvnet.store.sqlite import SQLiteStore
from kvnet.store.txn import Txn, transact

StoreFactory = Callable[[], Store]


@pytest.fixture(params=["sqlite", "etcd"])
def store(request: pytest.FixtureRequest, tmp_path: Path) -> Iterator[Store]:
    if request.param == "sqlite":
        engine: Store = SQLiteStore(tmp_path / "contract.db")
        yield engine
        engine.close()
        return
    if shutil.which("etcd") is None:
        pytest.skip("etcd is not installed (apt-get install etcd-server)")
    from kvnet.etcd.cluster import running_cluster
    from kvnet.store.etcd import EtcdStore

    with running_cluster(tmp_path / "etcd", 3) as cluster:
        engine = EtcdStore(cluster.endpoints)
        try:
            yield engine
        finally:
            engine.close()


def test_prefix_end() -> None:
    assert prefix_end("/kvnet/ports/") == "/kvnet/ports0"


def test_commit_bumps_one_revision_shared_by_all_keys(store: Store) -> None:
    rev = store.commit([], [Put("/t/a", {"v": 1}), Put("/t/b", {"v": 2})])
    assert rev == 1
    a, b = store.get("/t/a"), store.get("/t/b")
    assert a and b and a.mod_revision == b.mod_revision == rev
    rev2 = store.commit([], [Put("/t/a", {"v": 3})])
    a = store.get("/t/a")
    assert rev2 == 2 and a and a.mod_revision == 2 and a.create_revision == 1 and a.value == {"v": 3}


def test_failed_compare_writes_nothing(store: Store) -> None:
    store.commit([], [Put("/t/a", {"v": 1})])
    with pytest.raises(RetryableConflict):
        store.commit([Compare("/t/a", 0)], [Put("/t/a", {"v": 2}), Put("/t/b", {"v": 2})])
    assert store.get("/t/b") is None
    a = store.get("/t/a")
    assert a and a.value == {"v": 1}
    assert store.revision() == 1


def test_range_compare_catches_new_keys(store: Store) -> None:
    _, rev = store.range("/t/")
    store.commit([], [Put("/t/x", {})])
    with pytest.raises(RetryableConflict):
        store.commit([Compare("/t/", rev + 1, range_end=prefix_end("/t/"))], [Put("/u/y", {})])


def test_range_is_sorted_and_scoped(store: Store) -> None:
    store.commit([], [Put("/t/b", {}), Put("/t/a", {}), Put("/u/c", {}), Put("/t0", {})])
    entries, rev = store.range("/t/")
    assert [e.key for e in entries] == ["/t/a", "/t/b"]
    assert rev == store.revision()


def test_watch_orders_events_and_resumes_from_revision(store: Store) -> None:
    for i in range(5):
        store.commit([], [Put(f"/w/{i}", {"i": i})])
    store.commit([], [Delete("/w/0")])
    events = store.wait_events("/w/", 1, timeout=0)
    assert [e.revision for e in events] == [1, 2, 3, 4, 5, 6]
    assert events[-1].type == "delete" and events[-1].key == "/w/0" and events[-1].value is None
    resumed = store.wait_events("/w/", 4, timeout=0)
    assert [(e.revision, e.key) for e in resumed] == [(4, "/w/3"), (5, "/w/4"), (6, "/w/0")]


def test_watch_wakes_on_commit_from_another_thread(store: Store) -> None:
    start = store.revision() + 1
    writer = threading.Timer(0.1, lambda: store.commit([], [Put("/w/late", {})]))
    writer.start()
    events = store.wait_events("/w/", start, timeout=5)
    writer.join()
    assert [e.key for e in events] == ["/w/late"]


def test_watch_times_out_empty(store: Store) -> None:
    assert store.wait_events("/nothing/", store.revision() + 1, timeout=0.05) == []


def test_delete_of_missing_key_is_not_an_event(store: Store) -> None:
    rev = store.commit([], [Delete("/t/missing")])
    assert store.wait_events("/t/", rev, timeout=0) == []


def test_compacted_history_raises_with_the_oldest_kept_revision(store: Store) -> None:
    for i in range(10):
        store.commit([], [Put(f"/c/{i}", {})])
    store.compact(6)
    with pytest.raises(Compacted) as info:
        store.wait_events("/c/", 3, timeout=0)
    assert info.value.compact_revision == 6
    assert [e.revision for e in store.wait_events("/c/", 6, timeout=0)] == [6, 7, 8, 9, 10]


def test_transact_aborts_without_writing_on_error(store: Store) -> None:
    def failing(txn: Txn) -> None:
        txn.put("/t/a", {})
        raise ValueError("rule broken")

    with pytest.raises(ValueError):
        transact(store, failing)
    assert store.get("/t/a") is None and store.revision() == 0


def test_concurrent_transactions_never_lose_an_increment(store: Store) -> None:
    store.commit([], [Put("/t/counter", {"n": 0})])

    def increment(txn: Txn) -> None:
        value = txn.get("/t/counter")
        assert value is not None
        txn.put("/t/counter", {"n": value["n"] + 1})

    threads = [threading.Thread(target=lambda: [transact(store, increment) for _ in range(20)]) for _ in range(8)]
    for t in threads:
        t.start()
    for t in threads:
        t.join()
    counter = store.get("/t/counter")
    assert counter and counter.value == {"n": 160}


def test_optimistic_conflict_is_detected_without_the_write_lock(store: Store) -> None:
    """What etcd relies on: a read that another writer invalidated makes the commit fail."""
    store.commit([], [Put("/t/a", {"v": 1})])
    txn = Txn(store)
    assert txn.get("/t/a") == {"v": 1}
    store.commit([], [Put("/t/a", {"v": 2})])
    txn.put("/t/a", {"v": 10})
    with pytest.raises(RetryableConflict):
        txn.commit()
