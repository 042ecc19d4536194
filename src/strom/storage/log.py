"""The Log: a data directory of topics, each a folder of partitions.

Layout (docs/format.md has every byte)::

    data/
      ~strom.json             marker: format version, creation time
      ~strom.lock             flock taken to create, alter or delete topics
      orders/                 one folder per topic, named as the topic
        topic.json            partitions, config overrides, topic id
        0/  1/  2/            one folder per partition (see partition.py)

Topic names follow Kafka's rule (``[A-Za-z0-9._-]``), so every name holding
``~`` is strom's own: the marker files, and the transient folders
``~creating~<id>`` and ``~deleted~<id>``.  A topic is created
whole in a ``~creating~`` folder and renamed into place, and deleted by
renaming it aside first, so a crash never leaves half a topic under a real
name; leftovers are removed at the next open.

``strom.open(":memory:")`` keeps the same layout in a private
:class:`~strom.storage.memfs.MemoryFileSystem`, under the path
``/:memory:`` of that tree (``Log.path``); it vanishes with the Log.

Several processes may open one directory.  Each sees topics that others
create or delete at its next :meth:`Log.topics` (or a lookup of an unknown
name), and config changes when topic.json changes.
"""

from __future__ import annotations

import os
import threading
import uuid
from typing import Any, Iterator, Mapping

from ..clock import Clock, SystemClock
from ..config import MAX_PARTITIONS, TopicConfig, validate_topic_name
from ..errors import (CorruptMetadataError, IllegalArgumentError, InvalidConfigError,
                      LogClosedError, StorageError, StromError, TopicExistsError,
                      UnknownTopicOrPartitionError)
from ..progress import progress_callback
from ..records import TopicDescription, TopicInfo
from .checkpoint import read_meta, write_meta
from .cleaner import DEFAULT_BACKOFF_MS, DEFAULT_MAX_KEYS, Cleaner, CleanResult, clean_partition
from .fs import OS_FS, FileSystem
from .memfs import MemoryFileSystem
from .notify import AppendSignal, TailWaiter
from .partition import Partition
from .segment import ReaderCache, segment_name

__all__ = ["Log", "Topic", "open_log", "FORMAT_VERSION", "MEMORY", "MEMORY_PATH"]

FORMAT_VERSION = 1
#: The path that asks for a private in-memory log (sqlite3's name for the same idea).
MEMORY = ":memory:"
#: Where a ":memory:" log lives inside its own memory tree (shown as ``Log.path``).
MEMORY_PATH = "/:memory:"
LOG_META = "~strom.json"
LOG_LOCK = "~strom.lock"
TOPIC_META = "topic.json"


class Topic:
    """A topic: its config and its partitions (opened and recovered eagerly)."""

    def __init__(self, log: Log, name: str, meta: dict[str, Any], stamp: tuple[int, int]) -> None:
        self.name = name
        self.path = os.path.join(log.path, name)
        self.topic_id = str(meta.get("topic_id", ""))
        self.config = TopicConfig.from_kafka(meta.get("config") or {})
        self.stamp = stamp  # (inode, mtime_ns) of topic.json when read
        count = meta.get("partitions")
        if not isinstance(count, int) or not 1 <= count <= MAX_PARTITIONS:
            raise CorruptMetadataError(f"topic {name!r} has an invalid partition count {count!r}",
                                       path=os.path.join(self.path, TOPIC_META))
        self.partitions = [
            Partition(log.fs, os.path.join(self.path, str(i)), name, i, self.config, log.clock,
                      repair=log.repair_on_open, reader_cache=log.reader_cache,
                      signal=log.append_signal)
            for i in range(count)]
        for p in self.partitions:
            p.on_roll = log._rolled

    def info(self) -> TopicInfo:
        """Name, partition count, config overrides and id."""
        return TopicInfo(self.name, len(self.partitions), self.config.overrides(), self.topic_id)

    def set_config(self, config: TopicConfig) -> None:
        """Use a new config for this topic and its partitions."""
        self.config = config
        for p in self.partitions:
            p.config = config

    def close(self, *, discard: bool = False) -> None:
        """Close every partition (``discard=True``: the topic is gone, write nothing)."""
        for p in self.partitions:
            p.close(discard=discard)


