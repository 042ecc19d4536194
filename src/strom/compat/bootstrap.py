"""``bootstrap_servers`` -> Log: the logs that kafka-python-style clients share in a process.

Theory of operation
-------------------
A kafka-python client names its cluster by ``bootstrap_servers``; a strom
client needs a :class:`~strom.Log`.  The value (a str, or a list of str) is
read as follows:

* a directory: a path that is absolute or starts with ``.`` or ``~`` or
  holds a path separator (``"./data"``, ``"/var/lib/app/log"``), an
  ``os.PathLike``, or a ``file:`` URL (``"file:///var/lib/app/log"``,
  ``"file:data"``) opens that directory, creating it if missing.  A bare
  word (``"data"``) is not read as a directory, so that the presence of a
  folder in the working directory never changes what a program does;
* anything else is a set of ``host[:port]`` addresses (a str may hold
  several, comma-separated, as in kafka-python; the port defaults to 9092,
  so ``"localhost"`` and ``["localhost:9092"]`` are the same).  The set
  names a process-wide in-memory log: every client given the same set
  shares one Log, and different sets are isolated.  The first use of each
  name warns (:class:`InMemoryLogWarning`) that nothing is persisted, unless
  the environment variable ``STROM_DATA_DIR`` names a directory, which is
  then opened instead, whatever the addresses.

Each directory (by real path) and each name has one Log object in the
process, made on first use and kept until interpreter exit, when producers
still open are closed (so that what they hold is written, as
kafka-python's exit hook does) and then the shared logs.  Clients never
close a shared Log: a producer or consumer may come and go while the log
lives on, as a broker would.  A Log closed by someone else is reopened on
next use (an in-memory one keeps its memory tree, so its data too).

After ``fork()`` the child forgets the parent's shared logs without closing
them and opens its own on first use: file locks are shared across a fork,
so two processes must never write through one Log's descriptors.
"""

from __future__ import annotations

import atexit
import logging
import os
import re
import threading
import urllib.parse
import urllib.request
import warnings
import weakref
from typing import Any

from ..errors import InvalidConfigError, StromError
from ..storage import Log, MemoryFileSystem, open_log

__all__ = [
    "DATA_DIR_ENV",
    "DEFAULT_PORT",
    "InMemoryLogWarning",
    "close_shared_logs",
    "resolve_log",
    "shared_log",
]

#: The environment variable naming the directory that host-style names open instead of memory.
DATA_DIR_ENV = "STROM_DATA_DIR"
#: kafka-python's default port, added to an address without one.
DEFAULT_PORT = 9092
_logger = logging.getLogger("strom.compat")
_HAS_PORT = re.compile(r".*:\d+")


class InMemoryLogWarning(UserWarning):
    """``bootstrap_servers`` named an in-memory log: nothing written to it is persisted."""


_lock = threading.RLock()
_logs: dict[tuple[str, str], Log] = {}
_memory_trees: dict[str, MemoryFileSystem] = {}
_warned: set[str] = set()
_producers: weakref.WeakSet[Any] = weakref.WeakSet()


def _is_path(text: str) -> bool:
    return (text.startswith(("/", ".", "~")) or os.sep in text
            or (os.altsep is not None and os.altsep in text))


def _directory(path: str) -> str:
    return os.path.realpath(os.path.expanduser(path))


def _file_url_path(url: str) -> str:
    parts = urllib.parse.urlsplit(url)
    if parts.netloc not in ("", "localhost"):
        raise InvalidConfigError(
            f"bootstrap_servers {url!r}: a file: URL names a local directory (file:///abs/path or "
            f"file:relative/path), not one on host {parts.netloc!r}")
    path = urllib.request.url2pathname(parts.path)
    if not path:
        raise InvalidConfigError(f"bootstrap_servers {url!r}: the file: URL has no path")
    return path


