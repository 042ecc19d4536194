"""Consumer group benchmark: recovery from a member's kill -9, a new member's absorption, and the
throughput of the partitions that do not move while the group rebalances.

Plain script (STYLE.md habit 14): prints fixed-width tables with medians and
p90 over rounds, and the targets of the consumer-groups issue with PASS/MISS.

    python benchmarks/groups.py            # about a minute; writes results/groups-<date>.txt
    python benchmarks/groups.py --quick    # seconds-long smoke run (CI); writes nothing

Every process has its own Log on one data directory, as separate programs
would.  A producer process writes RECORDS_PER_TICK records to each of the
topic's PARTITIONS partitions every TICK_S (2,400 records/s, 100-byte
values, ``send_batch`` per partition, acks=1).  STEADY consumer processes
form the group for the whole run (cooperative-sticky, the default;
auto-commit every AUTO_COMMIT_MS, ``commit_acks=1``), each polling and
counting.  Then, each round:

1. join: a new consumer process starts, opens the log, constructs its
   Consumer (no topics yet) and waits; told to go, it takes the time,
   subscribes (which joins the group) and polls.  It is "absorbed" once
   it has handled a record of every partition it owns when the group has
   settled (every member consumes exactly its assignment).  Measured
   inside the new process, from just before ``subscribe`` to its first
   ``on_partitions_assigned`` and to that last first record: Python's
   start-up, imports and the Consumer's own set-up are not a group cost
   and stay out.
2. kill: once the group has been quiet for QUIET_S, this process sends
   SIGKILL to the new member.  Measured from just before the kill to the
   survivors' ``on_partitions_assigned`` of its partitions and to the first
   record of each of them handled by a survivor (the survivors resume from
   its last auto-commit, so records wait there).  The floor beside it,
   once a round under the same load: a process holding an flock is
   killed while this one waits in flock for it, which is what the OS
   takes to end a process and release its files.

Every consumer journals, with ``time.monotonic()`` (CLOCK_MONOTONIC: one
clock for every process on Linux), its assignment changes and, for each
poll that returned records, the time and the count per partition; the
figures come from those journals.  Throughput: the records/s handled of the
partitions that keep their owner through the rebalance, in the window from
the event (the new member's start; the kill) to WINDOW_S after it or to the
end of the rebalance if later, divided by their records/s in the QUIET_S
before it (for a join, before the new process was spawned, so that its
start-up is in neither window).  With a paced producer and consumers that
keep up, the ratio falls only if those partitions stop for a good part of
the window; the longest pause (the longest time without a record of one of
them) shows a shorter stop.

Expected figures, written down before the first run (2-vCPU VM, Python
3.11), from the path in strom/group/coordinator.py:

* kill -9: the kernel closes the dead member's file; inotify wakes the
  three survivors' watcher threads (~0.1 ms); the first to take the group
  lock probes the member files (a flock probe each), reconciles and writes
  the state (temp file + rename, ~0.3 ms); the rename wakes every watcher,
  which wakes its consumer thread in poll(); each claims its share under
  the lock (~0.5 ms each, one after another), runs the listener and fetches
  from the last auto-commit, where records wait.  About 2-5 ms median,
  10-20 ms p90 with two cores shared by five busy processes (a thread
  hand-off can wait for the GIL's 5 ms switch interval).  Target: median
  < 100 ms.
* join: the new member's file, lock and state entry (~1-2 ms); each
  current member wakes, revokes the partition it gives up (auto-commit of
  it, the listener) and releases it under the lock; the release hands it
  to the new member, whose watcher wakes its poll(), which claims it and
  fetches.  Its records wait from the revoke's commit, or come at the next
  tick (<= 5 ms).  About 5-15 ms to the last of its partitions consumed.
  Target: median < 100 ms.
* throughput: cooperative rebalancing revokes only the moving partitions;
  the others are polled throughout, so 0.95-1.05 of their rate before, and
  their longest pause about the same as before (one tick, 5 ms, plus
  scheduling: 10-20 ms).  Target: > 0.8.

Measured (results/groups-<date>.txt; a 2-vCPU VM shared with other
test runs, three full runs and several quick ones): join as expected,
12-20 ms median.  kill -9: 8-13 ms median to every partition consumed
again, 2-3 times the estimate, over an OS floor of ~2 ms.  A trace of
one kill (a timestamp at each step of coordinator.py in the survivors)
shows why: each state write wakes every member's watcher twice, at the
close of the temporary file (IN_CLOSE_WRITE on the group directory) and
at its rename, and each wake probes every member file and reconciles
(~0.3-0.5 ms of Python); those wakes compete for the two CPUs with the
member holding the lock, so a write under the lock took 2-6 ms instead
of a few tenths, and the three survivors' claims queue for the lock one
after another.

Internal: ``--child-consume``, ``--child-produce`` and ``--child-hold``
run this file as a consumer, the producer and the floor's lock holder;
they are not meant to be run by hand.
"""