class Log:
    """A data directory of topics; open with :func:`strom.open`.

    A context manager; thread-safe; several processes may open the same
    directory at once.
    """

    def __init__(self, path: str | os.PathLike[str], *, clock: Clock | None = None,
                 fs: FileSystem | None = None, repair: bool = False, cleaner: bool = True,
                 cleaner_backoff_ms: int = DEFAULT_BACKOFF_MS,
                 cleaner_max_keys: int = DEFAULT_MAX_KEYS) -> None:
        if not isinstance(path, (str, os.PathLike)):
            raise TypeError(f"path must be a str or os.PathLike, not {type(path).__name__}")
        if isinstance(path, str) and path == MEMORY:
            if fs is not None:
                raise InvalidConfigError("':memory:' is a private log with its own file system; to "
                                         "share a MemoryFileSystem, give a path and fs=")
            fs, path = MemoryFileSystem(), MEMORY_PATH
        self.fs = fs or OS_FS
        self.path = self.fs.abspath(os.fspath(path))
        self.clock = clock or SystemClock()
        self.repair_on_open = repair
        self.reader_cache = ReaderCache()
        #: Bumped by every append through this Log (or, in memory, through its tree).
        self.append_signal: AppendSignal = getattr(self.fs, "append_signal", None) or AppendSignal()
        self._lock = threading.RLock()
        self._topics: dict[str, Topic] = {}
        self._closed = False
        for name, value in (("cleaner_backoff_ms", cleaner_backoff_ms),
                            ("cleaner_max_keys", cleaner_max_keys)):
            if type(value) is not int or value < 1:
                raise InvalidConfigError(f"{name} must be a positive int, not {value!r}")
        self.cleaner_max_keys = cleaner_max_keys
        #: The background cleaner (None when opened with ``cleaner=False``).
        self.cleaner: Cleaner | None = (
            Cleaner(self, cleaner_backoff_ms, cleaner_max_keys) if cleaner else None)
        fs = self.fs
        if fs.exists(self.path) and not fs.isdir(self.path):
            raise StorageError(f"data directory {self.path!r} exists and is not a directory",
                               path=self.path)
        try:
            fs.makedirs(self.path)
            self._meta_lock = fs.lock(os.path.join(self.path, LOG_LOCK))
        except OSError as exc:
            raise StorageError(f"cannot open data directory {self.path!r}: {exc.strerror}",
                               errno=exc.errno, path=self.path) from exc
        try:
            with self._meta_lock:
                self._init_marker()
                self._remove_leftovers()
                self._refresh()
        except OSError as exc:
            self.close()
            raise StorageError(f"cannot open data directory {self.path!r}: {exc.strerror or exc}",
                               errno=exc.errno, path=getattr(exc, "filename", None) or self.path) from exc
        except BaseException:
            self.close()
            raise
        if self.cleaner is not None:
            self.cleaner.start()

    # -- housekeeping ----------------------------------------------------------

    def _init_marker(self) -> None:
        path = os.path.join(self.path, LOG_META)
        try:
            meta = read_meta(self.fs, path, "log")
        except FileNotFoundError:
            write_meta(self.fs, path, "log",
                       {"format_version": FORMAT_VERSION, "created_ms": self.clock.time_ms()})
            return
        version = meta.get("format_version")
        if not isinstance(version, int) or version > FORMAT_VERSION:
            raise StromError(f"{self.path!r} was written in format version {version!r}; this strom "
                             f"reads up to {FORMAT_VERSION}")

    def _remove_leftovers(self) -> None:
        for name in self.fs.listdir(self.path):
            if "~creating~" in name or "~deleted~" in name:
                self.fs.rmtree(os.path.join(self.path, name))

    def _check_open(self) -> None:
        if self._closed:
            raise LogClosedError(f"log {self.path!r} is closed")

    def _stamp(self, name: str) -> tuple[int, int] | None:
        try:
            return self.fs.stamp(os.path.join(self.path, name, TOPIC_META))
        except (FileNotFoundError, NotADirectoryError):
            return None

    def _load_topic(self, name: str, stamp: tuple[int, int]) -> Topic:
        meta = read_meta(self.fs, os.path.join(self.path, name, TOPIC_META), "topic")
        if meta.get("name") != name:
            raise CorruptMetadataError(f"topic folder {name!r} holds metadata for {meta.get('name')!r}",
                                       path=os.path.join(self.path, name, TOPIC_META))
        return Topic(self, name, meta, stamp)

    def _refresh(self) -> None:
        """Match the in-memory topics with the directory (other processes may have changed it)."""
        with self._lock:
            seen = set()
            for name in self.fs.listdir(self.path):
                if "~" in name:  # strom's own files; never a topic (Kafka's name rule)
                    continue
                if self.fs.islink(os.path.join(self.path, name)):
                    continue  # never follow a link out of the data directory
                stamp = self._stamp(name)
                if stamp is None:
                    continue
                seen.add(name)
                topic = self._topics.get(name)
                if topic is None:
                    self._topics[name] = self._load_topic(name, stamp)
                elif topic.stamp != stamp:
                    meta = read_meta(self.fs, os.path.join(self.path, name, TOPIC_META), "topic")
                    if str(meta.get("topic_id", "")) != topic.topic_id:  # deleted and re-created
                        topic.close(discard=True)
                        self._topics[name] = Topic(self, name, meta, stamp)
                    else:
                        topic.set_config(TopicConfig.from_kafka(meta.get("config") or {}))
                        topic.stamp = stamp
            for name in list(self._topics):
                if name not in seen:  # deleted by another process
                    self._topics.pop(name).close(discard=True)

    def _topic(self, name: str) -> Topic:
        self._check_open()
        try:
            topic = self._topics.get(name)
        except TypeError:  # unhashable: certainly not a topic name
            topic = None
        if topic is None:
            validate_topic_name(name)
            self._refresh()
            topic = self._topics.get(name)
            if topic is None:
                raise UnknownTopicOrPartitionError(f"unknown topic {name!r}")
        return topic

    # -- topics ------------------------------------------------------------------

    def topics(self) -> dict[str, TopicInfo]:
        """Every topic, by name."""
        self._check_open()
        self._refresh()
        with self._lock:
            return {name: t.info() for name, t in sorted(self._topics.items())}

    def topic(self, name: str) -> Topic:
        """The Topic object for ``name`` (UnknownTopicOrPartitionError if missing)."""
        return self._topic(name)

    def create_topic(self, name: str, partitions: int = 1,
                     config: Mapping[str, Any] | None = None) -> TopicInfo:
        """Create a topic with ``partitions`` partitions and Kafka-named ``config`` overrides.

        Raises TopicExistsError if it exists, InvalidTopicError for a bad
        name and InvalidConfigError for a bad config.
        """
        self._check_open()
        validate_topic_name(name)
        if not isinstance(partitions, int) or isinstance(partitions, bool) or not (
                1 <= partitions <= MAX_PARTITIONS):
            raise InvalidConfigError(f"partitions must be an int from 1 to {MAX_PARTITIONS}, "
                                     f"not {partitions!r}")
        topic_config = TopicConfig.from_kafka(config)
        fs = self.fs
        with self._lock, self._meta_lock:
            self._refresh()
            final = os.path.join(self.path, name)
            if name in self._topics or fs.exists(final):
                raise TopicExistsError(f"topic {name!r} already exists")
            # Transient names hold no topic name: a 249-char name plus a suffix would pass
            # the file system's 255-byte limit.
            tmp = os.path.join(self.path, f"~creating~{uuid.uuid4().hex}")
            try:
                fs.mkdir(tmp)
                write_meta(fs, os.path.join(tmp, TOPIC_META), "topic", {
                    "name": name, "partitions": partitions, "config": topic_config.overrides(),
                    "topic_id": uuid.uuid4().hex, "created_ms": self.clock.time_ms()})
                for i in range(partitions):
                    pdir = os.path.join(tmp, str(i))
                    fs.mkdir(pdir)
                    fs.open(os.path.join(pdir, segment_name(0)), write=True, create=True).close()
                    fs.fsync_dir(pdir)
                fs.fsync_dir(tmp)
                fs.rename(tmp, final)
                fs.fsync_dir(self.path)
            except OSError as exc:
                fs.rmtree(tmp)
                raise StorageError(f"creating topic {name!r} failed: {exc.strerror}",
                                   errno=exc.errno, path=final) from exc
            stamp = self._stamp(name)
            assert stamp is not None
            topic = self._topics[name] = self._load_topic(name, stamp)
            return topic.info()

    def describe_topic(self, name: str) -> TopicDescription:
        """Config (every value) and each partition's start/end offsets and size."""
        topic = self._topic(name)
        return TopicDescription(topic.name, topic.topic_id, topic.config.to_kafka(),
                                tuple(p.info() for p in topic.partitions))

    def alter_topic(self, name: str, config: Mapping[str, Any]) -> TopicInfo:
        """Change some of a topic's config (the keys given; the rest stay)."""
        self._check_open()
        with self._lock, self._meta_lock:
            topic = self._topic(name)
            new = TopicConfig.from_kafka(config, base=topic.config)
            path = os.path.join(topic.path, TOPIC_META)
            meta = read_meta(self.fs, path, "topic")
            meta["config"] = new.overrides()
            write_meta(self.fs, path, "topic", meta)
            topic.set_config(new)
            topic.stamp = self._stamp(name) or topic.stamp
            return topic.info()

    def delete_topic(self, name: str) -> None:
        """Delete a topic and all its data."""
        self._check_open()
        with self._lock, self._meta_lock:
            topic = self._topic(name)
            topic.close()
            self._topics.pop(name, None)
            aside = os.path.join(self.path, f"~deleted~{uuid.uuid4().hex}")
            try:
                self.fs.rename(topic.path, aside)
                self.fs.fsync_dir(self.path)
                self.fs.rmtree(aside)
            except OSError as exc:
                raise StorageError(f"deleting topic {name!r} failed: {exc.strerror}",
                                   errno=exc.errno, path=topic.path) from exc

    # -- partitions --------------------------------------------------------------

    def partition(self, topic: str, partition: int) -> Partition:
        """The Partition ``partition`` of ``topic``."""
        t = self._topic(topic)
        if not isinstance(partition, int) or isinstance(partition, bool) or not (
                0 <= partition < len(t.partitions)):
            raise UnknownTopicOrPartitionError(
                f"topic {topic!r} has partitions 0..{len(t.partitions) - 1}, not {partition!r}")
        return t.partitions[partition]

    def partitions(self) -> Iterator[Partition]:
        """Every partition of every topic."""
        self._check_open()
        with self._lock:
            topics = list(self._topics.values())
        for t in topics:
            yield from t.partitions

    def _rolled(self, partition: Partition) -> None:
        """A partition rolled: a compacted one may now have something to clean."""
        if self.cleaner is not None and partition.config.compacts:
            self.cleaner.wake()

    def compact(self, topic: str | None = None, *, roll: bool = False,
                progress: Any = None) -> CleanResult:
        """Compact ``topic`` (every compacted topic if None) now, whatever its dirty ratio.

        Cleans the sealed segments of each partition, keeping the latest
        record per key (docs/compaction.md); the active segment is not
        cleaned unless ``roll=True`` seals it first.  Waits for a clean that
        another process has under way on a partition.  ``progress=True``
        draws a bar on stderr; a callable gets ``(done_bytes, total_bytes)``.
        Returns the sum of what was done.  IllegalArgumentError if ``topic``'s
        cleanup.policy does not include compact.
        """
        self._check_open()
        if topic is None:
            self._refresh()
            with self._lock:
                topics = [t for t in self._topics.values() if t.config.compacts]
        else:
            t = self._topic(topic)
            if not t.config.compacts:
                raise IllegalArgumentError(
                    f"topic {topic!r} has cleanup.policy={t.config.cleanup_policy}; only a topic "
                    "whose policy includes 'compact' is compacted")
            topics = [t]
        parts = [p for t in topics for p in t.partitions]
        callback, bar = progress_callback(progress, f"compacting {topic or 'topics'}")
        total = CleanResult()
        # Progress in bytes read; a partition reads up to twice its size (map, then copy).
        remaining = sum(2 * p.info().size_bytes for p in parts) if callback is not None else 0
        finished = 0
        try:
            for p in parts:
                if roll:
                    p.roll()
                each = None
                if callback is not None:
                    remaining -= 2 * p.info().size_bytes

                    def each(done: int, size: int) -> None:
                        last[0] = done
                        callback(finished + done, finished + size + max(remaining, 0))
                last = [0]
                result = clean_partition(p, force=True, wait=True, progress=each,
                                         max_keys=self.cleaner_max_keys)
                finished += last[0]
                if result is not None:
                    total = total + result
        finally:
            if bar is not None:
                bar.close()
        return total

    def enforce_retention(self, now_ms: int | None = None) -> int:
        """Apply retention.ms / retention.bytes to every topic now; returns segments deleted.

        Retention also runs whenever a segment rolls.
        """
        self._check_open()
        self._refresh()
        return sum(p.delete_old_segments(now_ms) for p in self.partitions())

    # -- waiting for appends ---------------------------------------------------------

    def tail_waiter(self) -> TailWaiter:
        """A new waiter for one reader: woken by appends to the partitions it watches.

        Appends through this Log wake it at once; on a directory, so do other
        processes' appends (inotify on Linux, else a look every few ms).
        Close it when done.
        """
        self._check_open()
        return self.fs.tail_waiter(self.append_signal)

    # -- lifecycle -----------------------------------------------------------------

    def close(self) -> None:
        """Write recovery points and release every file (idempotent)."""
        cleaner = getattr(self, "cleaner", None)
        if cleaner is not None:
            cleaner.close()  # before the lock: the cleaner's thread takes it to list partitions
        with self._lock:
            if self._closed:
                return
            self._closed = True
            errors = []
            for t in self._topics.values():
                try:
                    t.close()
                except StromError as exc:  # close the rest; report the first
                    errors.append(exc)
            self._topics.clear()
            self.append_signal.wake_all()
            lock = getattr(self, "_meta_lock", None)
            if lock is not None:
                lock.close()
            if errors:
                raise errors[0]

    @property
    def closed(self) -> bool:
        """True after close()."""
        return self._closed

    def __enter__(self) -> Log:
        return self

    def __exit__(self, *exc: object) -> None:
        self.close()

    def __repr__(self) -> str:
        return f"<strom.Log {self.path!r} topics={len(self._topics)}>"


