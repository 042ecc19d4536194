"""Waking readers: the append signal, the inotify waiter and its polling fallback."""

from __future__ import annotations

import errno
import os
import subprocess
import sys
import threading
import time

import pytest

import strom
from strom.storage import notify
from strom.storage.notify import AppendSignal, InotifyWaiter, PollingWaiter, TailWaiter

SRC = os.path.join(os.path.dirname(__file__), "..", "..", "src")


def blocked(waiter: TailWaiter, timeout: float = 10.0) -> None:
    deadline = time.monotonic() + timeout
    while waiter.waiting == 0:
        assert time.monotonic() < deadline, "the waiter never blocked"
        time.sleep(0.001)


def wait_in_thread(waiter: TailWaiter, timeout: float) -> tuple[threading.Thread, list[float]]:
    took: list[float] = []

    def run() -> None:
        token = waiter.prepare()
        t0 = time.monotonic()
        waiter.wait(token, timeout)
        took.append(time.monotonic() - t0)

    thread = threading.Thread(target=run)
    thread.start()
    return thread, took


def test_signal_wait_returns_at_once_after_a_fire() -> None:
    signal = AppendSignal()
    seen = signal.seq
    signal.fire()
    t0 = time.monotonic()
    assert signal.wait(seen, 30) is True
    assert time.monotonic() - t0 < 5


def test_signal_wakes_a_waiting_thread_and_times_out_without_one() -> None:
    signal = AppendSignal()
    assert signal.wait(signal.seq, 0.01) is False
    waiter = TailWaiter(signal)
    thread, took = wait_in_thread(waiter, 30)
    blocked(waiter)
    signal.fire()
    thread.join(10)
    assert not thread.is_alive() and took[0] < 10


@pytest.mark.skipif(not sys.platform.startswith("linux"), reason="inotify is Linux's")
def test_inotify_waiter_wakes_on_a_write_by_another_process(tmp_path) -> None:
    waiter = notify.os_tail_waiter(AppendSignal())
    assert isinstance(waiter, InotifyWaiter)
    waiter.watch(str(tmp_path))
    thread, took = wait_in_thread(waiter, 30)
    blocked(waiter)
    target = tmp_path / "segment.log"
    subprocess.run([sys.executable, "-c", f"open({str(target)!r}, 'ab').write(b'x')"], check=True)
    thread.join(10)
    assert not thread.is_alive() and took[0] < 10
    waiter.close()


@pytest.mark.skipif(not sys.platform.startswith("linux"), reason="inotify is Linux's")
def test_inotify_waiter_ignores_unwatched_directories_and_prepare_drains(tmp_path) -> None:
    watched, other = tmp_path / "a", tmp_path / "b"
    watched.mkdir()
    other.mkdir()
    waiter = notify.os_tail_waiter(AppendSignal())
    waiter.watch(str(watched))
    (watched / "old").write_bytes(b"before")  # seen by the look after prepare(): drained
    token = waiter.prepare()
    (other / "f").write_bytes(b"x")
    t0 = time.monotonic()
    waiter.wait(token, 0.2)
    assert time.monotonic() - t0 >= 0.15
    waiter.unwatch(str(watched))
    waiter.close()


@pytest.mark.skipif(not sys.platform.startswith("linux"), reason="inotify is Linux's")
def test_wake_and_close_end_a_wait(tmp_path) -> None:
    waiter = notify.os_tail_waiter(AppendSignal())
    waiter.watch(str(tmp_path))
    thread, took = wait_in_thread(waiter, 30)
    blocked(waiter)
    waiter.wake()
    thread.join(10)
    assert not thread.is_alive()
    thread, took = wait_in_thread(waiter, 30)
    blocked(waiter)
    waiter.close()  # from another thread, mid-wait: the waiter lets go and releases
    thread.join(10)
    assert not thread.is_alive()
    waiter.close()  # idempotent
    waiter.wait(waiter.prepare(), 30)  # closed: returns at once


def test_no_inotify_falls_back_to_polling(monkeypatch) -> None:
    def refuse() -> notify.Inotify:
        raise OSError(errno.EMFILE, "too many inotify instances")

    monkeypatch.setattr(notify, "Inotify", refuse)
    waiter = notify.os_tail_waiter(AppendSignal())
    assert isinstance(waiter, PollingWaiter)
    t0 = time.monotonic()
    waiter.wait(waiter.prepare(), 30)  # returns after one poll interval, to look again
    assert time.monotonic() - t0 < 5


def test_polling_fallback_still_sees_another_process_append(tmp_path, monkeypatch) -> None:
    monkeypatch.setattr(notify, "Inotify", lambda: (_ for _ in ()).throw(OSError(errno.ENOSYS, "no")))
    with strom.open(tmp_path) as log:
        log.create_topic("t")
        consumer = strom.Consumer(log, "t", auto_offset_reset="earliest")
        assert isinstance(consumer._waiter, PollingWaiter)
        code = ("import strom, sys\n"
                f"with strom.open({str(tmp_path)!r}) as log:\n"
                "    log.partition('t', 0).append([b'from-child'], acks=1)\n")
        env = {**os.environ, "PYTHONPATH": SRC}
        subprocess.run([sys.executable, "-c", code], check=True, env=env)
        got = consumer.poll(timeout_ms=10_000)
        assert [r.value for rs in got.values() for r in rs] == [b"from-child"]
        consumer.close()


def test_a_dropped_consumer_does_not_leak_descriptors(tmp_path) -> None:
    with strom.open(tmp_path) as log:
        log.create_topic("t", partitions=3)
        before = len(os.listdir("/proc/self/fd")) if os.path.isdir("/proc/self/fd") else None
        for _ in range(200):  # above the usual per-user limit of 128 inotify instances
            consumer = strom.Consumer(log, "t")
            consumer.poll(timeout_ms=1)
            del consumer
        import gc
        gc.collect()
        if before is not None:
            assert len(os.listdir("/proc/self/fd")) <= before + 3
