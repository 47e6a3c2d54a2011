"""Helpers for the media-side end-to-end tests (test_call_loss.py,
test_call_media_robustness.py, test_call_recording.py, test_call_consent.py).

- `MediaPeer`: a `CallPeer` that logs when every video frame was decoded
  (for frozen-time figures), logs every frame its own tracks hand to the
  encoder (for recording durations), may negotiate RTX on its publish
  connection (as browsers do), and may rewrite the SFU's SDP before applying
  it (to reach the SFU through an `ImpairmentProxy`, see `via_proxy`).
- `/metrics` snapshots of the SFU's counters and their deltas.
- ICE connectivity checks built by hand (RFC 8489 short-term credentials,
  RFC 8445 §7.1.2 attributes) and RFC 4571 framing for ICE-TCP.
"""

from __future__ import annotations

import asyncio
import os
import re
import socket
import struct
import time
from typing import Callable

from aiortc.mediastreams import MediaStreamTrack

import turn_client as stun
from call_peers import CallPeer

# ICE attributes (RFC 8445 §16.1).
PRIORITY, USE_CANDIDATE, ICE_CONTROLLED, ICE_CONTROLLING = 0x0024, 0x0025, 0x8029, 0x802A


# --------------------------------------------------------------------------
# Polling
# --------------------------------------------------------------------------

async def wait_until(cond: Callable[[], bool], timeout: float, what: str, interval: float = 0.1,
                     detail: Callable[[], str] | None = None) -> float:
    """Polls `cond` until true; returns the seconds it took. Generous
    timeouts everywhere: the machine may be busy with builds and tests."""
    start = time.monotonic()
    while True:
        if cond():
            return time.monotonic() - start
        if time.monotonic() - start > timeout:
            extra = f"; {detail()}" if detail else ""
            raise AssertionError(f"timed out after {timeout:.0f}s waiting for {what}{extra}")
        await asyncio.sleep(interval)


# --------------------------------------------------------------------------
# /metrics
# --------------------------------------------------------------------------

_SAMPLE = re.compile(r"^([a-zA-Z_:][a-zA-Z0-9_:]*)(\{[^}]*\})?\s+(\S+)")


def sfu_counters(server) -> dict[str, float]:
    """Every parley_sfu_* sample on /metrics, keyed `name{labels}` as printed."""
    status, text = server.http_get("/metrics")
    assert status == 200, status
    out: dict[str, float] = {}
    for line in text.splitlines():
        if line.startswith("#") or not line.startswith("parley_sfu_"):
            continue
        m = _SAMPLE.match(line)
        if m:
            out[m.group(1) + (m.group(2) or "")] = float(m.group(3))
    return out


def counter(snapshot: dict[str, float], name: str, **labels: str) -> float:
    """The sum of the samples of `name` whose labels include `labels`."""
    total = 0.0
    for key, v in snapshot.items():
        base, _, rest = key.partition("{")
        if base != name:
            continue
        if all(f'{k}="{val}"' in rest for k, val in labels.items()):
            total += v
    return total


class Metrics:
    """A baseline of the SFU's counters; `delta(name, **labels)` against the latest `refresh()`."""

    def __init__(self, server):
        self.server = server
        self.before = sfu_counters(server)
        self.now = dict(self.before)

    def refresh(self) -> "Metrics":
        self.now = sfu_counters(self.server)
        return self

    def delta(self, name: str, **labels: str) -> float:
        return counter(self.now, name, **labels) - counter(self.before, name, **labels)

    def rising(self, name: str, **labels: str) -> bool:
        return self.refresh().delta(name, **labels) > 0

    def changed(self) -> dict[str, float]:
        keys = set(self.before) | set(self.now)
        return {k: self.now.get(k, 0) - self.before.get(k, 0) for k in sorted(keys)
                if self.now.get(k, 0) != self.before.get(k, 0)}


DROP = "parley_sfu_dropped_total"
RTCP = "parley_sfu_rtcp_total"
RETRANSMITTED = "parley_sfu_retransmissions_total"
REPAIRED = "parley_sfu_repaired_from_publisher_total"
CONSENT_LOST = "parley_sfu_consent_lost_total"
DATAGRAMS_IN = "parley_sfu_datagrams_in_total"


# --------------------------------------------------------------------------
# SDP
# --------------------------------------------------------------------------

def ice_credentials(sdp: str) -> tuple[str, str]:
    """(ice-ufrag, ice-pwd) of the first m-section that has them."""
    ufrag = re.search(r"^a=ice-ufrag:(\S+)", sdp, re.M)
    pwd = re.search(r"^a=ice-pwd:(\S+)", sdp, re.M)
    assert ufrag and pwd, sdp
    return ufrag.group(1), pwd.group(1)