from __future__ import annotations

import argparse
import fcntl
import itertools
import os
import signal
import statistics
import subprocess
import sys
import threading
import time
from bisect import bisect_left
from collections.abc import Callable

import storage as storage_bench  # benchmarks/storage.py: table helpers, machine facts

import strom
from strom.group.coordinator import GroupState, GroupStore

Table = storage_bench.Table
si = storage_bench.si

TOPIC = "bench"
GROUP = "bench-group"
PARTITIONS = 12
#: Members that stay for the whole run; each round a fourth joins and is killed.
STEADY = 3
VALUE_BYTES = 100
TICK_S = 0.005
RECORDS_PER_TICK = 1  # per partition
RATE = PARTITIONS * RECORDS_PER_TICK / TICK_S
AUTO_COMMIT_MS = 100
#: The throughput window after an event (longer if the rebalance takes longer).
WINDOW_S = 0.2
#: Quiet time before each event: the rate "before" is measured over it.
QUIET_S = 0.5
#: A rebalance that has not finished by then is a failure of the run.
DEADLINE_S = 20.0
#: How often this process looks at the journals and the group state while it waits.
LOOK_S = 0.005

TARGET_KILL_MS = 100
TARGET_JOIN_MS = 100
TARGET_THROUGHPUT = 0.8


# -- the child processes ---------------------------------------------------------------

def _say(line: str) -> None:
    sys.stdout.write(line + "\n")
    sys.stdout.flush()


def _on_stdin_line(then: Callable[[], None]) -> None:
    """Call ``then`` (in a thread) when a line or the end of input comes on stdin."""
    def wait() -> None:
        sys.stdin.readline()
        then()
    threading.Thread(target=wait, daemon=True).start()


class _Journal:
    def __init__(self, path: str) -> None:
        self.fd = os.open(path, os.O_WRONLY | os.O_CREAT | os.O_APPEND, 0o644)

    def write(self, line: str) -> None:
        os.write(self.fd, line.encode())  # no buffer in the process: survives kill -9


class _Listener(strom.ConsumerRebalanceListener):
    def __init__(self, journal: _Journal) -> None:
        self.journal = journal

    def _note(self, kind: str, tps: set[strom.TopicPartition]) -> None:
        t = time.monotonic()
        self.journal.write(f"{kind} {t:.6f} " + " ".join(str(tp.partition) for tp in sorted(tps))
                           + "\n")

    def on_partitions_assigned(self, assigned: set[strom.TopicPartition]) -> None:
        self._note("A", assigned)

    def on_partitions_revoked(self, revoked: set[strom.TopicPartition]) -> None:
        self._note("R", revoked)

    def on_partitions_lost(self, lost: set[strom.TopicPartition]) -> None:
        self._note("L", lost)


def child_consume(directory: str, journal_path: str) -> None:
    """A group member: journals ``S t`` (its start), A/R/L (assignment), ``B t p n ...`` (polls)."""
    journal = _Journal(journal_path)
    with strom.open(directory) as log:
        consumer = strom.Consumer(log, group_id=GROUP, auto_offset_reset="earliest",
                                  enable_auto_commit=True, auto_commit_interval_ms=AUTO_COMMIT_MS,
                                  commit_acks=1)
        _say("ready")
        sys.stdin.readline()
        t = time.monotonic()
        consumer.subscribe([TOPIC], listener=_Listener(journal))  # joins the group
        journal.write(f"S {t:.6f}\n")
        stop = threading.Event()

        def stop_now() -> None:
            stop.set()
            consumer.wakeup()
        _on_stdin_line(stop_now)
        while not stop.is_set():
            got = consumer.poll(timeout_ms=1000)
            if got:
                t = time.monotonic()
                journal.write(f"B {t:.6f} " + " ".join(f"{tp.partition} {len(rs)}"
                                                       for tp, rs in got.items()) + "\n")
        consumer.close()


