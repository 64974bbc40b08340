"""Produces records described on stdin with kafka-python or confluent-kafka.

    write.py WHICH BOOTSTRAP TOPIC < specs

stdin: one record per line, `index codec partition timestamp key value headers` (format of
common.py). Records are produced in order, one producer per codec (in order of first
appearance). stdout: `index partition offset timestamp` per record, from the delivery reports.
"""
import os
import sys

sys.path.insert(0, os.path.dirname(os.path.abspath(__file__)))
from common import parse_headers, unhex  # noqa: E402

which, addr, topic = sys.argv[1], sys.argv[2], sys.argv[3]
by_codec = {}
for line in sys.stdin:
    line = line.strip()
    if not line:
        continue
    idx, codec, partition, ts, key, value, headers = line.split(" ")
    by_codec.setdefault(codec, []).append(
        (int(idx), int(partition), int(ts), unhex(key), unhex(value), parse_headers(headers)))

out = []
if which == "kafka-python":
    from kafka import KafkaProducer
    for codec, records in by_codec.items():
        p = KafkaProducer(bootstrap_servers=addr, acks="all", linger_ms=50,
                          batch_size=1 << 20,
                          compression_type=None if codec == "none" else codec)
        futures = [(r[0], p.send(topic, key=r[3], value=r[4], headers=r[5], partition=r[1],
                                 timestamp_ms=r[2])) for r in records]
        p.flush(30)
        for idx, f in futures:
            m = f.get(timeout=30)
            out.append("%d %d %d %d" % (idx, m.partition, m.offset, m.timestamp))
        p.close(10)
elif which == "confluent-kafka":
    from confluent_kafka import Producer
    errors = []
    for codec, records in by_codec.items():
        p = Producer({"bootstrap.servers": addr, "acks": "all", "linger.ms": 50,
                      "compression.type": codec})

        def report(err, msg, idx):
            if err is not None:
                errors.append("%d: %s" % (idx, err))
            else:
                out.append("%d %d %d %d" % (idx, msg.partition(), msg.offset(),
                                            msg.timestamp()[1]))

        for r in records:
            p.produce(topic, key=r[3], value=r[4], headers=r[5], partition=r[1],
                      timestamp=r[2],
                      on_delivery=lambda err, msg, idx=r[0]: report(err, msg, idx))
            p.poll(0)
        left = p.flush(30)
        if left:
            sys.exit("%d records not delivered" % left)
    if errors:
        sys.exit("delivery errors: " + "; ".join(errors[:5]))
else:
    sys.exit("unknown writer " + which)
print("\n".join(out))