def ssrcs(sdp: str) -> list[int]:
    return sorted({int(x) for x in re.findall(r"^a=ssrc:(\d+) ", sdp, re.M)})


def via_proxy(media_port: int, proxy_port: int) -> Callable[[str], str]:
    """An SDP rewrite for the client side: the SFU's UDP host candidate
    (`a=candidate:… udp … 127.0.0.1 <media_port> typ host`) points at the
    proxy's port instead, and its ICE-TCP candidate goes (the proxy is
    UDP only, and a TCP path would bypass it).

    Only what the client applies is changed; the SFU never needs to know.
    It is ICE-lite (RFC 8445 §2.5): it sends no checks of its own, so its
    candidates only tell the client where to send checks and media. The
    client's checks reach the SFU from the proxy's upstream socket for that
    flow, the SFU validates that 5-tuple, answers it (the proxy relays the
    answer back), and sends media to the address that was nominated. The
    candidate line is not covered by anything (no signature over the SDP,
    the DTLS fingerprint and ICE credentials are unchanged), so nothing on
    either side can tell the difference."""
    udp = re.compile(rf"^(a=candidate:\S+ \d+ udp \d+ 127\.0\.0\.1 ){media_port}( typ host.*)$", re.I)

    def rewrite(sdp: str) -> str:
        out = []
        for line in sdp.split("\r\n"):
            if line.startswith("a=candidate:") and " tcp " in line.lower():
                continue
            m = udp.match(line)
            out.append(f"{m.group(1)}{proxy_port}{m.group(2)}" if m else line)
        result = "\r\n".join(out)
        assert f" {proxy_port} typ host" in result, f"no SFU UDP candidate on port {media_port} to rewrite:\n{sdp}"
        return result

    return rewrite


# --------------------------------------------------------------------------
# Peers
# --------------------------------------------------------------------------

class LoggedTrack(MediaStreamTrack):
    """Passes another track's frames through and logs (monotonic time, pts,
    time_base) of each frame the sender took (so: encoded and sent)."""

    def __init__(self, inner: MediaStreamTrack):
        super().__init__()
        self.kind = inner.kind
        self.inner = inner
        self.log: list[tuple[float, int, object]] = []

    async def recv(self):
        frame = await self.inner.recv()
        self.log.append((time.monotonic(), frame.pts, frame.time_base))
        return frame

    def media_seconds(self, until: float | None = None) -> float:
        """Media time from the first frame sent to the last one sent before `until`."""
        frames = [f for f in self.log if until is None or f[0] <= until]
        assert len(frames) >= 2, f"{self.kind}: only {len(frames)} frames sent"
        (_, p0, tb), (_, p1, _) = frames[0], frames[-1]
        return float((p1 - p0) * tb)


class MediaPeer(CallPeer):
    """CallPeer plus decode times of video frames (`video_times[mid]`) and
    logged outgoing tracks (`sent[source]`)."""

    def __init__(self, ws, name: str, **options):
        super().__init__(ws, name, **options)
        self.video_times: dict[str, list[float]] = {}
        self.sent: dict[str, LoggedTrack] = {}

    def wrap(self, source: str, track):
        self.sent[source] = LoggedTrack(track)
        return self.sent[source]

    def on_frame(self, mid: str, kind: str, frame, now: float) -> None:
        if kind == "video":
            self.video_times.setdefault(mid, []).append(now)

    def video_times_of(self, user: str, source: str = "camera") -> list[float]:
        t = self.track(user, source)
        return self.video_times.get(t["mid"], []) if t else []

    def client_ufrag(self, pc: str = "publish") -> str:
        desc = (self.pub if pc == "publish" else self.sub).localDescription
        return ice_credentials(desc.sdp)[0]

    def local_udp_port(self, pc: str = "subscribe") -> int:
        """The UDP port of this peer's (single, loopback) host candidate."""
        desc = (self.pub if pc == "publish" else self.sub).localDescription
        m = re.search(r"^a=candidate:\S+ 1 udp \d+ 127\.0\.0\.1 (\d+) typ host", desc.sdp, re.M)
        assert m, desc.sdp
        return int(m.group(1))


async def assert_keeps_decoding(peer: CallPeer, user: str, source: str = "camera", more: int = 20,
                                timeout: float = 20.0) -> None:
    """`more` frames of (user, source) are decoded after this call."""
    before = peer.frames(user, source)
    await peer.wait_frames({(user, source): before + more}, timeout=timeout)