def child_hold(path: str) -> None:
    """The floor's process: holds an exclusive flock on ``path`` (as a member holds its file)."""
    with open(path, "w") as f:
        fcntl.flock(f, fcntl.LOCK_EX)
        _say("ready")
        sys.stdin.readline()


def child_produce(directory: str) -> None:
    """The producer: RECORDS_PER_TICK records to every partition each TICK_S, until told to stop."""
    value = b"v" * VALUE_BYTES
    with strom.open(directory) as log:
        producer = strom.Producer(log, acks=1)
        producer.partitions_for(TOPIC)
        _say("ready")
        sys.stdin.readline()
        stop = threading.Event()
        _on_stdin_line(stop.set)
        values = [value] * RECORDS_PER_TICK
        due = time.monotonic()
        while not stop.is_set():
            for p in range(PARTITIONS):
                producer.send_batch(TOPIC, values, partition=p)
            due += TICK_S
            left = due - time.monotonic()
            if left > 0:
                time.sleep(left)
            elif left < -TICK_S:
                due = time.monotonic()  # fell behind (a stall): go on at the rate, no burst
        producer.close()


# -- this process: children, journals, the group state -----------------------------------

def child_env() -> dict[str, str]:
    env = dict(os.environ)
    src = os.path.dirname(os.path.dirname(os.path.abspath(strom.__file__)))
    env["PYTHONPATH"] = src + (os.pathsep + env["PYTHONPATH"] if env.get("PYTHONPATH") else "")
    return env


class Child:
    """This file run as a child process, started and waited on until it prints ``ready``."""

    def __init__(self, *args: str) -> None:
        self.proc = subprocess.Popen([sys.executable, os.path.abspath(__file__), *args],
                                     stdin=subprocess.PIPE, stdout=subprocess.PIPE,
                                     stderr=subprocess.PIPE, bufsize=0, env=child_env())
        line = self.proc.stdout.readline()
        if line.strip() != b"ready":
            self.proc.kill()
            _, err = self.proc.communicate()
            raise SystemExit(f"child {args[0]} failed: {err.decode(errors='replace')[-2000:]}")

    def tell(self, line: str) -> None:
        self.proc.stdin.write(line.encode() + b"\n")

    def finish(self, what: str) -> None:
        """Tell it to stop and wait for a clean exit."""
        try:
            self.tell("stop")
            _, err = self.proc.communicate(timeout=30)
        except (subprocess.TimeoutExpired, BrokenPipeError):
            self.proc.kill()
            _, err = self.proc.communicate()
        if self.proc.returncode != 0:
            raise SystemExit(f"{what}: child exited with {self.proc.returncode}: "
                             f"{err.decode(errors='replace')[-2000:]}")

    def kill(self) -> None:
        if self.proc.poll() is None:
            self.proc.kill()
        self.proc.communicate()


