"""Faust peer of `agent_bench`: the topic -> agent -> sink topic pipeline on faust-streaming.

Started by `agent_bench` (role `faust-pipeline`) with the repository's `.venv/bin/python`:

    faust_pipeline.py --broker kafka://127.0.0.1:PORT --input IN --output OUT --group G
                      --partitions 8 --variant noop|add --timeout SECONDS --datadir DIR

- `noop`: the input topic with `value_serializer='raw'`; the agent yields each value (bytes)
  unchanged into `sink=[output_topic]` (raw).
- `add`: the input topic with value type `Add` (a JSON `faust.Record`: a, b, pad); the agent
  yields `a + b`, written as JSON.

Settings as the Mephisto app of the bench: `topic_partitions` as the input, session timeout
6 s, heartbeat 1 s, producer linger 5 ms; Faust's defaults otherwise (acks=-1, commit every
2.8 s). The web server is off and the data directory is `--datadir`.

It speaks the bench's child protocol: when a line arrives on stdin (or stdin closes) it writes
one line `RESULT first_input_us=... processed=... cpu_s=... cpu_at_first_input_s=...
peak_rss_kib=...` on stdout (file descriptor 1: Faust may redirect `sys.stdout` into its
logs) and exits at once. The bench's clock starts at `first_input_us`, when the agent sees its
first input record. After `--timeout` seconds it exits by itself (status 3). Faust's terminal
spinner is turned off: on a terminal it sets the root logger to DEBUG.
"""

import argparse
import os
import sys
import threading
import time

FIRST_INPUT_US = 0
CPU_AT_FIRST_INPUT = 0.0
PROCESSED = 0


def now_us() -> int:
    return time.time_ns() // 1000


def cpu_now() -> float:
    times = os.times()
    return times.user + times.system


def seen_input() -> None:
    global FIRST_INPUT_US, CPU_AT_FIRST_INPUT, PROCESSED
    if PROCESSED == 0:
        FIRST_INPUT_US = now_us()
        CPU_AT_FIRST_INPUT = cpu_now()
    PROCESSED += 1


def peak_rss_kib() -> int:
    """VmHWM of /proc/self/status, in KiB (0 if unreadable)."""
    try:
        with open("/proc/self/status") as status:
            for line in status:
                if line.startswith("VmHWM:"):
                    return int(line.split()[1])
    except OSError:
        pass
    return 0


def report_and_exit() -> None:
    """Writes the RESULT line to fd 1 and ends the process without Faust's shutdown."""
    line = (
        f"RESULT first_input_us={FIRST_INPUT_US} processed={PROCESSED} "
        f"cpu_s={cpu_now():.3f} cpu_at_first_input_s={CPU_AT_FIRST_INPUT:.3f} "
        f"peak_rss_kib={peak_rss_kib()}\n"
    )
    os.write(1, line.encode())
    os._exit(0)


def watch_stdin() -> None:
    sys.stdin.readline()
    report_and_exit()


def watchdog(seconds: float) -> None:
    time.sleep(seconds)
    os.write(2, b"faust_pipeline: timeout, exiting\n")
    os._exit(3)


def parse() -> argparse.Namespace:
    p = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    p.add_argument("--broker", required=True)
    p.add_argument("--input", required=True)
    p.add_argument("--output", required=True)
    p.add_argument("--group", required=True)
    p.add_argument("--partitions", type=int, default=8)
    p.add_argument("--variant", choices=["noop", "add"], default="noop")
    p.add_argument("--timeout", type=float, default=1200)
    p.add_argument("--datadir", required=True)
    return p.parse_args()


def build_app(args: argparse.Namespace):
    import faust

    app = faust.App(
        args.group,
        broker=args.broker,
        topic_partitions=args.partitions,
        broker_session_timeout=6.0,
        broker_heartbeat_interval=1.0,
        producer_linger=0.005,
        web_enabled=False,
        datadir=args.datadir,
    )
    if args.variant == "noop":
        source = app.topic(
            args.input,
            key_serializer="raw",
            value_serializer="raw",
            partitions=args.partitions,
        )
        sink = app.topic(args.output, key_serializer="raw", value_serializer="raw")

        @app.agent(source, sink=[sink])
        async def pipeline(stream):
            async for value in stream:
                seen_input()
                yield value

    else:

        class Add(faust.Record, serializer="json"):
            a: int
            b: int
            pad: str

        source = app.topic(
            args.input,
            key_serializer="raw",
            value_type=Add,
            partitions=args.partitions,
        )
        sink = app.topic(args.output, key_serializer="raw", value_serializer="json")

        @app.agent(source, sink=[sink])
        async def pipeline(stream):
            async for value in stream:
                seen_input()
                yield value.a + value.b

    return app


def main() -> None:
    args = parse()
    threading.Thread(target=watch_stdin, daemon=True).start()
    threading.Thread(target=watchdog, args=(args.timeout,), daemon=True).start()
    app = build_app(args)
    import faust

    worker = faust.Worker(
        app,
        loglevel="warning",
        quiet=True,
        stdout=sys.stderr,
        redirect_stdouts=False,
    )
    # Faust's terminal spinner (on when stderr is a terminal) sets the root logger to DEBUG so
    # that it spins on every record: every message would then build log records.
    worker.spinner = None
    worker.execute_from_commandline()


if __name__ == "__main__":
    main()
