"""A Kafka client (confluent-kafka = librdkafka, or kafka-python) against Mephisto's development
broker, for engine/tests/dev_broker_interop.rs.

    dev_broker_peer.py produce WHICH BOOTSTRAP TOPIC COUNT CODEC
        COUNT records, key `k<i>`, value `<WHICH>-<CODEC>-<i>`, idempotent; prints
        `produced COUNT`.
    dev_broker_peer.py consume WHICH BOOTSTRAP TOPIC PARTITIONS COUNT
        reads COUNT records from the beginning (assigned partitions, no group); prints one
        `partition offset value` line per record.
    dev_broker_peer.py group WHICH BOOTSTRAP TOPIC GROUP SECONDS
        consumes in GROUP for SECONDS, committing each record synchronously; prints one
        `partition offset value` line per record and, last, `assignment p,p,...` (the final
        assignment).

Every mode gives up after its deadline (30 s for produce/consume) and exits non-zero on errors.
"""
import sys
import time

mode, which, addr, topic = sys.argv[1], sys.argv[2], sys.argv[3], sys.argv[4]


def fail(msg):
    sys.stderr.write(msg + "\n")
    sys.exit(1)


def produce(count, codec):
    if which == "confluent-kafka":
        from confluent_kafka import Producer
        p = Producer({"bootstrap.servers": addr, "enable.idempotence": True,
                      "compression.type": codec, "linger.ms": 5})
        errors = []

        def done(err, _msg):
            if err is not None:
                errors.append(str(err))

        for i in range(count):
            while True:
                try:
                    p.produce(topic, key=b"k%d" % i, value=("%s-%s-%d" % (which, codec, i)).encode(),
                              on_delivery=done)
                    break
                except BufferError:
                    p.poll(0.1)
            p.poll(0)
        left = p.flush(30)
        if left or errors:
            fail("confluent-kafka: %d undelivered, errors %s" % (left, errors[:3]))
    elif which == "kafka-python":
        from kafka import KafkaProducer
        p = KafkaProducer(bootstrap_servers=addr, enable_idempotence=True, acks="all",
                          compression_type=None if codec == "none" else codec, linger_ms=5)
        futures = [p.send(topic, key=b"k%d" % i, value=("%s-%s-%d" % (which, codec, i)).encode())
                   for i in range(count)]
        p.flush(30)
        for f in futures:
            f.get(timeout=30)
        p.close()
    else:
        fail("unknown client " + which)
    print("produced %d" % count)


def consume(partitions, count):
    rows = []
    deadline = time.time() + 30
    if which == "confluent-kafka":
        from confluent_kafka import Consumer, TopicPartition, OFFSET_BEGINNING
        c = Consumer({"bootstrap.servers": addr, "group.id": "unused", "enable.auto.commit": False})
        c.assign([TopicPartition(topic, p, OFFSET_BEGINNING) for p in range(partitions)])
        while len(rows) < count and time.time() < deadline:
            m = c.poll(0.5)
            if m is None:
                continue
            if m.error():
                fail(str(m.error()))
            rows.append((m.partition(), m.offset(), m.value().decode()))
        c.close()
    elif which == "kafka-python":
        from kafka import KafkaConsumer, TopicPartition
        c = KafkaConsumer(bootstrap_servers=addr, group_id=None, enable_auto_commit=False,
                          auto_offset_reset="earliest")
        c.assign([TopicPartition(topic, p) for p in range(partitions)])
        c.seek_to_beginning()
        while len(rows) < count and time.time() < deadline:
            for _tp, msgs in c.poll(500).items():
                for m in msgs:
                    rows.append((m.partition, m.offset, m.value.decode()))
        c.close()
    else:
        fail("unknown client " + which)
    for r in rows:
        print("%d %d %s" % r)
    if len(rows) < count:
        fail("%s read %d of %d records" % (which, len(rows), count))


def group(group_id, seconds):
    rows = []
    deadline = time.time() + seconds
    if which == "confluent-kafka":
        from confluent_kafka import Consumer
        c = Consumer({"bootstrap.servers": addr, "group.id": group_id,
                      "auto.offset.reset": "earliest", "enable.auto.commit": False,
                      "session.timeout.ms": 6000, "heartbeat.interval.ms": 500})
        c.subscribe([topic])
        while time.time() < deadline:
            m = c.poll(0.2)
            if m is None:
                continue
            if m.error():
                fail(str(m.error()))
            rows.append((m.partition(), m.offset(), m.value().decode()))
            c.commit(message=m, asynchronous=False)
        assignment = sorted(tp.partition for tp in c.assignment())
        c.close()
    elif which == "kafka-python":
        from kafka import KafkaConsumer
        c = KafkaConsumer(topic, bootstrap_servers=addr, group_id=group_id,
                          auto_offset_reset="earliest", enable_auto_commit=False,
                          session_timeout_ms=6000, heartbeat_interval_ms=500)
        while time.time() < deadline:
            for _tp, msgs in c.poll(200).items():
                for m in msgs:
                    rows.append((m.partition, m.offset, m.value.decode()))
                    c.commit()
        assignment = sorted(tp.partition for tp in c.assignment())
        c.close()
    else:
        fail("unknown client " + which)
    for r in rows:
        print("%d %d %s" % r)
    print("assignment " + ",".join(str(p) for p in assignment))


if mode == "produce":
    produce(int(sys.argv[5]), sys.argv[6])
elif mode == "consume":
    consume(int(sys.argv[5]), int(sys.argv[6]))
elif mode == "group":
    group(sys.argv[5], float(sys.argv[6]))
else:
    fail("unknown mode " + mode)
