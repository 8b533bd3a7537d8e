"""Write batching: batches of concurrent writes, one writer at a time, failures shared."""

from __future__ import annotations

import threading
import time

import pytest
from eventsourcing.persistence import IntegrityError

from ledger.engine.batching import PendingWrite, WriteBatcher

JOIN_TIMEOUT_S = 10


class FakeStore:
    """Records batches; refuses a batch holding a write marked ``bad``; checks that no two
    batches are ever written at the same time (one leader)."""

    def __init__(self, *, write_s: float = 0.0) -> None:
        self.batches: list[list[PendingWrite]] = []
        self.write_s = write_s
        self.writing = threading.Lock()
        self.overlaps = 0

    def write(self, batch: list[PendingWrite]) -> None:
        if not self.writing.acquire(blocking=False):
            self.overlaps += 1
            self.writing.acquire()
        try:
            time.sleep(self.write_s)
            if any(getattr(w, "bad", False) for w in batch):
                raise IntegrityError("duplicate")
            self.batches.append(list(batch))
        finally:
            self.writing.release()


def make(store: FakeStore, command_lock: threading.Lock | None = None) -> WriteBatcher:
    lock = command_lock or threading.Lock()
    batcher: WriteBatcher

    def on_failure(batch: list[PendingWrite], error: BaseException) -> list[PendingWrite]:
        with lock:
            return batcher.drain()

    batcher = WriteBatcher(write=store.write, on_failure=on_failure)
    return batcher


def test_a_lone_write_is_written_by_its_own_thread_at_once() -> None:
    store = FakeStore()
    batcher = make(store)
    write = PendingWrite()
    batcher.enqueue(write)
    assert write.lead
    batcher.wait(write)
    assert write.done
    assert write.error is None
    assert store.batches == [[write]]


def test_concurrent_writes_share_batches_in_queue_order_with_one_writer_at_a_time() -> None:
    store = FakeStore(write_s=0.002)
    order_lock = threading.Lock()
    batcher = make(store)
    queued: list[PendingWrite] = []

    def command() -> None:
        for _ in range(25):
            write = PendingWrite()
            with order_lock:  # the application's command lock orders the queue
                batcher.enqueue(write)
                queued.append(write)
            batcher.wait(write)
            assert write.done

    threads = [threading.Thread(target=command) for _ in range(8)]
    for t in threads:
        t.start()
    for t in threads:
        t.join(JOIN_TIMEOUT_S)
    assert not any(t.is_alive() for t in threads)

    written = [w for batch in store.batches for w in batch]
    assert written == queued  # each write once, in the order it was queued
    assert store.overlaps == 0
    assert max(len(b) for b in store.batches) > 1  # waiting writes were grouped


def test_a_failed_batch_fails_its_writes_and_everything_queued_behind_it() -> None:
    store = FakeStore(write_s=0.2)
    batcher = make(store)
    bad, same_batch = PendingWrite(), PendingWrite()
    bad.bad = True  # type: ignore[attr-defined]
    batcher.enqueue(bad)
    batcher.enqueue(same_batch)
    errors: dict[str, BaseException] = {}

    def lead() -> None:
        try:
            batcher.wait(bad)
        except IntegrityError as e:
            errors["bad"] = e

    leader = threading.Thread(target=lead)
    leader.start()
    time.sleep(0.05)  # the leader is writing its batch now
    behind = PendingWrite()
    batcher.enqueue(behind)
    assert not behind.lead

    with pytest.raises(IntegrityError, match="duplicate"):
        batcher.wait(same_batch)
    with pytest.raises(IntegrityError, match="earlier write"):
        batcher.wait(behind)
    leader.join(JOIN_TIMEOUT_S)
    assert "duplicate" in str(errors["bad"])
    assert store.batches == []

    after = PendingWrite()
    batcher.enqueue(after)
    assert after.lead  # the lead was given back: the next write goes through
    batcher.wait(after)
    assert store.batches == [[after]]


def test_after_write_runs_once_per_durable_batch_before_its_writes_are_done() -> None:
    store = FakeStore(write_s=0.002)
    seen: list[tuple[int, bool]] = []  # (batch size, were its writes done already?)
    batcher: WriteBatcher

    def after_write(batch: list[PendingWrite]) -> None:
        seen.append((len(batch), any(w.done for w in batch)))

    def on_failure(batch: list[PendingWrite], error: BaseException) -> list[PendingWrite]:
        return batcher.drain()

    batcher = WriteBatcher(write=store.write, on_failure=on_failure, after_write=after_write)
    order_lock = threading.Lock()

    def command() -> None:
        for _ in range(20):
            write = PendingWrite()
            with order_lock:
                batcher.enqueue(write)
            batcher.wait(write)

    threads = [threading.Thread(target=command) for _ in range(6)]
    for t in threads:
        t.start()
    for t in threads:
        t.join(JOIN_TIMEOUT_S)
    assert [size for size, _ in seen] == [len(b) for b in store.batches]
    assert sum(size for size, _ in seen) == 120
    assert not any(done for _, done in seen)  # nobody returned before after_write


def test_after_write_is_not_called_for_a_failed_batch_and_its_failure_fails_nothing() -> None:
    store = FakeStore()
    calls: list[int] = []
    batcher: WriteBatcher

    def after_write(batch: list[PendingWrite]) -> None:
        calls.append(len(batch))
        raise RuntimeError("projection broke")

    def on_failure(batch: list[PendingWrite], error: BaseException) -> list[PendingWrite]:
        return batcher.drain()

    batcher = WriteBatcher(write=store.write, on_failure=on_failure, after_write=after_write)
    bad = PendingWrite()
    bad.bad = True  # type: ignore[attr-defined]
    batcher.enqueue(bad)
    with pytest.raises(IntegrityError):
        batcher.wait(bad)
    assert calls == []
    good = PendingWrite()
    batcher.enqueue(good)
    batcher.wait(good)  # after_write raised: logged, the durable write still succeeds
    assert good.done
    assert good.error is None
    assert calls == [1]


def test_a_writer_thread_writes_every_batch_and_tells_each_waiter_once() -> None:
    store = FakeStore(write_s=0.001)
    batcher = make(store)
    batcher.start_writer()
    try:
        told: list[PendingWrite] = []
        told_lock = threading.Lock()

        def tell(write: PendingWrite) -> None:
            with told_lock:
                told.append(write)

        writes = [PendingWrite() for _ in range(50)]
        for w in writes:
            batcher.enqueue(w)
            assert not w.lead  # nobody leads: the writer thread writes
            batcher.when_done(w, tell)
            batcher.when_done(w, tell)  # a second command waiting for the same write
        for w in writes:
            batcher.wait(w)  # a thread may still wait in the usual way
        deadline = time.monotonic() + JOIN_TIMEOUT_S
        while len(told) < 100 and time.monotonic() < deadline:
            time.sleep(0.01)
        assert sorted(map(id, told)) == sorted(map(id, writes * 2))
        assert [w for batch in store.batches for w in batch] == writes
        late: list[PendingWrite] = []
        batcher.when_done(writes[0], late.append)  # already done: told at once
        assert late == [writes[0]]
    finally:
        batcher.stop_writer()
    after = PendingWrite()
    batcher.enqueue(after)
    assert after.lead  # without the thread, commands lead their batches again
    batcher.wait(after)
    assert after.done
