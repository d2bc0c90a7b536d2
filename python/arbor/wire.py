"""Frames and messages of the arbor wire protocol (PROTOCOL.md sections 1-4, 10).

A message is a `Message`: its kind and a dict of its fields under their wire
names. Payloads (`args`, `v`, an error's `data`) stay `Raw` msgpack bytes
until the code that knows their type decodes them, as the spec says they are
carried. Decoding checks everything section 2 asks for and raises
`BadMessage` (the frame is intact, the channel goes on) or `FrameError` (the
stream is broken, the channel must close).
"""

import struct

import msgpack

MAJOR, MINOR = 1, 5
MAX_FRAME = 16 << 20
MAX_DEPTH = 64
MAX_ERROR_DEPTH = 8

KINDS = ("hello", "start", "startack", "started", "yield", "stop", "return", "error", "credit")
FUNC_KINDS = ("func", "stream", "context")
PAYLOAD_KEYS = ("args", "v", "spec")  # kept as msgpack bytes (spec: 1.3, hello only)
U16, U32, U64 = (1 << 16) - 1, (1 << 32) - 1, (1 << 64) - 1
I64_MIN, I64_MAX = -(1 << 63), (1 << 63) - 1


class FrameError(Exception):
    """The byte stream is broken (a frame too large, or cut short): fatal."""


class BadMessage(Exception):
    """A frame whose body is not a valid message. `cid` is the call id read
    before the problem was found (0 if none), `kind` the kind if read."""

    def __init__(self, why, cid=0, kind=None):
        super().__init__(why)
        self.cid = cid
        self.kind = kind


class Raw(bytes):
    """One msgpack value, undecoded."""

    def decode_value(self):
        """Decodes the payload; raises ValueError for what the spec refuses
        (an extension type other than the timestamp, bad lengths)."""
        return unpack_payload(self)


NIL = Raw(b"\xc0")


def _ext_hook(code, data):
    raise ValueError("extension type %d: payloads carry no extension type but the timestamp (-1)" % code)


def unpack_payload(raw):
    return msgpack.unpackb(raw, raw=False, ext_hook=_ext_hook, strict_map_key=False,
                           unicode_errors="surrogateescape")


_packer_options = dict(use_bin_type=True, unicode_errors="surrogateescape", datetime=False)


def pack(value):
    """Encodes one value as a payload."""
    return Raw(msgpack.packb(value, **_packer_options))


class Message:
    __slots__ = ("kind", "fields")

    def __init__(self, kind, **fields):
        self.kind = kind
        self.fields = fields

    @property
    def cid(self):
        return self.fields.get("cid", 0)

    def get(self, key, default=None):
        return self.fields.get(key, default)

    def __repr__(self):
        return "Message(%r, %r)" % (self.kind, self.fields)


# --- structure walk: depth, lengths and valid bytes, without decoding ---

_FIXED = {0xc0: 0, 0xc2: 0, 0xc3: 0, 0xca: 4, 0xcb: 8,
          0xcc: 1, 0xcd: 2, 0xce: 4, 0xcf: 8, 0xd0: 1, 0xd1: 2, 0xd2: 4, 0xd3: 8,
          0xd4: 2, 0xd5: 3, 0xd6: 5, 0xd7: 9, 0xd8: 17}
_LEN = {0xd9: 1, 0xda: 2, 0xdb: 4, 0xc4: 1, 0xc5: 2, 0xc6: 4}  # str and bin
_EXT = {0xc7: 1, 0xc8: 2, 0xc9: 4}
_COUNT = {0xdc: (2, 1), 0xdd: (4, 1), 0xde: (2, 2), 0xdf: (4, 2)}


def _uint(b, i, n):
    if i + n > len(b):
        raise BadMessage("truncated: a length runs past the end of the body")
    return int.from_bytes(b[i:i + n], "big")


def skip(b, i, level=1):
    """Returns the index after the value at b[i]. Every value counts as a
    level, a scalar too; a value at a level over MAX_DEPTH is refused."""
    if level > MAX_DEPTH:
        raise BadMessage("values nested deeper than %d" % MAX_DEPTH)
    if i >= len(b):
        raise BadMessage("truncated: a value is missing at the end of the body")
    c = b[i]
    i += 1
    count = 0
    if c <= 0x7f or c >= 0xe0:
        return i
    elif c <= 0x8f:
        count = 2 * (c & 0x0f)
    elif c <= 0x9f:
        count = c & 0x0f
    elif c <= 0xbf:
        i += c & 0x1f
    elif c in _FIXED:
        i += _FIXED[c]
    elif c in _LEN:
        n = _LEN[c]
        i += n + _uint(b, i, n)
    elif c in _EXT:
        n = _EXT[c]
        i += n + 1 + _uint(b, i, n)
    elif c in _COUNT:
        n, per = _COUNT[c]
        count = per * _uint(b, i, n)
        i += n
    else:
        raise BadMessage("invalid msgpack byte 0x%02x" % c)
    if i > len(b) or count > len(b) - i:
        raise BadMessage("truncated: a value claims more than the %d bytes left" % max(len(b) - i, 0))
    for _ in range(count):
        i = skip(b, i, level + 1)
    return i