def freeze_figures(times: list[float], start: float, end: float, threshold: float = 0.2) -> dict:
    """Frozen time of the frames decoded in [start, end]: the longest gap
    between consecutive decoded frames (counting the window's edges) and
    the total time spent in gaps longer than `threshold` seconds."""
    inside = [t for t in times if start <= t <= end]
    points = [start] + inside + [end]
    gaps = [b - a for a, b in zip(points, points[1:])]
    return {
        "frames": len(inside),
        "longest": max(gaps),
        "frozen": sum(g for g in gaps if g > threshold),
        "fps": len(inside) / (end - start),
    }


# --------------------------------------------------------------------------
# One call, two aiortc participants
# --------------------------------------------------------------------------

async def start_one_to_one(a_ws, b_ws, callee: str, **extra) -> str:
    """a calls `callee` (on b_ws), b accepts; returns the call id."""
    started = await a_ws.call({"type": "call_start", "callee": callee, "media": ["audio", "video"], **extra},
                              "call_started")
    call_id = started["call_id"]
    await b_ws.recv_type("call_incoming", call_id=call_id, timeout=10)
    await b_ws.call({"type": "call_accept", "call_id": call_id}, "call_accepted", timeout=10)
    await a_ws.recv_type("call_joined", call_id=call_id, timeout=10)
    return call_id


# --------------------------------------------------------------------------
# Raw ICE checks (STUN, RFC 8489 short-term credentials; RFC 8445 §7.1.2)
# --------------------------------------------------------------------------

def ice_check(local_ufrag: str, remote_ufrag: str, password: str, *, use_candidate: bool = False,
              controlling: bool = True, priority: int = 0x6E7F1EFF, tid: bytes | None = None) -> tuple[bytes, bytes]:
    """A Binding request as the controlling client sends it to the SFU:
    USERNAME "<SFU ufrag>:<client ufrag>", PRIORITY, ICE-CONTROLLING (or
    -CONTROLLED) with a tie-breaker, optional USE-CANDIDATE,
    MESSAGE-INTEGRITY keyed with the SFU's ice-pwd, FINGERPRINT. Returns
    (bytes, transaction id)."""
    tid = tid or os.urandom(12)
    attrs = [(stun.USERNAME, f"{local_ufrag}:{remote_ufrag}".encode()),
             (PRIORITY, struct.pack("!I", priority)),
             (ICE_CONTROLLING if controlling else ICE_CONTROLLED, os.urandom(8))]
    if use_candidate:
        attrs.append((USE_CANDIDATE, b""))
    return stun.encode(stun.BINDING, stun.REQUEST, attrs, tid=tid, key=password.encode()), tid


def verify_integrity(data: bytes, key: bytes) -> bool:
    """Checks MESSAGE-INTEGRITY of a STUN message (RFC 8489 §14.5)."""
    import hashlib
    import hmac
    i = 20
    length = struct.unpack("!H", data[2:4])[0]
    while i + 4 <= 20 + length:
        at, al = struct.unpack("!HH", data[i:i + 4])
        if at == stun.MESSAGE_INTEGRITY:
            header = data[:2] + struct.pack("!H", i - 20 + 24) + data[4:20]
            mac = hmac.new(key, header + data[20:i], hashlib.sha1).digest()
            return hmac.compare_digest(mac, data[i + 4:i + 24])
        i += 4 + al + ((4 - al % 4) % 4)
    return False


def udp_socket() -> socket.socket:
    s = socket.socket(socket.AF_INET, socket.SOCK_DGRAM)
    s.bind(("127.0.0.1", 0))
    s.setblocking(False)
    return s


async def udp_request(sock: socket.socket, data: bytes, dest: tuple[str, int], tid: bytes,
                      timeout: float = 5.0) -> stun.Message:
    """Sends a STUN request and waits for the answer with that transaction
    id (retransmitting every 500 ms: UDP)."""
    loop = asyncio.get_running_loop()
    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline:
        sock.sendto(data, dest)
        end = min(deadline, time.monotonic() + 0.5)
        while time.monotonic() < end:
            try:
                reply = await asyncio.wait_for(loop.sock_recv(sock, 65535), end - time.monotonic())
            except asyncio.TimeoutError:
                break
            if len(reply) >= 20 and reply[8:20] == tid:
                return stun.Message(reply)
    raise AssertionError(f"no STUN answer from {dest} within {timeout}s")


def frame4571(data: bytes) -> bytes:
    """RFC 4571 §2 framing: a 16-bit length, then the datagram."""
    return struct.pack("!H", len(data)) + data


def read_frame4571(sock: socket.socket, timeout: float = 5.0) -> bytes:
    sock.settimeout(timeout)

    def exact(n: int) -> bytes:
        buf = b""
        while len(buf) < n:
            chunk = sock.recv(n - len(buf))
            if not chunk:
                raise ConnectionError("closed by server")
            buf += chunk
        return buf

    n = struct.unpack("!H", exact(2))[0]
    return exact(n)
