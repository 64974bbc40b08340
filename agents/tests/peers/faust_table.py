"""Faust's side of the table compatibility tests (PyPI faust-streaming).

    python faust_table.py count WORDS_TOPIC   # counts words in table `counts`
    python faust_table.py dump SOURCE_TOPIC   # recovers `counts`, prints it as one line `TABLE <json>`, exits

App $FAUST_APP_ID, table `counts` (str -> int, default 0, so json keys and values in the
changelog `$FAUST_APP_ID-counts-changelog`), agent `count` over the topic given. `count` mode
runs a worker until it is stopped; `dump` mode prints the recovered table (`TABLE <json>`) once
the worker is ready (tasks start after recovery) and exits. The broker comes from
MEPHISTO_BROKER; sessions are short because tansu completes a group join after about half the
session timeout.
"""
import asyncio
import json
import os
import sys

import faust

MODE, TOPIC = sys.argv[1], sys.argv[2]

app = faust.App(
    os.environ["FAUST_APP_ID"],
    broker=os.environ["MEPHISTO_BROKER"],
    store="memory://",
    web_enabled=False,
    topic_partitions=4,
    broker_session_timeout=6,
    broker_heartbeat_interval=1,
    consumer_auto_offset_reset="earliest",
    datadir=os.environ.get("FAUST_DATADIR", "/tmp/mephisto-faust-data"),
)

words = app.topic(TOPIC, key_type=str, value_type=str)
counts = app.Table("counts", default=int, partitions=4)


@app.agent(words, name="count")
async def count(stream):
    async for word in stream:
        counts[word] += 1


if MODE == "dump":

    @app.task
    async def dump():
        # Tasks start once the tables are recovered.
        await asyncio.sleep(1.0)
        # The worker sends `print` to its log (stderr): write to the real stdout.
        sys.__stdout__.write("TABLE " + json.dumps(dict(counts.items()), sort_keys=True) + "\n")
        sys.__stdout__.flush()
        os._exit(0)


if __name__ == "__main__":
    sys.argv = [sys.argv[0], "worker", "-l", "warn", "--without-web"]
    app.main()
