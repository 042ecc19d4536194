"""Child processes for tests/group/test_offsets.py.

``python offsets_child.py commit DATA GROUP TOPIC PARTITION OFFSET METADATA``
    commits one offset through its own Log and prints ``done``.
``python offsets_child.py count DATA GROUP TOPIC PARTITION N``
    prints ``ready``, waits for a line on stdin, then commits offsets 1..N
    for one partition, one commit each (acks=1); prints ``done``.
``python offsets_child.py show DATA GROUP``
    prints ``done <json {"topic-partition": [offset, metadata]}>``: the
    group's offsets as this process reads them.
"""

from __future__ import annotations

import json
import sys

import strom
from strom.group.offsets import OffsetStore


def _say(line: str) -> None:
    sys.stdout.write(line + "\n")
    sys.stdout.flush()


def main(argv: list[str]) -> None:
    mode, path, group = argv[1], argv[2], argv[3]
    with strom.open(path) as log:
        store = OffsetStore(log)
        if mode == "commit":
            topic, partition, offset, metadata = argv[4], int(argv[5]), int(argv[6]), argv[7]
            store.commit(group, {strom.TopicPartition(topic, partition):
                                 strom.OffsetAndMetadata(offset, metadata)})
            _say("done")
        elif mode == "count":
            tp = strom.TopicPartition(argv[4], int(argv[5]))
            n = int(argv[6])
            _say("ready")
            sys.stdin.readline()
            for i in range(1, n + 1):
                store.commit(group, {tp: strom.OffsetAndMetadata(i)}, acks=1)
            _say("done")
        elif mode == "show":
            offsets = store.group_offsets(group)
            _say("done " + json.dumps({f"{tp.topic}-{tp.partition}": [o.offset, o.metadata]
                                       for tp, o in offsets.items()}))
        else:
            raise SystemExit(f"unknown mode {mode!r}")


if __name__ == "__main__":
    main(sys.argv)
