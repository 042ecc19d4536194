"""Quickstart: open a log in a directory, create a topic, write records, read them back.

Run with ``make demo`` (or ``python examples/quickstart.py [DATA_DIR]``).
"""

from __future__ import annotations

import sys
import tempfile
import time

import strom


def main(data_dir: str) -> None:
    with strom.open(data_dir) as log:
        print(f"opened log at {log.path}")
        if "page-views" not in log.topics():
            log.create_topic("page-views", partitions=3,
                             config={"retention.ms": 7 * 24 * 3600 * 1000, "segment.bytes": 1 << 20})
            print("created topic page-views with 3 partitions")
        partition = log.partition("page-views", 0)

        # One call appends a whole batch: columns of values, keys and one timestamp.
        users = [f"user-{i % 100:04d}".encode() for i in range(10_000)]
        pages = [f'{{"page": "/item/{i}", "ms": {i * 7}}}'.encode() for i in range(10_000)]
        t0 = time.perf_counter()
        first = partition.append(pages, keys=users, acks="all", compression="zstd")
        elapsed = time.perf_counter() - t0
        print(f"appended {len(pages):,} records at offsets {first}..{first + len(pages) - 1} "
              f"(acks='all', zstd) in {elapsed * 1000:.1f} ms")

        # Read them back: batches are verified by checksum and decoded as columns.
        t0 = time.perf_counter()
        offset, count = first, 0
        while offset < partition.log_end_offset:
            for batch in partition.read(offset):
                offsets, timestamps, keys, values, _headers = batch.columns()
                for o in offsets:
                    if o >= offset:
                        count += 1
                offset = batch.next_offset
        elapsed = time.perf_counter() - t0
        print(f"read {count:,} records back in {elapsed * 1000:.1f} ms")

        record = partition.read_records(first + 42, max_records=1)[0]
        print(f"record at offset {record[0]}: key={record[2]!r} value={record[3]!r}")

        found = partition.offset_for_timestamp(record[1])
        print(f"first record at or after timestamp {record[1]}: offset {found[0]}")

        desc = log.describe_topic("page-views")
        for p in desc.partitions:
            print(f"  partition {p.partition}: offsets [{p.log_start_offset}, {p.log_end_offset}) "
                  f"{p.size_bytes:,} bytes in {p.segments} segment(s)")


if __name__ == "__main__":
    if len(sys.argv) > 1:
        main(sys.argv[1])
    else:
        with tempfile.TemporaryDirectory(prefix="strom-demo-") as tmp:
            main(tmp)
