"""Faust's side of table_bench: restore a table from its changelog and report how long it took.

    python faust_table_restore.py EMPTY_TOPIC RECORDS

App $FAUST_APP_ID with table `counts` (str -> str; its changelog `$FAUST_APP_ID-counts-changelog`
was filled by the bench) and an agent over EMPTY_TOPIC (as many partitions as the changelog),
so that the worker holds every table partition. Prints one line `RESTORE <seconds> <keys>`
on stdout, from the assignment (`on_partitions_assigned`) to the end of recovery
(a timer, which Faust starts once recovery is complete, that finds every key loaded), and
exits. Memory store, Faust's defaults
otherwise (recovery_buffer_size 1000). The broker comes from MEPHISTO_BROKER.
"""
import os
import sys
import time

import faust

EMPTY, RECORDS = sys.argv[1], int(sys.argv[2])

app = faust.App(
    os.environ["FAUST_APP_ID"],
    broker=os.environ["MEPHISTO_BROKER"],
    store="memory://",
    web_enabled=False,
    topic_partitions=int(os.environ.get("FAUST_PARTITIONS", "8")),
    broker_session_timeout=6,
    broker_heartbeat_interval=1,
    consumer_auto_offset_reset="earliest",
    datadir=os.environ.get("FAUST_DATADIR", "/tmp/mephisto-faust-data"),
)

source = app.topic(EMPTY, value_type=str)
counts = app.Table("counts", key_type=str, value_type=str)
started = time.monotonic()


@app.agent(source)
async def idle(stream):
    async for _ in stream:
        pass


@app.timer(0.05)
async def done():
    # Timers start once recovery is complete.
    keys = len(counts)
    if keys >= RECORDS:
        elapsed = time.monotonic() - started
        sys.__stdout__.write(f"RESTORE {elapsed:.3f} {keys}\n")
        sys.__stdout__.flush()
        os._exit(0)


if __name__ == "__main__":
    sys.argv = [sys.argv[0], "worker", "-l", os.environ.get("FAUST_LOG", "warn"), "--without-web"]
    app.main()
