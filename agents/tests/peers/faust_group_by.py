"""Faust's side of the group_by compatibility test (PyPI faust-streaming).

    python faust_group_by.py SOURCE_TOPIC

Runs a worker of app $FAUST_APP_ID whose agent `regroup` reads SOURCE_TOPIC (Transfer values in
JSON) and regroups the stream by `Transfer.account_id`: Faust forwards each event to the topic
`regroup-SOURCE_TOPIC-Transfer.account_id-repartition`, keyed by the account id. A Mephisto
agent named `regroup` doing the same must write the same records to the same partitions. The
broker comes from MEPHISTO_BROKER; sessions are short because tansu completes a group join
after about half the session timeout.
"""
import os
import sys

import faust

SOURCE = sys.argv[1]


class Transfer(faust.Record, serializer="json"):
    account_id: str
    amount: float


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

source = app.topic(SOURCE, value_type=Transfer)


@app.agent(source, name="regroup")
async def regroup(stream):
    async for _transfer in stream.group_by(Transfer.account_id):
        pass


if __name__ == "__main__":
    sys.argv = [sys.argv[0], "worker", "-l", "warn", "--without-web"]
    app.main()
