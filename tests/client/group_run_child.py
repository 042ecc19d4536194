"""Handlers for ConsumerGroup.run() tests, and a child process that runs a group until SIGINT.

The handlers are module-level classes, so that run() can pickle them and
its worker processes import this module by name (tests/client is on the
workers' sys.path, which spawn copies from the parent).  Each copies the
records it handles to an output topic with a Producer, flushing before it
returns, so that an output record exists for every input record handled
before the worker committed: the output is the test's record of what was
handled, at least once.

``python group_run_child.py DATA GROUP TOPIC OUT PROCESSES``
    runs ``ConsumerGroup(log, GROUP).run(TOPIC, CopyTo(DATA, OUT), PROCESSES)``
    with no idle timeout, printing ``running`` first; on SIGINT (the
    KeyboardInterrupt propagates out of run()) it prints ``done <json>``
    with the group's lag per partition and its state.
"""

from __future__ import annotations

import json
import os
import signal
import sys
from typing import Any

import strom

#: One Producer per log path in each worker process (made at first use).
_producers: dict[str, tuple[strom.Log, strom.Producer]] = {}


def _producer(path: str) -> strom.Producer:
    if path not in _producers:
        log = strom.open(path)
        _producers[path] = (log, strom.Producer(log, acks=1, linger_ms=0))
    return _producers[path][1]


class CopyTo:
    """A batch handler: sends each record's value to topic ``out``, and flushes."""

    def __init__(self, path: str, out: str) -> None:
        self.path = path
        self.out = out

    def __call__(self, records: list[Any]) -> None:
        producer = _producer(self.path)
        for r in records:
            producer.send(self.out, r.value)
        producer.flush()


class CopyAndDieOnce:
    """A per-record handler: copies the record, and at value ``die_at`` the first worker
    there (the one that creates ``marker``) kills itself with SIGKILL before committing."""

    def __init__(self, path: str, out: str, marker: str, die_at: bytes) -> None:
        self.path = path
        self.out = out
        self.marker = marker
        self.die_at = die_at

    def __call__(self, record: Any) -> None:
        producer = _producer(self.path)
        producer.send(self.out, record.value)
        producer.flush()
        if record.value == self.die_at:
            try:
                os.close(os.open(self.marker, os.O_CREAT | os.O_EXCL | os.O_WRONLY))
            except FileExistsError:
                return  # died here once already
            os.kill(os.getpid(), signal.SIGKILL)


class FailAt:
    """A per-record handler that copies records and raises ValueError at value ``bad``."""

    def __init__(self, path: str, out: str, bad: bytes) -> None:
        self.path = path
        self.out = out
        self.bad = bad

    def __call__(self, record: Any) -> None:
        if record.value == self.bad:
            raise ValueError(f"cannot handle {record.value!r}")
        producer = _producer(self.path)
        producer.send(self.out, record.value)
        producer.flush()


def main(path: str, group_id: str, topic: str, out: str, processes: int) -> None:
    with strom.open(path) as log:
        group = strom.ConsumerGroup(log, group_id)
        print("running", flush=True)
        try:
            group.run(topic, CopyTo(path, out), processes, batch=True)
        except KeyboardInterrupt:
            lag = {f"{tp.topic}-{tp.partition}": [v.committed, v.end_offset]
                   for tp, v in group.lag().items()}
            print("done " + json.dumps({"lag": lag, "state": group.describe().state}), flush=True)
            return
        raise AssertionError("run() returned without an interrupt")


if __name__ == "__main__":
    main(sys.argv[1], sys.argv[2], sys.argv[3], sys.argv[4], int(sys.argv[5]))
