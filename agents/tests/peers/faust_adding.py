"""Faust apps for the Mephisto interop test (PyPI faust-streaming).

    python faust_adding.py worker      # runs the page's `adding` agent on `faust-adding`
    python faust_adding.py ask A B     # a Faust worker whose task asks Mephisto's agent on
                                       # `mephisto-adding`, writes the reply to $FAUST_RESULT
                                       # and exits

Asking needs a running Faust app (its consumer reads the reply topic), hence a worker with a
task. The broker comes from MEPHISTO_BROKER. Session timeouts are short because tansu
completes a group join after about half of the session timeout.
"""
import os
import sys

import faust

MODE = sys.argv[1] if len(sys.argv) > 1 else "worker"


class Add(faust.Record, serializer="json"):
    a: int
    b: int


app = faust.App(
    "faust-interop" if MODE == "worker" else "faust-asker",
    broker=os.environ["MEPHISTO_BROKER"],
    store="memory://",
    web_enabled=False,
    topic_partitions=1,
    broker_session_timeout=6,
    broker_heartbeat_interval=1,
    consumer_auto_offset_reset="earliest",
    datadir=os.environ.get("FAUST_DATADIR", "/tmp/mephisto-faust-data"),
)

if MODE == "worker":
    topic = app.topic("faust-adding", value_type=Add)

    @app.agent(topic)
    async def adding(stream):
        async for value in stream:
            yield value.a + value.b

    if __name__ == "__main__":
        sys.argv = [sys.argv[0], "worker", "-l", "warn", "--without-web"]
        app.main()
else:
    a, b = int(sys.argv[2]), int(sys.argv[3])
    mephisto_topic = app.topic("mephisto-adding", value_type=Add)

    # Mephisto's agent as Faust declares a remote agent: this copy never yields, so the only
    # reply comes from Mephisto's worker (another consumer group reading the same topic).
    @app.agent(mephisto_topic)
    async def mephisto_adding(stream):
        async for _value in stream:
            pass

    @app.task
    async def ask_mephisto():
        value = await mephisto_adding.ask(Add(a=a, b=b))
        # Faust sends a worker's stdout to its log: the answer goes to a file.
        with open(os.environ["FAUST_RESULT"], "w") as out:
            out.write(f"{value}\n")
        os._exit(0)

    if __name__ == "__main__":
        sys.argv = [sys.argv[0], "worker", "-l", "warn", "--without-web"]
        app.main()
