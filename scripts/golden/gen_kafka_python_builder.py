"""Golden record batches built directly with kafka-python's own v2 encoder (no broker).

For each codec writes kafka-python-<codec>.{bin,json} with three concatenated batches:
  1. 5 records, no producer state (producer id/epoch/sequence -1), base offset 0;
  2. 5 records, idempotent producer state (id 4242, epoch 3, base sequence 17), base offset 5;
  3. 2 records, transactional (id 4243, epoch 0, base sequence 0), base offset 10.
kafka-python's builder always writes BaseOffset 0 and PartitionLeaderEpoch 0 (the broker assigns
them); like a broker would, we set BaseOffset (bytes 0..8, outside the CRC) to 0, 5, 10 so the
concatenation reads like a log. Nothing else is touched.

Usage: gen_kafka_python_builder.py OUT_DIR
"""

import struct
import sys

import kafka
from kafka.record.default_records import DefaultRecordBatchBuilder

import kafkaraw
import spec


def build(codec, recs, producer=(-1, -1, -1), transactional=False):
    b = DefaultRecordBatchBuilder(magic=2, compression_type=spec.CODEC_IDS[codec],
                                  is_transactional=False, producer_id=-1, producer_epoch=-1,
                                  base_sequence=-1, batch_size=1 << 20)
    if producer[0] != -1 or transactional:
        b.set_producer_state(producer[0], producer[1], producer[2], transactional)
    for i, r in enumerate(recs):
        md = b.append(i, timestamp=r["timestamp"], key=r["key"], value=r["value"], headers=r["headers"])
        assert md is not None
    return bytes(b.build())


def main(out_dir):
    print("kafka-python %s DefaultRecordBatchBuilder:" % kafka.__version__)
    for codec in spec.CODECS:
        r1 = spec.records(codec, "kp-builder-plain")
        r2 = spec.records(codec, "kp-builder-idem")
        r3 = spec.records(codec, "kp-builder-txn")[3:]
        raws = [
            build(codec, r1),
            build(codec, r2, producer=(4242, 3, 17)),
            build(codec, r3, producer=(4243, 0, 0), transactional=True),
        ]
        base = 0
        out = b""
        for raw, recs in zip(raws, (r1, r2, r3)):
            hdr = kafkaraw.split_batches(raw)[0][0]
            assert hdr["codec"] == codec, (codec, hdr)  # kafka-python falls back to none if compression does not help
            out += struct.pack(">q", base) + raw[8:]
            base += len(recs)
        spec.write_fixture(out_dir, "kafka-python-%s" % codec, out, [r1, r2, r3], {
            "peer": "kafka-python %s" % kafka.__version__,
            "encoder": "kafka.record.default_records.DefaultRecordBatchBuilder",
            "captured": "built in-process, no broker; BaseOffset set to 0/5/10 (outside the CRC), "
                        "PartitionLeaderEpoch left 0",
            "broker": None,
            "tansu_preserved_bytes": None,
            "codec": codec,
        })


if __name__ == "__main__":
    main(sys.argv[1])
