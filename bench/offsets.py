"""What the consumer's offset bookkeeping costs per record, by records in flight on
one partition (issue 21).

N records of one partition received, then finished in random order with the
lowest offset last (one slow record holds the commit point while every other
finishes: the shape that makes the finished set, and the commit metadata, grow).
After every 4th finish the consumer's per-fetch questions are asked, as
`KeyOrderedConsumer` asks them of every lane: the commit offset, and the
metadata pressure once more than 64 offsets are finished above it. Printed: CPU
microseconds (`time.process_time`) per finish, median of `--rounds`. Before the
heaps (a min over the pending set for every question, and the metadata encoded
for every fetch) the same loop cost 53 / 178 / 555 us per finish at 500 / 2,000
/ 5,000 in flight; a planner with 10^4 tasks in flight spent over half its CPU
there (py-spy, bench/scale.py). Near the limit (20,000 in flight here: the bitmap
bound passes the consumer's resume threshold) the pressure is encoded exactly again
at each question, O(finished log finished); the consumer pauses such a lane at 0.8.
The same again with the others finished in order (`us_per_finish_in_order`): one
run over a wide span, which the run-length bound keeps off the exact path (before
it, 20,000 in order cost as much as 20,000 shuffled). Asserts nothing about time.

    .venv/bin/python bench/offsets.py [--json] [--in-flight 500,2000,5000,20000] [--rounds 3]
"""

from __future__ import annotations

import argparse
import json
import random
import statistics
import time

from machine import describe, machine_info  # bench/machine.py; bench/ is not a package
from synod.transport.consumer import ConsumerConfig
from synod.transport.offsets import PartitionOffsets


def per_finish_us(n: int, seed: int, shuffled: bool = True) -> float:
    rng = random.Random(seed)
    offsets = PartitionOffsets(0)
    for i in range(n):
        offsets.receive(i)
    order = list(range(1, n))
    if shuffled:
        rng.shuffle(order)
    order.append(0)
    exact_above = ConsumerConfig().metadata_pause_at * 0.75  # as the consumer asks
    started = time.process_time()
    for k, offset in enumerate(order):
        offsets.finish(offset)
        if k % 4 == 0:
            _ = offsets.commit_offset
            if offsets.finished_above > 64:
                offsets.metadata_pressure(exact_above)
    return (time.process_time() - started) / n * 1e6


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--json", action="store_true")
    parser.add_argument("--in-flight", default="500,2000,5000,20000")
    parser.add_argument("--rounds", type=int, default=3)
    args = parser.parse_args()
    rows = []
    for n in (int(x) for x in args.in_flight.split(",")):
        row: dict[str, object] = {"in_flight": n}
        for key, shuffled in (("us_per_finish", True), ("us_per_finish_in_order", False)):
            us = statistics.median(per_finish_us(n, seed, shuffled) for seed in range(args.rounds))
            row[key] = round(us, 2)
        rows.append(row)
    if args.json:
        print(json.dumps({"machine": machine_info(), "rows": rows}, indent=2))
        return
    print(describe(machine_info()))
    for row in rows:
        print(
            f"{row['in_flight']:>7} in flight: {row['us_per_finish']:.1f} us CPU per finish "
            f"(random order), {row['us_per_finish_in_order']:.1f} us (in order)"
        )


if __name__ == "__main__":
    main()
