"""Minimal, stdlib-only Kafka protocol bits for the golden-vector generators.

Deliberately independent of the peers under test: a raw Fetch v4 request, a reader of the 61-byte
record batch v2 header (no decompression, no record parsing), a CRC-32C check, a parser of Produce
requests (v3..v13, flexible or not) that pulls out the record bytes, and a recording TCP proxy.
"""

import socket
import struct
import threading

# ----------------------------------------------------------------------------- framing


def recv_exact(sock, n):
    buf = bytearray()
    while len(buf) < n:
        chunk = sock.recv(n - len(buf))
        if not chunk:
            raise EOFError("connection closed after %d of %d bytes" % (len(buf), n))
        buf += chunk
    return bytes(buf)


def recv_frame(sock):
    (size,) = struct.unpack(">i", recv_exact(sock, 4))
    return recv_exact(sock, size)


def kstring(s):
    b = s.encode()
    return struct.pack(">h", len(b)) + b


# ----------------------------------------------------------------------------- Fetch v4


def fetch_v4(addr, topic, partition=0, offset=0, max_bytes=1 << 20):
    """Return (high_watermark, records bytes) of one partition, read with a Fetch v4 request."""
    host, port = addr.rsplit(":", 1)
    corr = 0x60D
    body = struct.pack(">hhi", 1, 4, corr) + kstring("mephisto-golden")
    body += struct.pack(">iiiib", -1, 500, 1, max_bytes, 0)  # replica, max_wait, min_bytes, max_bytes, read_uncommitted
    body += struct.pack(">i", 1) + kstring(topic)
    body += struct.pack(">i", 1) + struct.pack(">iqi", partition, offset, max_bytes)
    with socket.create_connection((host, int(port)), timeout=10) as s:
        s.sendall(struct.pack(">i", len(body)) + body)
        resp = recv_frame(s)
    pos = 0

    def take(fmt):
        nonlocal pos
        vals = struct.unpack_from(fmt, resp, pos)
        pos += struct.calcsize(fmt)
        return vals if len(vals) > 1 else vals[0]

    def take_str():
        nonlocal pos
        n = take(">h")
        v = resp[pos:pos + n].decode()
        pos += n
        return v

    assert take(">i") == corr
    take(">i")  # throttle_time_ms
    result = None
    for _ in range(take(">i")):
        t = take_str()
        for _ in range(take(">i")):
            p, err, hw, _lso = take(">ihqq")
            n_aborted = take(">i")
            for _ in range(max(n_aborted, 0)):
                take(">qq")
            n = take(">i")
            records = b"" if n < 0 else resp[pos:pos + n]
            pos += max(n, 0)
            if t == topic and p == partition:
                if err:
                    raise RuntimeError("fetch %s-%d: error code %d" % (t, p, err))
                result = (hw, records)
    if result is None:
        raise RuntimeError("fetch: partition %s-%d missing from response" % (topic, partition))
    return result


# ----------------------------------------------------------------------------- batch header

HEADER = struct.Struct(">qiibIhiqqqhii")
HEADER_SIZE = HEADER.size  # 61
CODECS = {0: "none", 1: "gzip", 2: "snappy", 3: "lz4", 4: "zstd"}


def _crc32c_table():
    table = []
    for i in range(256):
        c = i
        for _ in range(8):
            c = (c >> 1) ^ 0x82F63B78 if c & 1 else c >> 1
        table.append(c)
    return table


_CRC_TABLE = _crc32c_table()


def crc32c(data):
    c = 0xFFFFFFFF
    for b in data:
        c = _CRC_TABLE[(c ^ b) & 0xFF] ^ (c >> 8)
    return c ^ 0xFFFFFFFF


def split_batches(data):
    """Split concatenated v2 batches; return a list of (header dict, raw batch bytes).

    Reads only the fixed header fields; records are not decoded. A trailing partial batch is an
    error here (fixtures are whole batches).
    """
    out = []
    pos = 0
    while pos < len(data):
        if len(data) - pos < HEADER_SIZE:
            raise ValueError("trailing %d bytes" % (len(data) - pos))
        (base_offset, length, leader_epoch, magic, crc, attrs, last_offset_delta, first_ts, max_ts,
         pid, epoch, base_seq, count) = HEADER.unpack_from(data, pos)
        end = pos + 12 + length
        if magic != 2 or end > len(data):
            raise ValueError("bad batch at %d (magic %d, length %d)" % (pos, magic, length))
        raw = data[pos:end]
        out.append(({
            "base_offset": base_offset,
            "batch_length": length,
            "partition_leader_epoch": leader_epoch,
            "magic": magic,
            "crc": crc,
            "crc_ok": crc32c(raw[21:]) == crc,
            "attributes": attrs,
            "codec": CODECS[attrs & 7],
            "timestamp_type": "log_append_time" if attrs & 8 else "create_time",
            "is_transactional": bool(attrs & 0x10),
            "is_control": bool(attrs & 0x20),
            "last_offset_delta": last_offset_delta,
            "first_timestamp": first_ts,
            "max_timestamp": max_ts,
            "producer_id": pid,
            "producer_epoch": epoch,
            "base_sequence": base_seq,
            "record_count": count,
        }, raw))
        pos = end
    return out


