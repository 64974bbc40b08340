"""Golden record batches produced by real clients to tansu, captured twice:
  * on the way in, by a recording loopback proxy in front of tansu (the Produce request's records:
    the client's own bytes), and
  * on the way out, with a hand-written Fetch v4 request straight to tansu (the broker's bytes).
The fixture is the fetched bytes when tansu preserved the client's batches (equal except BaseOffset
and PartitionLeaderEpoch), otherwise the produced bytes -- the JSON says which.

Peers and fixtures, one topic (1 partition) per fixture, two batches each:
  librdkafka-<codec>          confluent-kafka Producer: enable.idempotence=false, then =true
  kafka-python-broker-<codec> kafka-python KafkaProducer: enable_idempotence=False, then True
Each producer sends 5 records to partition 0 with linger long enough that they form one batch,
then flushes.

Run through regen.sh, which starts tansu with its advertised listener on the proxy's port:
  MEPHISTO_BROKER_ADDR=127.0.0.1:TANSU_PORT  gen_via_tansu.py OUT_DIR PROXY_PORT
"""

import importlib.metadata as md
import os
import sys
import time

import confluent_kafka
from confluent_kafka.admin import AdminClient, NewTopic
import kafka
from kafka import KafkaProducer

import kafkaraw
import spec

LINGER_MS = 1000


def create_topic(bootstrap, topic):
    admin = AdminClient({"bootstrap.servers": bootstrap})
    fut = admin.create_topics([NewTopic(topic, num_partitions=1, replication_factor=1)])[topic]
    fut.result(timeout=15)


def produce_librdkafka(bootstrap, topic, codec, idempotent, recs):
    p = confluent_kafka.Producer({
        "bootstrap.servers": bootstrap,
        "compression.type": codec,
        "linger.ms": LINGER_MS,
        "enable.idempotence": idempotent,
        "acks": "all",
        "batch.num.messages": 1000,
    })
    reports = []

    def dr(err, msg):
        reports.append((err, msg.offset()))

    for r in recs:
        kw = {}
        if r["key"] is not None:
            kw["key"] = r["key"]
        if r["value"] is not None:
            kw["value"] = r["value"]
        p.produce(topic, partition=0, timestamp=r["timestamp"], headers=r["headers"],
                  on_delivery=dr, **kw)
    left = p.flush(30)
    assert left == 0, "librdkafka: %d messages undelivered" % left
    errs = [e for e, _ in reports if e is not None]
    assert not errs, errs
    return [o for _, o in reports]


def produce_kafka_python(bootstrap, topic, codec, idempotent, recs):
    p = KafkaProducer(bootstrap_servers=bootstrap,
                      compression_type=None if codec == "none" else codec,
                      linger_ms=LINGER_MS, enable_idempotence=idempotent, acks="all")
    futs = [p.send(topic, partition=0, key=r["key"], value=r["value"], headers=r["headers"],
                   timestamp_ms=r["timestamp"]) for r in recs]
    p.flush(30)
    offsets = [f.get(timeout=30).offset for f in futs]
    p.close(timeout=10)
    return offsets


PEERS = {
    "librdkafka": dict(
        produce=produce_librdkafka, null_header_values=True,
        peer="librdkafka %s (confluent-kafka %s)" % (confluent_kafka.libversion()[0], md.version("confluent-kafka")),
        encoder="librdkafka producer (confluent_kafka.Producer), linger.ms=%d, acks=all" % LINGER_MS),
    "kafka-python-broker": dict(
        produce=produce_kafka_python, null_header_values=False,  # KafkaProducer.send rejects None header values
        peer="kafka-python %s" % kafka.__version__,
        encoder="kafka.KafkaProducer, linger_ms=%d, acks=all" % LINGER_MS),
}


def main(out_dir, proxy_port):
    tansu = os.environ["MEPHISTO_BROKER_ADDR"]
    proxy = kafkaraw.RecordingProxy(proxy_port, tansu)
    bootstrap = "127.0.0.1:%d" % proxy.port
    tansu_version = os.environ.get("TANSU_VERSION", "tansu")
    ok = True
    for peer_name, peer in PEERS.items():
        print("%s via %s:" % (peer["peer"], tansu_version))
        for codec in spec.CODECS:
            name = "%s-%s" % (peer_name, codec)
            topic = "golden-" + name
            create_topic(bootstrap, topic)
            inputs = []
            for idem in (False, True):
                recs = spec.records(codec, "%s-%s" % (peer_name, "idem" if idem else "plain"),
                                    null_header_values=peer["null_header_values"])
                offsets = peer["produce"](bootstrap, topic, codec, idem, recs)
                base = sum(len(x) for x in inputs)
                assert offsets == list(range(base, base + len(recs))), (name, idem, offsets)
                inputs.append(recs)
            total = sum(len(x) for x in inputs)
            hw, fetched = kafkaraw.fetch_v4(tansu, topic)
            assert hw == total, (name, hw, total)
            produced = proxy.produced_records(topic)
            fb = kafkaraw.split_batches(fetched)
            pb = kafkaraw.split_batches(produced)
            assert len(pb) == len(inputs), "%s: %d produced batches (retries?)" % (name, len(pb))
            for (h, _), recs in zip(pb, inputs):
                if h["codec"] != codec:
                    print("  WARNING %s: client sent codec %s for %s" % (name, h["codec"], codec))
                    ok = False
            rewrites = [kafkaraw.broker_rewrites(p, f) for (_, p), (_, f) in zip(pb, fb)]
            preserved = len(fb) == len(pb) and all(r is not None for r in rewrites)
            if not preserved:
                print("  NOTE %s: tansu's fetched bytes differ from the produced batches; "
                      "fixture uses the produced bytes" % name)
            spec.write_fixture(out_dir, name, fetched if preserved else produced, inputs, {
                "peer": peer["peer"],
                "encoder": peer["encoder"],
                "captured": ("Fetch v4 from %s (batches byte-identical to the Produce request's "
                             "except BaseOffset/PartitionLeaderEpoch)" % tansu_version) if preserved else
                            ("Produce request records recorded by a loopback proxy in front of %s "
                             "(fetched bytes differed)" % tansu_version),
                "broker": tansu_version,
                "tansu_preserved_bytes": preserved,
                "codec": codec,
                "broker_rewrote": [", ".join("%s %d->%d" % x for x in r) for r in rewrites] if preserved else None,
                "batches_note": "batch 1: producer without idempotence; batch 2: idempotent producer",
            })
    proxy.close()
    return 0 if ok else 1


if __name__ == "__main__":
    sys.exit(main(sys.argv[1], int(sys.argv[2])))
