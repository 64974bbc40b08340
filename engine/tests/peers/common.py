"""Line format shared by the interop peer scripts and engine/tests/interop.rs.

Bytes are hex, `-` for null (None), `=` for empty. Headers are `keyhex:valuehex` joined by `,`,
`.` for no headers.
"""


def unhex(s):
    if s == "-":
        return None
    if s == "=":
        return b""
    return bytes.fromhex(s)


def hx(b):
    if b is None:
        return "-"
    b = bytes(b)
    return b.hex() if b else "="


def parse_headers(s):
    if s == ".":
        return []
    out = []
    for h in s.split(","):
        k, v = h.split(":")
        out.append((unhex(k).decode("utf-8"), unhex(v)))
    return out


def fmt_headers(headers):
    if not headers:
        return "."
    return ",".join("%s:%s" % (hx(k.encode("utf-8")), hx(v)) for k, v in headers)