def _map_header(b, i):
    """Reads a map header at b[i]: (entries, index after the header), or
    None if the value there is not a map."""
    c = b[i] if i < len(b) else None
    if c is None:
        return None
    if 0x80 <= c <= 0x8f:
        return c & 0x0f, i + 1
    if c == 0xde:
        return _uint(b, i + 1, 2), i + 3
    if c == 0xdf:
        return _uint(b, i + 1, 4), i + 5
    return None


def _array_header(b, i):
    c = b[i]
    if 0x90 <= c <= 0x9f:
        return c & 0x0f, i + 1
    if c == 0xdc:
        return _uint(b, i + 1, 2), i + 3
    if c == 0xdd:
        return _uint(b, i + 1, 4), i + 5
    return None


def _value(b, i, j):
    return msgpack.unpackb(b[i:j], raw=False, strict_map_key=False, unicode_errors="surrogateescape")


def _is_int(v):
    return isinstance(v, int) and not isinstance(v, bool)


def _check_uint(v, top, what):
    if not _is_int(v) or v < 0 or v > top:
        raise ValueError("%s must be an unsigned integer up to %d, not %r" % (what, top, v))
    return v


def _check_str(v, what):
    if not isinstance(v, str):
        raise ValueError("%s must be a string, not %s" % (what, type(v).__name__))
    return v


def check_actor(v, what="actor"):
    if v is None:
        return None
    if not isinstance(v, dict):
        raise ValueError("%s must be a map or nil" % what)
    out = {"name": "", "uuid": ""}
    for key in ("name", "uuid"):
        if key in v:
            out[key] = _check_str(v[key], "%s.%s" % (what, key))
    return out


def _check_ver(v):
    if not isinstance(v, list) or len(v) != 2:
        raise ValueError("ver must be an array of 2 integers")
    return [_check_uint(v[0], U16, "ver[0]"), _check_uint(v[1], U16, "ver[1]")]


def _check_bool(v, what):
    if not isinstance(v, bool):
        raise ValueError("%s must be a boolean" % what)
    return v


def _check_int64(v, what, minimum=I64_MIN):
    if not _is_int(v) or v < minimum or v > I64_MAX:
        raise ValueError("%s must be an integer from %d to %d, not %r" % (what, minimum, I64_MAX, v))
    return v


def _check_fk(v):
    _check_str(v, "fk")
    if v not in FUNC_KINDS:
        raise ValueError("fk %r is not func, stream or context" % v)
    return v


_CHECKS = {
    "ver": _check_ver,
    "actor": check_actor,
    "pid": lambda v: _check_int64(v, "pid"),
    "init": lambda v: _check_bool(v, "init"),
    "cid": lambda v: _check_uint(v, U64, "cid"),
    "fn": lambda v: _check_str(v, "fn"),
    "fk": _check_fk,
    "credit": lambda v: _check_uint(v, U32, "credit"),
    "timeout": lambda v: _check_int64(v, "timeout", 0),
    "n": lambda v: _check_uint(v, U32, "n"),
}

_REQUIRED = {
    "hello": ("ver", "actor", "pid"),
    "start": ("cid", "fn", "fk"),
    "startack": ("cid", "fk"),
    "started": ("cid",),
    "yield": ("cid",),
    "stop": ("cid",),
    "return": ("cid",),
    "error": ("err",),
    "credit": ("cid", "n"),
}
_DEFAULTS = {"init": False, "credit": 0, "timeout": 0, "args": NIL, "v": NIL, "spec": Raw(b"")}
_OPTIONAL = {
    "hello": ("init", "spec"),
    "start": ("args", "credit", "timeout"),
    "started": ("v", "credit"),
    "yield": ("v",),
    "return": ("v",),
    "error": ("cid",),
}


def _quick_yield(b):
    """Decodes a yield in the Go encoder's canonical form (k, cid, v) on the
    hot path of a stream, or returns None for decode to do it in full."""
    n = len(_YIELD_HEAD)
    if not b.startswith(_YIELD_HEAD) or len(b) <= n:
        return None
    c = b[n]
    if 0x01 <= c <= 0x7f:
        cid, i = c, n + 1
    elif 0xcc <= c <= 0xcf:
        w = 1 << (c - 0xcc)
        cid, i = int.from_bytes(b[n + 1:n + 1 + w], "big"), n + 1 + w
    else:
        return None
    if b[i:i + 2] != _V or cid == 0:
        return None
    i += 2
    if skip(b, i) != len(b):
        return None
    return Message("yield", cid=cid, v=Raw(b[i:]))


