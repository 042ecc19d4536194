"""Synchronous file storage: Log -> Topic -> Partition -> Segment (+ indexes).

Knows nothing of clients; reaches the disk only through ``fs.FileSystem``.
"""

from .fs import FileSystem
from .log import Log, Topic, open_log
from .memfs import MemoryFileSystem
from .partition import Partition, RecoveryResult

__all__ = ["Log", "Topic", "Partition", "RecoveryResult", "open_log", "FileSystem",
           "MemoryFileSystem"]
