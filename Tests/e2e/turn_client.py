"""A small STUN/TURN client for the end-to-end tests (RFC 8489, RFC 8656).

Written for these tests: it encodes requests with the long-term credential
mechanism (MESSAGE-INTEGRITY over an MD5 key, FINGERPRINT), decodes answers,
and speaks over UDP or a TCP stream (RFC 8656 §12.5 framing).
"""

from __future__ import annotations

import base64
import hashlib
import hmac
import os
import socket
import ssl
import struct
import zlib

MAGIC = 0x2112A442

# Methods and classes (RFC 8489 §5, RFC 8656 §17).
BINDING, ALLOCATE, REFRESH, SEND, DATA, CREATE_PERMISSION, CHANNEL_BIND = 0x001, 0x003, 0x004, 0x006, 0x007, 0x008, 0x009
REQUEST, INDICATION, SUCCESS, ERROR = 0x000, 0x010, 0x100, 0x110

# Attributes.
USERNAME, MESSAGE_INTEGRITY, ERROR_CODE, UNKNOWN_ATTRIBUTES = 0x0006, 0x0008, 0x0009, 0x000A
CHANNEL_NUMBER, LIFETIME, XOR_PEER_ADDRESS, DATA_ATTR = 0x000C, 0x000D, 0x0012, 0x0013
REALM, NONCE, XOR_RELAYED_ADDRESS, REQUESTED_TRANSPORT = 0x0014, 0x0015, 0x0016, 0x0019
XOR_MAPPED_ADDRESS, FINGERPRINT = 0x0020, 0x8028


def msg_type(method: int, cls: int) -> int:
    """Interleave method and class bits (RFC 8489 §5)."""
    return (method & 0x000F) | ((method & 0x0070) << 1) | ((method & 0x0F80) << 2) | cls


def split_type(t: int) -> tuple[int, int]:
    cls = t & 0x0110
    method = (t & 0x000F) | ((t >> 1) & 0x0070) | ((t >> 2) & 0x0F80)
    return method, cls


def xor_address(ip: str, port: int, tid: bytes) -> bytes:
    """XOR-*-ADDRESS value for IPv4 (RFC 8489 §14.2)."""
    packed = socket.inet_aton(ip)
    xport = port ^ (MAGIC >> 16)
    xip = bytes(a ^ b for a, b in zip(packed, struct.pack("!I", MAGIC)))
    return struct.pack("!BBH", 0, 1, xport) + xip


def parse_xor_address(value: bytes) -> tuple[str, int]:
    family, xport = value[1], struct.unpack("!H", value[2:4])[0]
    assert family == 1, "IPv4 only in these tests"
    ip = bytes(a ^ b for a, b in zip(value[4:8], struct.pack("!I", MAGIC)))
    return socket.inet_ntoa(ip), xport ^ (MAGIC >> 16)


def long_term_key(user: str, realm: str, password: str) -> bytes:
    return hashlib.md5(f"{user}:{realm}:{password}".encode()).digest()


def rest_password(secret: str, username: str) -> str:
    """TURN REST credential: base64(HMAC-SHA1(secret, username))."""
    return base64.b64encode(hmac.new(secret.encode(), username.encode(), hashlib.sha1).digest()).decode()


def _attr(t: int, value: bytes) -> bytes:
    return struct.pack("!HH", t, len(value)) + value + b"\0" * ((4 - len(value) % 4) % 4)


def encode(method: int, cls: int, attrs: list[tuple[int, bytes]], tid: bytes | None = None,
           key: bytes | None = None, fingerprint: bool = True) -> bytes:
    tid = tid or os.urandom(12)
    body = b"".join(_attr(t, v) for t, v in attrs)
    if key is not None:
        # Length covers up to and including MESSAGE-INTEGRITY (RFC 8489 §14.5).
        header = struct.pack("!HHI", msg_type(method, cls), len(body) + 24, MAGIC) + tid
        mac = hmac.new(key, header + body, hashlib.sha1).digest()
        body += _attr(MESSAGE_INTEGRITY, mac)
    if fingerprint:
        header = struct.pack("!HHI", msg_type(method, cls), len(body) + 8, MAGIC) + tid
        crc = (zlib.crc32(header + body) ^ 0x5354554E) & 0xFFFFFFFF
        body += _attr(FINGERPRINT, struct.pack("!I", crc))
    return struct.pack("!HHI", msg_type(method, cls), len(body), MAGIC) + tid + body


