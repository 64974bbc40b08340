"""kafka-python's DefaultPartitioner choice for each key on stdin (hex, `=` for empty), for a
topic of PARTITIONS partitions: prints one partition per line, in input order.

    partitions.py PARTITIONS < keys

Uses the partitioner class kafka-python's KafkaProducer is configured with by default, called
the way the producer calls it, over a metadata stub that knows only the topic.
"""
import os
import sys

sys.path.insert(0, os.path.dirname(os.path.abspath(__file__)))
from common import unhex  # noqa: E402

from kafka import KafkaProducer
from kafka.partitioner.default import DefaultPartitioner

partitions = int(sys.argv[1])
partitioner = KafkaProducer.DEFAULT_CONFIG["partitioner"]
if not isinstance(partitioner, DefaultPartitioner):
    sys.exit("kafka-python's default partitioner is %r, not DefaultPartitioner" % (partitioner,))


class Metadata:
    def topics(self):
        return {"t"}

    def partitions_for_topic(self, topic):
        return set(range(partitions))

    def available_partitions_for_topic(self, topic):
        return set(range(partitions))


metadata = Metadata()
out = []
for line in sys.stdin:
    line = line.strip()
    if not line:
        continue
    key = unhex(line)
    out.append(str(partitioner.partition("t", key, key, None, None, metadata)))
print("\n".join(out))