def broker_rewrites(produced, fetched):
    """Compare a produced batch with the broker's copy. Returns None if they differ anywhere except
    BaseOffset (bytes 0..8) and PartitionLeaderEpoch (12..16) -- the fields a broker rewrites, both
    outside the CRC -- else the list of those fields that changed, as (name, produced, fetched)."""
    if len(produced) != len(fetched) or produced[8:12] != fetched[8:12] or produced[16:] != fetched[16:]:
        return None
    out = []
    for name, lo, hi, fmt in (("base_offset", 0, 8, ">q"), ("partition_leader_epoch", 12, 16, ">i")):
        a, b = struct.unpack(fmt, produced[lo:hi])[0], struct.unpack(fmt, fetched[lo:hi])[0]
        if a != b:
            out.append((name, a, b))
    return out


# ----------------------------------------------------------------------------- Produce requests


class _Reader:
    def __init__(self, data, pos=0):
        self.d = data
        self.pos = pos

    def fmt(self, f):
        v = struct.unpack_from(f, self.d, self.pos)
        self.pos += struct.calcsize(f)
        return v[0] if len(v) == 1 else v

    def uvarint(self):
        shift = result = 0
        while True:
            b = self.d[self.pos]
            self.pos += 1
            result |= (b & 0x7F) << shift
            if not b & 0x80:
                return result
            shift += 7

    def raw(self, n):
        v = self.d[self.pos:self.pos + n]
        self.pos += n
        return v

    def string(self, flexible, nullable=False):
        n = self.uvarint() - 1 if flexible else self.fmt(">h")
        return None if n < 0 else self.raw(n).decode()

    def array_len(self, flexible):
        return self.uvarint() - 1 if flexible else self.fmt(">i")

    def tagged(self):
        for _ in range(self.uvarint()):
            self.uvarint()
            self.raw(self.uvarint())


def parse_produce_request(frame):
    """Parse a Produce request frame (without the size prefix).

    Returns (api_version, [(topic, partition, records bytes)]). Supports v3..v12 (v9+ flexible);
    v13 (topic ids) is rejected.
    """
    r = _Reader(frame)
    api_key, version, _corr = r.fmt(">hhi")
    assert api_key == 0
    if version < 3 or version > 12:
        raise ValueError("unsupported Produce version %d" % version)
    flexible = version >= 9
    r.string(False)  # client_id: always a classic nullable string in the request header
    if flexible:
        r.tagged()
    r.string(flexible)  # transactional_id
    r.fmt(">hi")  # acks, timeout_ms
    out = []
    for _ in range(r.array_len(flexible)):
        topic = r.string(flexible)
        for _ in range(r.array_len(flexible)):
            partition = r.fmt(">i")
            n = r.uvarint() - 1 if flexible else r.fmt(">i")
            records = b"" if n < 0 else r.raw(n)
            if flexible:
                r.tagged()
            out.append((topic, partition, records))
        if flexible:
            r.tagged()
    return version, out


class RecordingProxy:
    """Loopback TCP proxy that forwards to `upstream` ("host:port") and keeps every Produce request
    frame a client sent. Start tansu with its advertised listener set to this proxy's port, so
    clients reach the broker only through the proxy."""

    def __init__(self, port, upstream):
        self.upstream = upstream
        self.produce_frames = []
        self._lock = threading.Lock()
        self._srv = socket.create_server(("127.0.0.1", port))
        self.port = self._srv.getsockname()[1]
        self._closed = False
        threading.Thread(target=self._accept, daemon=True).start()

    def _accept(self):
        while not self._closed:
            try:
                client, _ = self._srv.accept()
            except OSError:
                return
            host, port = self.upstream.rsplit(":", 1)
            server = socket.create_connection((host, int(port)))
            threading.Thread(target=self._c2s, args=(client, server), daemon=True).start()
            threading.Thread(target=self._pipe, args=(server, client), daemon=True).start()

    def _c2s(self, src, dst):
        try:
            while True:
                frame = recv_frame(src)
                if struct.unpack_from(">h", frame)[0] == 0:
                    with self._lock:
                        self.produce_frames.append(frame)
                dst.sendall(struct.pack(">i", len(frame)) + frame)
        except (EOFError, OSError):
            pass
        finally:
            for s in (src, dst):
                try:
                    s.shutdown(socket.SHUT_RDWR)
                except OSError:
                    pass

    @staticmethod
    def _pipe(src, dst):
        try:
            while True:
                data = src.recv(65536)
                if not data:
                    break
                dst.sendall(data)
        except OSError:
            pass
        finally:
            for s in (src, dst):
                try:
                    s.shutdown(socket.SHUT_RDWR)
                except OSError:
                    pass

    def produced_records(self, topic, partition=0):
        """Concatenated record bytes of every recorded Produce request for topic/partition."""
        with self._lock:
            frames = list(self.produce_frames)
        out = b""
        for f in frames:
            _v, parts = parse_produce_request(f)
            for t, p, recs in parts:
                if t == topic and p == partition:
                    out += recs
        return out

    def close(self):
        self._closed = True
        self._srv.close()