def decode(body):
    """Decodes one frame's body into a Message, or raises BadMessage."""
    b = bytes(body)
    quick = _quick_yield(b)
    if quick is not None:
        return quick
    head = _map_header(b, 0)
    if head is None:
        skip(b, 0)  # a malformed value is reported as such
        raise BadMessage("the body is not a map")
    n, i = head
    seen = {}
    cid, kind = 0, None
    for _ in range(n):
        # Each entry is checked as it comes, so that a problem after the
        # cid fails just that call (PROTOCOL.md section 10).
        ki = i
        try:
            i = skip(b, i)
            key = _value(b, ki, i)
            vi = i
            i = skip(b, i)
        except BadMessage as e:
            raise BadMessage(str(e), cid, kind)
        try:
            if not isinstance(key, str):
                raise ValueError("a key that is not a string: %r" % (key,))
            if key in seen:
                raise ValueError("the key %r twice" % key)
            if key in PAYLOAD_KEYS:
                value = Raw(b[vi:i])
                if key == "spec" and b[vi] == 0xc0:
                    value = Raw(b"")  # nil: no spec
                elif key == "spec" and _map_header(b, vi) is None:
                    raise ValueError("spec is not a map")
            elif key == "err":
                value = decode_error(b, vi, i)
            elif key == "k":
                value = _check_str(_value(b, vi, i), "k")
                if value not in KINDS:
                    raise ValueError("unknown message kind %r" % value)
                kind = value
            elif key in _CHECKS:
                value = _CHECKS[key](_value(b, vi, i))
                if key == "cid":
                    cid = value
            else:
                continue  # unknown keys are ignored, whatever their value
        except ValueError as e:
            raise BadMessage(str(e), cid, kind)
        seen[key] = value
    if i != len(b):
        raise BadMessage("%d bytes after the message" % (len(b) - i))
    if kind is None:
        raise BadMessage("no message kind (\"k\")", cid)
    for key in _REQUIRED[kind]:
        if key not in seen:
            raise BadMessage("%s without %r" % (kind, key), cid, kind)
    if kind not in ("error", "hello") and cid == 0:
        raise BadMessage("%s with call id 0, which only error may carry" % kind, 0, kind)
    fields = {}
    for key in _REQUIRED[kind] + _OPTIONAL.get(kind, ()):
        fields[key] = seen.get(key, _DEFAULTS.get(key, 0))
    return Message(kind, **fields)


def read_frame(stream, max_frame=MAX_FRAME):
    """Reads one frame from a binary stream: its body, or None at a clean end."""
    head = stream.read(4)
    if not head:
        return None
    if len(head) < 4:
        raise FrameError("the stream ended inside a frame header")
    (n,) = struct.unpack(">I", head)
    if n > max_frame:
        raise FrameError("a frame of %d bytes, over the maximum of %d" % (n, max_frame))
    body = stream.read(n)
    if len(body) < n:
        raise FrameError("the stream ended inside a frame: %d of %d bytes" % (len(body), n))
    return body


# --- encoding, in the canonical order of the spec's tables ---

_ORDER = {
    "hello": ("ver", "actor", "pid", "init", "spec"),
    "start": ("cid", "fn", "fk", "args", "credit", "timeout"),
    "startack": ("cid", "fk"),
    "started": ("cid", "v", "credit"),
    "yield": ("cid", "v"),
    "stop": ("cid",),
    "return": ("cid", "v"),
    "error": ("cid", "err"),
    "credit": ("cid", "n"),
}
_SENT_WHEN_NONZERO = {("start", "credit"), ("start", "timeout"), ("error", "cid"), ("hello", "spec")}


def _pack(value):
    return msgpack.packb(value, **_packer_options)


def _map_head(n):
    if n <= 15:
        return bytes([0x80 | n])
    if n <= 0xffff:
        return b"\xde" + n.to_bytes(2, "big")
    return b"\xdf" + n.to_bytes(4, "big")


def _array_head(n):
    if n <= 15:
        return bytes([0x90 | n])
    if n <= 0xffff:
        return b"\xdc" + n.to_bytes(2, "big")
    return b"\xdd" + n.to_bytes(4, "big")


def encode_body(msg):
    parts = [_pack("k"), _pack(msg.kind)]
    count = 1
    for key in _ORDER[msg.kind]:
        value = msg.fields.get(key, _DEFAULTS.get(key, 0))
        if (msg.kind, key) in _SENT_WHEN_NONZERO and not value:
            continue
        if key in PAYLOAD_KEYS:
            enc = bytes(value) if isinstance(value, Raw) else _pack(value)
        elif key == "err":
            enc = encode_error(value)
        else:
            enc = _pack(value)
        parts.append(_pack(key))
        parts.append(enc)
        count += 1
    return _map_head(count) + b"".join(parts)