class Journal:
    """A consumer's journal, parsed as it grows."""

    def __init__(self, path: str) -> None:
        self.path = path
        self.start: float | None = None
        self.changes: list[tuple[float, str, list[int]]] = []  # (t, "A"/"R"/"L", partitions)
        #: Per partition: the times of the polls that returned its records, and their counts.
        self.times: dict[int, list[float]] = {p: [] for p in range(PARTITIONS)}
        self.counts: dict[int, list[int]] = {p: [] for p in range(PARTITIONS)}
        self._pos = 0
        self._partial = b""

    def read(self) -> None:
        try:
            with open(self.path, "rb") as f:
                f.seek(self._pos)
                data = f.read()
        except FileNotFoundError:
            return
        self._pos += len(data)
        *lines, self._partial = (self._partial + data).split(b"\n")
        for line in lines:
            kind, t, *rest = line.split()
            t = float(t)
            if kind == b"B":
                for i in range(0, len(rest), 2):
                    p = int(rest[i])
                    self.times[p].append(t)
                    self.counts[p].append(int(rest[i + 1]))
            elif kind == b"S":
                self.start = t
            else:
                self.changes.append((t, kind.decode(), [int(p) for p in rest]))

    def first_assigned(self, p: int, after: float) -> float | None:
        return next((t for t, kind, ps in self.changes if kind == "A" and t > after and p in ps),
                    None)

    def first_record(self, p: int, after: float) -> float | None:
        times = self.times[p]
        i = bisect_left(times, after)
        return times[i] if i < len(times) else None

    def handled(self, p: int, t0: float, t1: float) -> int:
        times = self.times[p]
        return sum(self.counts[p][bisect_left(times, t0):bisect_left(times, t1)])

    def longest_pause(self, p: int, t0: float, t1: float) -> float:
        times = self.times[p]
        inside = times[bisect_left(times, t0):bisect_left(times, t1)]
        return max(b - a for a, b in itertools.pairwise([t0, *inside, t1]))


class Group:
    """The group as this process sees it: the state file, and the members' journals."""

    def __init__(self, log: strom.Log, base: str) -> None:
        self.store = GroupStore(log, GROUP)
        self.base = base
        self.journals: dict[str, Journal] = {}  # by member id, once known
        self._made = 0

    def spawn(self, directory: str) -> tuple[Child, Journal]:
        path = os.path.join(self.base, f"member-{self._made}.journal")
        self._made += 1
        return Child("--child-consume", directory, "--journal", path), Journal(path)

    def read(self) -> None:
        """Take in what the members journaled since the last look."""
        for j in self.journals.values():
            j.read()

    def wait(self, condition: Callable[[GroupState], bool], what: str) -> GroupState:
        deadline = time.monotonic() + DEADLINE_S
        while True:
            self.read()
            state = self.store.read()
            if condition(state):
                return state
            if time.monotonic() > deadline:
                raise SystemExit(f"{what}: not within {DEADLINE_S} s; group state {state}")
            time.sleep(LOOK_S)

    def owners(self, state: GroupState) -> dict[int, str]:
        return {tp.partition: m for m, tps in state.owned.items() for tp in tps}


def settled(members: int) -> Callable[[GroupState], bool]:
    return lambda s: len(s.members) == members and s.settled() and all(
        s.owned.get(m) for m in s.members)


def throughput(journals: dict[str, Journal], kept: dict[int, str], before: tuple[float, float],
               during: tuple[float, float]) -> dict[str, float]:
    """Rate during / rate before of the ``kept`` partitions (partition -> its owner throughout)."""
    def rate(t0: float, t1: float) -> float:
        return sum(journals[m].handled(p, t0, t1) for p, m in kept.items()) / (t1 - t0)

    def pause(t0: float, t1: float) -> float:
        return max(journals[m].longest_pause(p, t0, t1) for p, m in kept.items())
    r0, r1 = rate(*before), rate(*during)
    return {"before": r0, "during": r1, "ratio": r1 / r0, "pause before": pause(*before),
            "pause during": pause(*during), "kept": len(kept)}


def kill_floor(base: str) -> float:
    """Seconds from SIGKILL of a process holding a flock to this one, blocked in flock, getting it.

    What the OS takes to end a Python process (strom imported) and release
    its files, and to wake a waiter, under the run's load: the part of a
    member's death that no group protocol can shorten.
    """
    path = os.path.join(base, "floor.lock")
    holder = Child("--child-hold", path)
    try:
        with open(path, "rb") as f:
            t = time.monotonic()
            holder.proc.send_signal(signal.SIGKILL)
            fcntl.flock(f, fcntl.LOCK_SH)
            return time.monotonic() - t
    finally:
        holder.kill()


def settle_until(t: float) -> None:
    left = t - time.monotonic()
    if left > 0:
        time.sleep(left)


