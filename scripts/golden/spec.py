"""The inputs the golden-vector generators ask the peers to encode, and the expected-JSON writer.

The expected JSON is built from these inputs (what we asked for), plus the batch-header fields the
broker or builder set (base offset, producer id/epoch/sequence, timestamps), read with the minimal
61-byte header reader in kafkaraw.py. As an independent sanity check, every generator also decodes
its bytes with kafka-python's reader and asserts they match the inputs; that decode never feeds the
JSON.
"""

import json
import os

import kafkaraw

CODECS = ["none", "gzip", "snappy", "lz4", "zstd"]
CODEC_IDS = {"none": 0, "gzip": 1, "snappy": 2, "lz4": 3, "zstd": 4}

# 2023-11-14T22:13:20Z; explicit CreateTime timestamps, relative to it.
T0 = 1_700_000_000_000


def records(codec, tag, null_header_values=True):
    """Five records covering: key+value+headers, null key, null value (tombstone), empty key and
    empty value with repeated header keys and a timestamp *earlier* than the first record's (negative
    timestamp delta), binary key, a non-ASCII header key and a large timestamp delta.

    Values repeat text so every codec actually shrinks the batch (kafka-python sends a batch
    uncompressed when compression does not help)."""
    filler = ("mephisto golden %s %s | " % (tag, codec)).encode()
    return [
        dict(key=b"key-0", value=filler * 4,
             headers=[("h1", b"v1"), ("h-empty", b"")], timestamp=T0),
        dict(key=None, value=b"no key here; " + filler * 3,
             headers=[], timestamp=T0 + 1),
        dict(key=b"key-2", value=None,
             headers=[("null-value", None)] if null_header_values else [("tomb", b"stone")],
             timestamp=T0 + 7),
        dict(key=b"", value=b"",
             headers=[("dup", b"a"), ("dup", b"b")], timestamp=T0 - 5),
        dict(key=bytes(range(0, 256, 17)),
             value=bytes(range(0, 256, 3)) + filler * 3,
             headers=[("ключ-ü", b"\xff\x00\xfe")], timestamp=T0 + 86_400_000),
    ]


def _hex(b):
    return None if b is None else b.hex()


def expected_batch(header, recs):
    """Expected JSON for one batch: header fields from the parsed header, records from the inputs.
    Offsets are base_offset + index (both peers write offset deltas 0..n-1; asserted below)."""
    assert header["record_count"] == len(recs), (header, len(recs))
    assert header["last_offset_delta"] == len(recs) - 1, header
    assert header["first_timestamp"] == recs[0]["timestamp"], header
    return {
        "base_offset": header["base_offset"],
        "partition_leader_epoch": header["partition_leader_epoch"],
        "codec": header["codec"],
        "timestamp_type": header["timestamp_type"],
        "is_transactional": header["is_transactional"],
        "is_control": header["is_control"],
        "last_offset_delta": header["last_offset_delta"],
        "first_timestamp": header["first_timestamp"],
        "max_timestamp": header["max_timestamp"],
        "producer_id": header["producer_id"],
        "producer_epoch": header["producer_epoch"],
        "base_sequence": header["base_sequence"],
        "record_count": header["record_count"],
        "records": [
            {
                "offset": header["base_offset"] + i,
                "timestamp": r["timestamp"],
                "key": _hex(r["key"]),
                "value": _hex(r["value"]),
                "headers": [[k, _hex(v)] for k, v in r["headers"]],
            }
            for i, r in enumerate(recs)
        ],
    }


def cross_check(raw, inputs_per_batch):
    """Independent sanity check with kafka-python's decoder: every record matches its input."""
    from kafka.record.default_records import DefaultRecordBatch

    batches = kafkaraw.split_batches(raw)
    assert len(batches) == len(inputs_per_batch), (len(batches), len(inputs_per_batch))
    for (hdr, braw), recs in zip(batches, inputs_per_batch):
        assert hdr["crc_ok"], hdr
        b = DefaultRecordBatch(bytes(braw))
        assert b.validate_crc()
        got = list(b)
        assert len(got) == len(recs), (len(got), len(recs))
        for i, (g, r) in enumerate(zip(got, recs)):
            assert g.offset == hdr["base_offset"] + i, (g.offset, hdr["base_offset"], i)
            assert g.timestamp == r["timestamp"], (i, g.timestamp, r["timestamp"])
            assert g.key == r["key"], (i, g.key, r["key"])
            assert g.value == r["value"], (i, g.value, r["value"])
            assert [(k, v) for k, v in g.headers] == r["headers"], (i, g.headers, r["headers"])


def _dumps(doc):
    """Indented JSON with one record per line (keeps the files short and diffable)."""
    placeholders = {}
    shallow = dict(doc)
    shallow["batches"] = []
    for bi, b in enumerate(doc["batches"]):
        b = dict(b)
        recs = []
        for ri, r in enumerate(b["records"]):
            tag = "@@REC-%d-%d@@" % (bi, ri)
            placeholders['"%s"' % tag] = json.dumps(r, ensure_ascii=False)
            recs.append(tag)
        b["records"] = recs
        shallow["batches"].append(b)
    text = json.dumps(shallow, indent=1, ensure_ascii=False)
    for tag, rec in placeholders.items():
        text = text.replace(tag, rec)
    assert json.loads(text) == doc
    return text


def write_fixture(out_dir, name, raw, inputs_per_batch, meta):
    """Write NAME.bin (raw bytes) and NAME.json (expected content); return the parsed headers."""
    cross_check(raw, inputs_per_batch)
    headers = [h for h, _ in kafkaraw.split_batches(raw)]
    doc = dict(meta)
    doc["bin"] = name + ".bin"
    doc["bin_len"] = len(raw)
    doc["batches"] = [expected_batch(h, recs) for h, recs in zip(headers, inputs_per_batch)]
    os.makedirs(out_dir, exist_ok=True)
    with open(os.path.join(out_dir, name + ".bin"), "wb") as f:
        f.write(raw)
    with open(os.path.join(out_dir, name + ".json"), "w", encoding="utf-8") as f:
        f.write(_dumps(doc) + "\n")
    summary = ", ".join(
        "[off %d %s n=%d pid=%d ep=%d seq=%d%s]" % (h["base_offset"], h["codec"], h["record_count"],
                                                    h["producer_id"], h["producer_epoch"],
                                                    h["base_sequence"], " txn" if h["is_transactional"] else "")
        for h in headers)
    print("  %-28s %5d bytes  %s" % (name, len(raw), summary))
    return headers