def _location(servers: Any) -> tuple[str, str]:
    """``("dir", real path)`` or ``("memory", name)`` for a bootstrap_servers value."""
    if isinstance(servers, (str, os.PathLike)):
        items = [servers]
    elif isinstance(servers, (list, tuple, set, frozenset)):
        items = list(servers)
    else:
        raise InvalidConfigError(f"bootstrap_servers must be a str or a list of str, not "
                                 f"{type(servers).__name__}")
    dirs: set[str] = set()
    hosts: set[str] = set()
    for item in items:
        if isinstance(item, os.PathLike):
            path = os.fspath(item)
            if not isinstance(path, str):
                raise InvalidConfigError(f"bootstrap_servers: a directory path must be a str, not "
                                         f"{type(path).__name__}")
            dirs.add(_directory(path))
            continue
        if not isinstance(item, str):
            raise InvalidConfigError(f"bootstrap_servers entries must be str, not "
                                     f"{type(item).__name__}: {item!r}")
        text = item.strip()
        if text[:5].lower() == "file:":
            dirs.add(_directory(_file_url_path(text)))
        elif _is_path(text):
            dirs.add(_directory(text))
        else:
            for host in text.split(","):
                host = host.strip()
                if host:
                    hosts.add(host if _HAS_PORT.fullmatch(host) else f"{host}:{DEFAULT_PORT}")
    if dirs and hosts:
        raise InvalidConfigError(f"bootstrap_servers {servers!r} mixes directories and host:port "
                                 "addresses")
    if len(dirs) > 1:
        raise InvalidConfigError(f"bootstrap_servers {servers!r} names {len(dirs)} different "
                                 "directories; a client uses one log")
    if dirs:
        return "dir", dirs.pop()
    if not hosts:
        raise InvalidConfigError("bootstrap_servers is empty")
    return "memory", ",".join(sorted(hosts))


def shared_log(bootstrap_servers: Any = "localhost", *, stacklevel: int = 1) -> Log:
    """The Log that ``bootstrap_servers`` names in this process (opened on first use).

    A directory path or ``file:`` URL opens that directory; ``host:port``
    addresses name a process-wide in-memory log (or the directory in
    ``STROM_DATA_DIR``, when set).  The same value always gives the same
    Log object.  Raises InvalidConfigError for a value that is neither.
    """
    kind, key = _location(bootstrap_servers)
    if kind == "memory":
        data_dir = os.environ.get(DATA_DIR_ENV, "").strip()
        if data_dir:
            kind, key = "dir", _directory(data_dir)
    with _lock:
        log = _logs.get((kind, key))
        if log is not None and not log.closed:
            return log
        if kind == "dir":
            log = open_log(key)
        else:
            tree = _memory_trees.setdefault(key, MemoryFileSystem())
            log = open_log("/" + key, fs=tree)
            if key not in _warned:
                _warned.add(key)
                warnings.warn(
                    f"bootstrap_servers {key!r} names an in-memory strom log, shared in this "
                    "process only: nothing written to it is persisted.  Give a directory (a path "
                    f"or a file: URL) or set {DATA_DIR_ENV} to keep the data.",
                    InMemoryLogWarning, stacklevel=stacklevel + 1)
        _logs[(kind, key)] = log
        return log


def resolve_log(configs: dict[str, Any], *, stacklevel: int = 1) -> Log:
    """Take ``log`` and ``bootstrap_servers`` out of a client's ``configs`` and return its Log.

    An explicit ``log=`` (a strom.Log, strom's own option) wins; otherwise
    :func:`shared_log` of ``bootstrap_servers`` (kafka-python's default is
    ``"localhost"``).
    """
    log = configs.pop("log", None)
    servers = configs.pop("bootstrap_servers", "localhost")
    if log is not None:
        if not isinstance(log, Log):
            raise InvalidConfigError(f"log must be a strom.Log, not {type(log).__name__}")
        return log
    return shared_log(servers, stacklevel=stacklevel + 1)


def close_shared_logs() -> None:
    """Close every shared log and forget it (in-memory data is dropped): a fresh start, for tests.

    Clients still using a closed log get LogClosedError; the next client
    opens a new one.  The in-memory warning is given again afterwards.
    """
    with _lock:
        logs = list(_logs.values())
        _logs.clear()
        _memory_trees.clear()
        _warned.clear()
    errors = []
    for log in logs:
        try:
            log.close()
        except StromError as exc:  # close the rest; report the first
            errors.append(exc)
    if errors:
        raise errors[0]


def _track_producer(producer: Any) -> None:
    """Remember a live producer, to be closed (so flushed) at interpreter exit."""
    _producers.add(producer)


def _at_exit() -> None:
    for producer in list(_producers):
        try:
            producer.close()
        except StromError:  # exiting anyway: report, and close the rest
            _logger.exception("closing %r at exit failed", producer)
    try:
        close_shared_logs()
    except StromError:
        _logger.exception("closing the shared logs at exit failed")


def _forget_after_fork() -> None:
    global _lock
    _lock = threading.RLock()
    _logs.clear()
    _memory_trees.clear()
    _producers.clear()


atexit.register(_at_exit)
if hasattr(os, "register_at_fork"):
    os.register_at_fork(after_in_child=_forget_after_fork)