def frame(msg):
    """Encodes a message as one frame, length prefix included."""
    body = encode_body(msg)
    return struct.pack(">I", len(body)) + body


# --- RemoteError (section 4) ---

class RemoteError(Exception):
    """An error boxed by a peer: code, type, msg, stack, src, relay,
    canceller, name, data (Raw or None) and children (RemoteErrors)."""

    def __init__(self, msg="", code="", type="", stack="", src=None, relay=(), canceller=None,
                 name="", data=None, children=()):
        super().__init__(msg)
        self.msg = msg
        self.code = code
        self.type = type
        self.stack = stack
        self.src = src or {"name": "", "uuid": ""}
        self.relay = list(relay)
        self.canceller = canceller
        self.name = name
        self.data = data
        self.children = list(children)

    def __str__(self):
        who = self.src.get("name") or "?"
        return "%s: %s" % (who, self.msg) if self.msg else who

    def to_fields(self):
        """The error as the golden vectors' JSON shows it (payloads as hex)."""
        out = {"code": self.code, "type": self.type, "msg": self.msg}
        if self.stack:
            out["stack"] = self.stack
        out["src"] = self.src
        if self.relay:
            out["relay"] = self.relay
        if self.canceller and (self.canceller.get("name") or self.canceller.get("uuid")):
            out["canceller"] = self.canceller
        if self.name:
            out["name"] = self.name
        if self.data is not None:
            out["data"] = bytes(self.data).hex()
        if self.children:
            out["children"] = [c.to_fields() for c in self.children]
        return out


def decode_error(b, i, j, level=1):
    if level > MAX_ERROR_DEPTH:
        raise ValueError("an error group nested deeper than %d levels" % MAX_ERROR_DEPTH)
    head = _map_header(b, i)
    if head is None:
        raise ValueError("err must be a map")
    n, i = head
    kw = {}
    for _ in range(n):
        ki = i
        i = skip(b, i)
        key = _value(b, ki, i)
        vi = i
        i = skip(b, i)
        if not isinstance(key, str):
            raise ValueError("an error key that is not a string: %r" % (key,))
        if key in kw:
            raise ValueError("the error key %r twice" % key)
        if key in ("code", "type", "msg", "stack", "name"):
            kw[key] = _check_str(_value(b, vi, i), "err." + key)
        elif key in ("src", "canceller"):
            kw[key] = check_actor(_value(b, vi, i), "err." + key)
        elif key == "relay":
            relay = _value(b, vi, i)
            if not isinstance(relay, list):
                raise ValueError("err.relay must be an array")
            kw[key] = [check_actor(a, "err.relay[]") for a in relay]
        elif key == "data":
            kw[key] = Raw(b[vi:i])
        elif key == "children":
            head = _array_header(b, vi)
            if head is None:
                raise ValueError("err.children must be an array")
            count, ci = head
            children = []
            for _ in range(count):
                cj = skip(b, ci)
                children.append(decode_error(b, ci, cj, level + 1))
                ci = cj
            kw[key] = children
    return RemoteError(**kw)


def encode_error(e):
    parts = []
    add = parts.append
    add((_pack("code"), _pack(e.code)))
    add((_pack("type"), _pack(e.type)))
    add((_pack("msg"), _pack(e.msg)))
    if e.stack:
        add((_pack("stack"), _pack(e.stack)))
    add((_pack("src"), _pack(e.src)))
    if e.relay:
        add((_pack("relay"), _pack(e.relay)))
    if e.canceller and (e.canceller.get("name") or e.canceller.get("uuid")):
        add((_pack("canceller"), _pack(e.canceller)))
    if e.name:
        add((_pack("name"), _pack(e.name)))
    if e.data is not None:
        add((_pack("data"), bytes(e.data)))
    if e.children:
        add((_pack("children"), _array_head(len(e.children)) + b"".join(encode_error(c) for c in e.children)))
    return _map_head(len(parts)) + b"".join(k + v for k, v in parts)


_YIELD_HEAD = b"\x83" + msgpack.packb("k") + msgpack.packb("yield") + msgpack.packb("cid")
_V = msgpack.packb("v")


def yield_frame(cid, payload):
    """frame(Message("yield", cid=cid, v=payload)) for the hot path of a
    stream, with payload already packed: the same bytes, fewer steps."""
    body = b"".join((_YIELD_HEAD, msgpack.packb(cid), _V, payload))
    return len(body).to_bytes(4, "big") + body