class Message:
    def __init__(self, data: bytes):
        t, length, magic = struct.unpack("!HHI", data[:8])
        assert magic == MAGIC, f"not STUN: {data[:20]!r}"
        self.method, self.cls = split_type(t)
        self.tid = data[8:20]
        self.attrs: list[tuple[int, bytes]] = []
        i = 20
        while i + 4 <= 20 + length:
            at, al = struct.unpack("!HH", data[i:i + 4])
            self.attrs.append((at, data[i + 4:i + 4 + al]))
            i += 4 + al + ((4 - al % 4) % 4)

    def get(self, t: int) -> bytes | None:
        return next((v for at, v in self.attrs if at == t), None)

    @property
    def error(self) -> int | None:
        v = self.get(ERROR_CODE)
        return None if v is None else (v[2] & 0x7) * 100 + v[3]

    @property
    def success(self) -> bool:
        return self.cls == SUCCESS


def channel_data(channel: int, payload: bytes, padded: bool) -> bytes:
    pad = (4 - len(payload) % 4) % 4 if padded else 0
    return struct.pack("!HH", channel, len(payload)) + payload + b"\0" * pad


class TURNClient:
    """Long-term-credential TURN client over UDP or TCP to 127.0.0.1:port."""

    def __init__(self, port: int, user: str = "", password: str = "", tcp: bool = False, timeout: float = 2.0,
                 tls: bool = False):
        self.port, self.user, self.password, self.tcp = port, user, password, tcp or tls
        self.realm = self.nonce = ""
        if tls:
            # Test certificates are self-signed: no verification.
            ctx = ssl.SSLContext(ssl.PROTOCOL_TLS_CLIENT)
            ctx.check_hostname = False
            ctx.verify_mode = ssl.CERT_NONE
            raw = socket.create_connection(("127.0.0.1", port), timeout=timeout)
            self.sock = ctx.wrap_socket(raw, server_hostname="localhost")
        elif tcp:
            self.sock = socket.create_connection(("127.0.0.1", port), timeout=timeout)
        else:
            self.sock = socket.socket(socket.AF_INET, socket.SOCK_DGRAM)
            self.sock.bind(("127.0.0.1", 0))
        self.sock.settimeout(timeout)
        self.buf = b""

    def close(self):
        self.sock.close()

    def send_raw(self, data: bytes):
        if self.tcp:
            self.sock.sendall(data)
        else:
            self.sock.sendto(data, ("127.0.0.1", self.port))

    def _read_exact(self, n: int) -> bytes:
        while len(self.buf) < n:
            chunk = self.sock.recv(65536)
            if not chunk:
                raise ConnectionError("closed by server")
            self.buf += chunk
        out, self.buf = self.buf[:n], self.buf[n:]
        return out

    def recv_raw(self) -> bytes:
        """One datagram, or one framed message from the stream."""
        if not self.tcp:
            return self.sock.recvfrom(65536)[0]
        head = self._read_exact(4)
        length = struct.unpack("!H", head[2:4])[0]
        rest = ((length + 3) & ~3) if head[0] & 0xC0 == 0x40 else 16 + length
        return head + self._read_exact(rest)

    def recv(self) -> Message:
        return Message(self.recv_raw())

    def request(self, method: int, attrs: list[tuple[int, bytes]], signed: bool = True,
                integrity_key: bytes | None = None) -> Message:
        """Sends a request; when signed, answers 401/438 challenges (at most twice)."""
        for _ in range(3):
            tid = os.urandom(12)
            all_attrs = list(attrs)
            key = None
            if signed and self.nonce:
                all_attrs += [(USERNAME, self.user.encode()), (REALM, self.realm.encode()), (NONCE, self.nonce.encode())]
                key = integrity_key or long_term_key(self.user, self.realm, self.password)
            self.send_raw(encode(method, REQUEST, all_attrs, tid=tid, key=key))
            while True:
                m = self.recv()
                if m.tid == tid:
                    break
            if signed and m.error in (401, 438) and m.get(NONCE) is not None and integrity_key is None:
                self.nonce = m.get(NONCE).decode()
                self.realm = (m.get(REALM) or self.realm.encode()).decode()
                continue
            return m
        return m

    def allocate(self) -> tuple[str, int]:
        m = self.request(ALLOCATE, [(REQUESTED_TRANSPORT, bytes([17, 0, 0, 0]))])
        assert m.success, f"allocate failed: {m.error}"
        return parse_xor_address(m.get(XOR_RELAYED_ADDRESS))

    def create_permission(self, ip: str, port: int = 0) -> Message:
        return self.request(CREATE_PERMISSION, [(XOR_PEER_ADDRESS, xor_address(ip, port, b""))])

    def channel_bind(self, channel: int, ip: str, port: int) -> Message:
        return self.request(CHANNEL_BIND, [(CHANNEL_NUMBER, struct.pack("!HH", channel, 0)),
                                           (XOR_PEER_ADDRESS, xor_address(ip, port, b""))])
