"""Reads COUNT records of TOPIC (partitions 0..PARTITIONS) from the beginning with kafka-python
or confluent-kafka.

    read.py WHICH BOOTSTRAP TOPIC PARTITIONS COUNT

stdout: one line per record, sorted, `partition offset tstype timestamp key value headers`
(format of common.py; tstype `create` or `append`). Exits non-zero if fewer than COUNT records
arrive within 30 s.
"""
import os
import sys
import time

sys.path.insert(0, os.path.dirname(os.path.abspath(__file__)))
from common import fmt_headers, hx  # noqa: E402

which, addr, topic = sys.argv[1], sys.argv[2], sys.argv[3]
partitions, count = int(sys.argv[4]), int(sys.argv[5])
rows = []
deadline = time.time() + 30


def row(partition, offset, create, ts, key, value, headers):
    return "%d %d %s %d %s %s %s" % (partition, offset, "create" if create else "append", ts,
                                     hx(key), hx(value), fmt_headers(headers))


if which == "kafka-python":
    from kafka import KafkaConsumer, TopicPartition
    c = KafkaConsumer(bootstrap_servers=addr, group_id=None, enable_auto_commit=False,
                      auto_offset_reset="earliest")
    c.assign([TopicPartition(topic, p) for p in range(partitions)])
    c.seek_to_beginning()
    while len(rows) < count and time.time() < deadline:
        for tp, msgs in c.poll(500).items():
            for m in msgs:
                rows.append(row(m.partition, m.offset, m.timestamp_type == 0, m.timestamp,
                                m.key, m.value, m.headers))
    c.close()
elif which == "confluent-kafka":
    from confluent_kafka import (Consumer, TopicPartition, OFFSET_BEGINNING,
                                 TIMESTAMP_CREATE_TIME)
    c = Consumer({"bootstrap.servers": addr, "group.id": "mephisto-interop",
                  "enable.auto.commit": False})
    c.assign([TopicPartition(topic, p, OFFSET_BEGINNING) for p in range(partitions)])
    while len(rows) < count and time.time() < deadline:
        m = c.poll(0.5)
        if m is None:
            continue
        if m.error():
            sys.exit(str(m.error()))
        tstype, ts = m.timestamp()
        rows.append(row(m.partition(), m.offset(), tstype == TIMESTAMP_CREATE_TIME, ts,
                        m.key(), m.value(), m.headers()))
    c.close()
else:
    sys.exit("unknown reader " + which)
if len(rows) < count:
    sys.exit("%s read %d of %d records" % (which, len(rows), count))
print("\n".join(sorted(rows)))