def open_log(path: str | os.PathLike[str], *, clock: Clock | None = None,
             fs: FileSystem | None = None, repair: bool = False, cleaner: bool = True,
             cleaner_backoff_ms: int = DEFAULT_BACKOFF_MS,
             cleaner_max_keys: int = DEFAULT_MAX_KEYS) -> Log:
    """Open (creating if needed) the data directory at ``path``.

    ``path=":memory:"`` gives a new, private log that lives in memory, like
    sqlite3's ``":memory:"``: each call another empty log, with the same
    semantics as one on disk but no durability; it is gone when the Log is
    closed and dropped.  Its ``path`` is ``"/:memory:"``.

    ``fs`` replaces the file system: ``fs=MemoryFileSystem()`` (from
    ``strom.storage``) with any path puts the directory in that memory tree,
    so several Log objects given the same instance share one log, as Log
    objects opened on one directory do.  It cannot be combined with
    ``":memory:"``, which always makes its own.

    ``repair=True`` checks every segment from the start instead of from the
    recovery point and truncates at the first invalid batch: for a log whose
    damage lies below the recovery point.

    ``cleaner=True`` (the default, as Kafka's log.cleaner.enable) runs a
    background thread that compacts topics whose cleanup.policy includes
    compact when they are due (docs/compaction.md) and applies retention;
    several processes may each run one: one cleans a partition at a time.
    It looks every ``cleaner_backoff_ms`` and when a compacted partition
    rolls; one pass maps at most ``cleaner_max_keys`` keys.
    """
    return Log(path, clock=clock, fs=fs, repair=repair, cleaner=cleaner,
               cleaner_backoff_ms=cleaner_backoff_ms, cleaner_max_keys=cleaner_max_keys)