class Run:
    """One benchmark run: the producer, the steady members, and the rounds' figures."""

    def __init__(self, log: strom.Log, directory: str, base: str) -> None:
        self.directory = directory
        self.base = base
        self.group = Group(log, base)
        self.children: list[Child] = []
        self.steady: set[str] = set()
        self.samples: dict[str, list[float]] = {}
        self.flows: dict[str, list[dict[str, float]]] = {"join": [], "kill": []}

    def note(self, name: str, x: float) -> None:
        self.samples.setdefault(name, []).append(x)

    def join(self) -> tuple[str, Child, Journal]:
        """A new member joins; returns its id, once it is known."""
        group = self.group
        child, journal = group.spawn(self.directory)
        self.children.append(child)
        known = set(group.store.read().members)
        child.tell("go")
        state = group.wait(lambda s: len(s.members) > len(known), "a member joining")
        member_id = (set(state.members) - known).pop()
        group.journals[member_id] = journal
        return member_id, child, journal

    def start(self) -> None:
        producer = Child("--child-produce", self.directory)
        self.children.append(producer)
        producer.tell("go")
        for _ in range(STEADY):
            self.steady.add(self.join()[0])
        self.group.wait(settled(STEADY), f"{STEADY} members settling")

    def round(self) -> None:
        """A join, then a kill of the new member."""
        group = self.group
        self.note("kill floor", kill_floor(self.base))
        settle_until(time.monotonic() + QUIET_S)  # the floor's process out of the way

        before = group.wait(settled(STEADY), "the group settling before a join")
        owners_before = group.owners(before)
        spawned = time.monotonic()
        new_id, joiner, journal = self.join()

        def absorbed(s: GroupState) -> bool:
            mine = [tp.partition for tp in s.owned.get(new_id, ())]
            return (settled(STEADY + 1)(s) and journal.start is not None
                    and all(journal.first_record(p, journal.start) for p in mine))
        after = group.wait(absorbed, "the new member consuming its partitions")
        start = journal.start
        assert start is not None
        mine = [tp.partition for tp in after.owned[new_id]]
        consumed = max(journal.first_record(p, start) for p in mine)
        self.note("join assigned", min(journal.first_assigned(p, start) for p in mine) - start)
        self.note("join consumed", consumed - start)
        window = max(WINDOW_S, consumed - start)
        settle_until(start + window + QUIET_S)
        group.read()
        owners_after = group.owners(group.store.read())
        kept = {p: m for p, m in owners_before.items() if owners_after.get(p) == m}
        self.flows["join"].append(throughput(group.journals, kept, (spawned - QUIET_S, spawned),
                                             (start, start + window)))
        self.kill(new_id, joiner)

    def kill(self, victim: str, child: Child) -> None:
        group = self.group
        state = group.wait(settled(STEADY + 1), "the group settling before a kill")
        theirs = [tp.partition for tp in state.owned[victim]]
        kept = {p: m for p, m in group.owners(state).items() if m != victim}
        killed = time.monotonic()
        child.proc.send_signal(signal.SIGKILL)
        child.proc.wait()

        def firsts(which: Callable[[Journal, int, float], float | None]) -> dict[int, float]:
            """Per partition of the dead member, the first time a survivor's journal shows it."""
            out = {}
            for p in theirs:
                times = [t for m in self.steady
                         if (t := which(group.journals[m], p, killed)) is not None]
                if times:
                    out[p] = min(times)
            return out
        group.wait(lambda s: (settled(STEADY)(s)
                              and len(firsts(Journal.first_record)) == len(theirs)),
                   "the survivors consuming the dead member's partitions")
        got, ate = firsts(Journal.first_assigned), firsts(Journal.first_record)
        self.note("kill assigned", max(got.values()) - killed)
        self.note("kill consumed", max(ate.values()) - killed)
        for t in ate.values():
            self.note("kill consumed, each partition", t - killed)
        window = max(WINDOW_S, max(ate.values()) - killed)
        settle_until(killed + window + QUIET_S)
        group.read()
        owners_after = group.owners(group.store.read())
        kept = {p: m for p, m in kept.items() if owners_after.get(p) == m}
        self.flows["kill"].append(throughput(group.journals, kept, (killed - QUIET_S, killed),
                                             (killed, killed + window)))
        del group.journals[victim]
        self.children.remove(child)
        child.kill()

    def finish(self) -> list[tuple[str, tuple[float, str, list[int]]]]:
        """Stop every child cleanly; returns the steady members' on_partitions_lost calls."""
        self.group.read()
        lost = [(m, c) for m, j in self.group.journals.items() for c in j.changes if c[1] == "L"]
        producer, *consumers = self.children
        for child in consumers:
            child.finish("consumer")
        producer.finish("producer")
        self.children.clear()
        return lost


