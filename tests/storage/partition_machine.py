"""The base of the hypothesis state machines over one partition (a model test imports it).

It owns the log's place (a MemoryFileSystem tree with ``memory = True``,
else a temporary directory), the ManualClock, the teardown that checks the
partition and removes the directory, and the helpers that look at the
files.
"""

from __future__ import annotations

import os
import shutil
import tempfile

from hypothesis.stateful import RuleBasedStateMachine

import strom
from strom import ManualClock
from strom.storage import MemoryFileSystem
from strom.storage.fs import OS_FS
from strom.storage.segment import segment_name

#: The model clock's start (ms).
T0 = 1_700_000_000_000


class PartitionMachine(RuleBasedStateMachine):
    """One partition of topic ``topic`` in a log the subclass opens in ``self.log`` as ``self.p``."""

    memory = False  # True: the log lives in a MemoryFileSystem
    topic = "t"

    def __init__(self) -> None:
        super().__init__()
        if self.memory:
            self.fs, self.dir = MemoryFileSystem(), "/model"
        else:
            self.fs, self.dir = OS_FS, tempfile.mkdtemp(prefix="strom-model-")
        self.clock = ManualClock(T0)
        self.log: strom.Log | None = None

    def teardown(self) -> None:
        try:
            if self.log is not None:
                assert self.p.verify() == []
                self.log.close()
        finally:
            if not self.memory:
                shutil.rmtree(self.dir, ignore_errors=True)

    @property
    def pdir(self) -> str:
        """The partition's directory."""
        return os.path.join(self.dir, self.topic, "0")

    def layout(self) -> list[tuple[int, int]]:
        """(base offset, file size) of every segment, oldest first, as on disk."""
        return [(s.base_offset,
                 self.fs.file_size(os.path.join(self.pdir, segment_name(s.base_offset))))
                for s in self.p.segments]