def run(base: str, rounds: int) -> dict:
    directory = os.path.join(base, "data")
    with strom.open(directory) as log:
        log.create_topic(TOPIC, partitions=PARTITIONS)
        r = Run(log, directory, base)
        try:
            r.start()
            settle_until(time.monotonic() + QUIET_S)
            for _ in range(rounds):
                r.round()
            lost = r.finish()
        finally:
            for child in r.children:
                child.kill()
    return {"samples": r.samples, "flows": r.flows, "rounds": rounds, "lost": lost}


# -- output ----------------------------------------------------------------------

def percentile(xs: list[float], q: float) -> float:
    """Nearest-rank percentile."""
    s = sorted(xs)
    rank = -(-round(q * len(s) * 1000) // 1000)
    return s[max(0, min(len(s), rank) - 1)]


def ms(x: float) -> str:
    x *= 1000
    return f"{x:,.0f}" if x >= 10 else f"{x:.1f}"


def latency_table(res: dict) -> tuple[Table, list[str]]:
    s = res["samples"]
    t = Table(f"Table 1. rebalance latency in ms, {res['rounds']} round(s)",
              [("event: from -> to", "<"), ("n", ">"), ("median", ">"), ("p90", ">"),
               ("min", ">"), ("max", ">"), ("target", ">"), ("", "<")])
    rows = [
        ("floor: kill -9 -> a flock it held taken by a waiter", "kill floor", None),
        ("kill -9: kill -> its partitions assigned to survivors", "kill assigned", None),
        ("kill -9: kill -> every one of them consumed again", "kill consumed", TARGET_KILL_MS),
        ("kill -9: kill -> one partition consumed again", "kill consumed, each partition", None),
        ("join: subscribe -> first partition assigned", "join assigned", None),
        ("join: subscribe -> every one of its partitions consumed", "join consumed",
         TARGET_JOIN_MS),
    ]
    for label, name, target in rows:
        xs = s[name]
        med = statistics.median(xs)
        t.add(label, len(xs), ms(med), ms(percentile(xs, 0.9)), ms(min(xs)), ms(max(xs)),
              "" if target is None else f"median < {target}",
              "" if target is None else ("PASS" if med * 1000 < target else "MISS"))
    notes = [
        ("Times are time.monotonic() (CLOCK_MONOTONIC) in each process: a kill from just before "
         "os.kill in this process; a join from just before the new process's subscribe() (its "
         "Python start-up, imports and Consumer construction are not counted)."),
        ("'consumed again' = the first poll of a survivor that returned a record of the partition; "
         "the per-round rows take the last of the dead member's partitions (each partition: all "
         "of them, every round)."),
        ("floor: a process of this file (strom imported) holds an flock; this process kills it "
         "and blocks in flock until the OS has ended it and released its files: the part of a "
         "member's death no protocol can shorten, measured under the same load once a round."),
        (f"Survivors resume from the dead member's last auto-commit (every {AUTO_COMMIT_MS} ms), "
         "so records are waiting when they get the partition."),
    ]
    return t, notes


def throughput_table(res: dict) -> tuple[Table, list[str]]:
    flows = res["flows"]
    t = Table("Table 2. records/s of the partitions that keep their owner, during a rebalance vs "
              f"the {QUIET_S:.1f} s before, {res['rounds']} round(s)",
              [("rebalance", "<"), ("kept", ">"), ("before rec/s", ">"), ("during rec/s", ">"),
               ("during/before", ">"), ("min", ">"), ("pause before ms", ">"),
               ("pause during ms", ">"), ("target", ">"), ("", "<")])
    for label, name in (("join of a member", "join"), ("kill -9 of a member", "kill")):
        fs = flows[name]
        med = {key: statistics.median(f[key] for f in fs) for key in fs[0]}
        ratio = med["ratio"]
        t.add(label, f"{med['kept']:.0f}", si(med["before"]), si(med["during"]), f"{ratio:.2f}",
              f"{min(f['ratio'] for f in fs):.2f}", ms(med["pause before"]),
              ms(med["pause during"]), f"> {TARGET_THROUGHPUT}",
              "PASS" if ratio > TARGET_THROUGHPUT else "MISS")
    notes = [
        (f"during = from the event (the new member's subscribe; the kill) for "
         f"{WINDOW_S * 1000:.0f} ms, or to the end of the rebalance if later. before = the "
         "quiet time before it (for a join, before the new process was spawned). kept = "
         "partitions with the same owner before and after; medians over rounds, min = the "
         "lowest ratio of a round."),
        ("pause = the longest time without a record handled of a kept partition in the window "
         f"(a partition gets records every {TICK_S * 1000:.0f} ms); the median over rounds."),
        ("The producer is paced and the consumers keep up, so records/s during/before stays near 1 "
         "unless the kept partitions stop for a good part of the window."),
    ]
    if res["lost"]:
        notes.append(f"on_partitions_lost was called in a steady member: {res['lost'][:3]}")
    return t, notes


def header(args: argparse.Namespace, fs_kind: str, load: tuple[float, float, float]) -> list[str]:
    return [
        "strom consumer group benchmark"
        + (" (--quick: a smoke run; few rounds, figures indicative only)" if args.quick else ""),
        *storage_bench.machine_lines(fs_kind, args.dir is not None, load),
        (f"setup      topic of {PARTITIONS} partitions; a producer process at {RATE:,.0f} rec/s "
         f"({RECORDS_PER_TICK} record to each partition every {TICK_S * 1000:.0f} ms, "
         f"{VALUE_BYTES} B values, acks=1); {STEADY} consumer processes for the whole run, a "
         f"{STEADY + 1}th joining and killed each round; cooperative-sticky, auto-commit every "
         f"{AUTO_COMMIT_MS} ms, commit_acks=1"),
        (f"processes  {STEADY + 2} busy at a time (producer, {STEADY + 1} consumers) and this one "
         f"looking every {LOOK_S * 1000:.0f} ms, on {os.cpu_count()} logical CPUs"),
    ]


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    ap.add_argument("--quick", action="store_true",
                    help="seconds-long smoke run (CI); writes no results")
    ap.add_argument("--rounds", type=int, help="join-and-kill rounds (default 15; 2 with --quick)")
    ap.add_argument("--dir",
                    help="where the data goes (default: a new directory in the system temp)")
    ap.add_argument("--no-save", action="store_true", help="do not write results/groups-<date>.txt")
    ap.add_argument("--child-consume", help=argparse.SUPPRESS)
    ap.add_argument("--child-produce", help=argparse.SUPPRESS)
    ap.add_argument("--child-hold", help=argparse.SUPPRESS)
    ap.add_argument("--journal", help=argparse.SUPPRESS)
    args = ap.parse_args()
    if args.child_consume:
        child_consume(args.child_consume, args.journal)
        return
    if args.child_produce:
        child_produce(args.child_produce)
        return
    if args.child_hold:
        child_hold(args.child_hold)
        return

    rounds = args.rounds or (2 if args.quick else 15)
    started = time.perf_counter()
    load = os.getloadavg()
    with storage_bench.scratch_dir(args.dir) as (base, fs_kind):
        res = run(base, rounds)
    elapsed = time.perf_counter() - started

    t1, notes1 = latency_table(res)
    t2, notes2 = throughput_table(res)
    head = header(args, fs_kind, load)
    text = "\n\n".join(["\n".join(head), t1.text() + "\n" + "\n".join("  " + s for s in notes1),
                        t2.text() + "\n" + "\n".join("  " + s for s in notes2),
                        f"elapsed {elapsed:.1f} s"])
    print(text)
    if not args.quick and not args.no_save:
        path = storage_bench.results_stem("groups") + ".txt"
        with open(path, "w") as f:
            f.write(text + "\n")
        print(f"\nwrote {os.path.relpath(path, os.getcwd())}")


if __name__ == "__main__":
    main()
