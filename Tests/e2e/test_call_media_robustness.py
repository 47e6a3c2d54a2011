"""Bad input on the SFU's media port, next to a real call.

Every test runs a 1:1 aiortc call (A publishes camera and microphone, B
subscribes) and throws something at the media port (UDP, or ICE-TCP on the
same port number) or at call signaling: the input is counted on /metrics
(`parley_sfu_dropped_total{reason=…}`), nothing answers what must not be
answered, B's video keeps decoding afterwards and the server stays up
(the module's `server` fixture fails the teardown if it died).

Demultiplexing (RFC 7983, Sources/SFU/SFUEngine.swift): a datagram from an
address no check validated is dropped as `unknown_source` (DTLS, RTP, RTCP),
`unknown_ice_username` (STUN whose USERNAME names no session, or that does
not parse) or `malformed` (first byte in no RFC 7983 range). From a
validated address, SRTP/SRTCP that does not authenticate is `srtp_auth`.
"""

from __future__ import annotations

import asyncio
import os
import random
import socket
import struct
import time
from dataclasses import dataclass

import pytest

import turn_client as stun
from call_peers import loopback_only
from conftest import Harness, User
from media_checks import (DATAGRAMS_IN, DROP, MediaPeer, Metrics, assert_keeps_decoding, frame4571, ice_check,
                          ice_credentials, read_frame4571, ssrcs, start_one_to_one, udp_request, udp_socket,
                          verify_integrity, wait_until)

LOCAL = "127.0.0.1"


@pytest.fixture(autouse=True)
def _loopback():
    loopback_only()


@dataclass
class Call:
    a: User
    b: User
    pa: MediaPeer
    pb: MediaPeer
    call_id: str

    @property
    def sfu_pub_ice(self) -> tuple[str, str]:
        """The SFU's (ufrag, pwd) of A's publish connection, from its publish_answer."""
        return ice_credentials(self.pa.publish_answer_sdp)

    async def still_decoding(self, more: int = 20) -> None:
        await assert_keeps_decoding(self.pb, self.a.name, "camera", more=more)


@pytest.fixture
async def call(h: Harness, server):
    a, b = await h.user("ra"), await h.user("rb")
    pa, pb = MediaPeer(a.ws, "a"), MediaPeer(b.ws, "b")
    try:
        call_id = await start_one_to_one(a.ws, b.ws, b.name)
        await pa.publish(call_id)
        await pb.subscribe_until([(a.name, "camera"), (a.name, "microphone")])
        await pb.wait_frames({(a.name, "camera"): 15}, timeout=30)
        yield Call(a, b, pa, pb, call_id)
        assert server.alive(), server.log_tail()
    finally:
        await pa.close()
        await pb.close()


@pytest.fixture
def sockets():
    made: list[socket.socket] = []

    def track(s: socket.socket) -> socket.socket:
        made.append(s)
        return s

    yield track
    for s in made:
        s.close()


async def send_paced(sock: socket.socket, dest: tuple[str, int], packets: list[bytes], burst: int = 50) -> None:
    """Sends in bursts with a yield in between, so neither the kernel's
    receive buffer nor the event loop (aiortc shares it) is swamped."""
    for i in range(0, len(packets), burst):
        for p in packets[i:i + burst]:
            sock.sendto(p, dest)
        await asyncio.sleep(0.005)


def garbage(rng: random.Random, n: int) -> list[bytes]:
    """Datagrams of every RFC 7983 class and none, of odd sizes, plus edge cases."""
    firsts = [0, 1, 2, 3, 16, 19, 20, 22, 63, 64, 79, 80, 127, 128, 150, 191, 192, 255]
    out = [b"", b"\x00", b"\x16", b"\x80", b"\x80\xc8",
           b"\x00\x01\x00\x00" + struct.pack("!I", stun.MAGIC) + rng.randbytes(12),  # Binding request, no attributes
           b"\x00\x01\xff\xf0" + struct.pack("!I", stun.MAGIC) + rng.randbytes(12),  # length past the end
           b"\x16\xfe\xfd" + rng.randbytes(60),                                       # DTLS-looking handshake
           b"\x40\x00\x00\x10" + rng.randbytes(16),                                  # TURN ChannelData-looking
           bytes([0x80, 0x60]) + rng.randbytes(3000)]                                # longer than a 2048-byte slot
    while len(out) < n:
        size = rng.choice([2, 3, 11, 12, 20, 28, 100, 172, 1200, 1500])
        out.append(bytes([rng.choice(firsts)]) + rng.randbytes(size - 1))
    return out


async def test_garbage_datagrams_are_dropped_and_counted(call: Call, server, sockets):
    rng = random.Random(1)
    packets = garbage(rng, 400)
    sock = sockets(udp_socket())
    m = Metrics(server)
    await send_paced(sock, (LOCAL, server.media_port), packets)

    def dropped() -> float:
        return (m.delta(DROP, reason="malformed") + m.delta(DROP, reason="unknown_source")
                + m.delta(DROP, reason="unknown_ice_username"))

    await wait_until(lambda: m.refresh() and dropped() >= len(packets), 10,
                     f"{len(packets)} drops on /metrics", detail=lambda: f"changed {m.changed()}")
    print(f"\n{len(packets)} garbage datagrams: {m.changed()}")
    assert m.delta(DATAGRAMS_IN) >= len(packets)
    assert m.delta(DROP, reason="malformed") > 0 and m.delta(DROP, reason="unknown_source") > 0
    # Nothing from a stranger's address is answered.
    with pytest.raises(BlockingIOError):
        sock.recv(65535)
    await call.still_decoding()


async def test_binding_with_unknown_username_is_not_answered(call: Call, server, sockets):
    sock = sockets(udp_socket())
    m = Metrics(server)
    _, pwd = call.sfu_pub_ice
    for username in ("nosuchufrag:x", "nocolon", ""):
        local, _, remote = username.partition(":")
        data, tid = ice_check(local, remote, pwd)
        if username == "nocolon":
            data = stun.encode(stun.BINDING, stun.REQUEST, [(stun.USERNAME, b"nocolon")], tid=tid, key=pwd.encode())
        elif not username:
            data = stun.encode(stun.BINDING, stun.REQUEST, [], tid=tid)  # no USERNAME at all
        with pytest.raises(AssertionError, match="no STUN answer"):
            await udp_request(sock, data, (LOCAL, server.media_port), tid, timeout=1.0)
    # Three requests, each sent twice (udp_request retransmits at 500 ms).
    await wait_until(lambda: m.refresh().delta(DROP, reason="unknown_ice_username") >= 6, 10,
                     "unknown_ice_username on /metrics", detail=lambda: f"changed {m.changed()}")

    # The right ufrag with the wrong password: 401, and the address stays unknown.
    ufrag, _ = call.sfu_pub_ice
    data, tid = ice_check(ufrag, call.pa.client_ufrag(), "not-the-password-at-all")
    reply = await udp_request(sock, data, (LOCAL, server.media_port), tid)
    assert reply.cls == stun.ERROR and reply.error == 401, reply.attrs
    m = Metrics(server)
    sock.sendto(bytes([0x80, 97]) + os.urandom(40), (LOCAL, server.media_port))
    await wait_until(lambda: m.refresh().delta(DROP, reason="unknown_source") >= 1, 10, "unknown_source")
    await call.still_decoding()


async def test_validated_address_with_wrong_srtp_keys_is_dropped(call: Call, server, sockets):
    """A raw socket passes a real ICE check for A's publish connection (the
    SFU's ufrag and password from A's publish_answer, A's own ufrag, no
    USE-CANDIDATE: it does not take the media path over). The SFU answers
    it, so the address is validated; then SRTP and SRTCP from it with keys
    that are not the session's fail authentication, half of them claiming
    A's real SSRCs with random sequence numbers and SRTCP indexes (an
    unauthenticated packet must not move the replay window or rollover
    counter, or A's real packets would be refused afterwards)."""
    sock = sockets(udp_socket())
    media = (LOCAL, server.media_port)
    ufrag, pwd = call.sfu_pub_ice
    data, tid = ice_check(ufrag, call.pa.client_ufrag(), pwd)
    reply = await udp_request(sock, data, media, tid)
    assert reply.success, reply.attrs
    assert stun.parse_xor_address(reply.get(stun.XOR_MAPPED_ADDRESS)) == sock.getsockname()

    # Re-check and keep the answer bytes, to verify its MESSAGE-INTEGRITY with the SFU's password.
    data, tid = ice_check(ufrag, call.pa.client_ufrag(), pwd)
    sock.sendto(data, media)
    answer = await asyncio.wait_for(asyncio.get_running_loop().sock_recv(sock, 2048), 5)
    assert verify_integrity(answer, pwd.encode()), answer

    real = ssrcs(call.pa.pub.localDescription.sdp)
    rng = random.Random(2)
    # Long enough for any SRTP profile's trailer (a 16-byte GCM tag, the
    # 4-byte SRTCP index), so each one reaches the authentication check.
    srtp = []
    for i in range(300):
        ssrc = real[i % len(real)] if i % 2 == 0 else rng.getrandbits(32)
        seq = rng.getrandbits(16)
        header = struct.pack("!BBHII", 0x80, (0x80 if i % 5 == 0 else 0) | rng.choice([96, 97]), seq,
                             rng.getrandbits(32), ssrc)
        srtp.append(header + rng.randbytes(rng.choice([40, 200, 1000])) + rng.randbytes(16))
    srtcp = []
    for i in range(1000):  # the flood
        pt = rng.choice([200, 201, 205, 206])
        body = rng.randbytes(rng.choice([20, 44, 100]))
        ssrc = real[i % len(real)] if i % 2 == 0 else rng.getrandbits(32)
        header = struct.pack("!BBHI", 0x80 | rng.randrange(0, 31), pt, (len(body) + 4) // 4, ssrc)
        srtcp.append(header + body + struct.pack("!I", 0x80000000 | rng.getrandbits(31)) + rng.randbytes(16))

    m = Metrics(server)
    await send_paced(sock, media, srtp)
    await send_paced(sock, media, srtcp)
    sent = len(srtp) + len(srtcp)

    def refused() -> float:
        # An index the session's replay window already passed may be refused
        # before the (costlier) authentication, as RFC 3711 §3.3 allows.
        return m.delta(DROP, reason="srtp_auth") + m.delta(DROP, reason="srtp_replay")

    await wait_until(lambda: m.refresh() and refused() >= 0.95 * sent, 10,
                     f"srtp_auth for {sent} packets", detail=lambda: f"changed {m.changed()}")
    await asyncio.sleep(0.5)
    m.refresh()
    print(f"\n{len(srtp)} SRTP + {len(srtcp)} SRTCP with wrong keys from a validated address: {m.changed()}")
    assert m.delta(DROP, reason="srtp_auth") >= 0.8 * sent, m.changed()
    # Loopback may drop a few of a burst; none of them may count as anything else.
    assert refused() <= sent, m.changed()
    assert m.delta(DROP, reason="unknown_source") == 0, m.changed()
    assert m.delta(DROP, reason="malformed_rtp") == 0, m.changed()
    assert m.delta(DROP, reason="rtcp_rate_limited") == 0, m.changed()
    # Only checks are answered; nothing came back for the media.
    with pytest.raises(BlockingIOError):
        sock.recv(65535)
    # A's real stream is untouched: B keeps decoding it (a moved replay
    # window or rollover counter would make A's real packets fail from now on).
    await call.still_decoding(more=30)


async def test_ice_tcp_answers_framed_checks_and_closes_only_a_badly_framed_connection(call: Call, server, sockets):
    ufrag, pwd = call.sfu_pub_ice
    loop = asyncio.get_running_loop()

    def check_over(tcp: socket.socket) -> stun.Message:
        data, tid = ice_check(ufrag, call.pa.client_ufrag(), pwd)
        tcp.sendall(frame4571(data))
        while True:
            frame = read_frame4571(tcp)
            if frame[8:20] == tid:
                assert verify_integrity(frame, pwd.encode())
                return stun.Message(frame)

    good = sockets(socket.create_connection((LOCAL, server.media_port), timeout=5))
    reply = await loop.run_in_executor(None, check_over, good)
    assert reply.success, reply.attrs
    assert stun.parse_xor_address(reply.get(stun.XOR_MAPPED_ADDRESS)) == good.getsockname()

    m = Metrics(server)
    # Well framed, but not media: dropped, the connection stays.
    good.sendall(frame4571(b"\xff" + os.urandom(99)) + frame4571(b"\x80\x61" + os.urandom(60)))
    await wait_until(lambda: m.refresh().delta(DROP, reason="malformed") + m.delta(DROP, reason="srtp_auth") >= 2,
                     10, "the framed garbage counted", detail=lambda: f"changed {m.changed()}")

    def closed_by_server(tcp: socket.socket, payload: bytes) -> bool:
        tcp.sendall(payload)
        tcp.settimeout(5)
        try:
            while True:
                if not tcp.recv(4096):
                    return True
        except ConnectionResetError:
            return True
        except socket.timeout:
            return False

    # RFC 4571 cannot resynchronise: a zero or oversized length closes that connection.
    for payload in (b"\x00\x00" + os.urandom(30), b"\xff\xff" + os.urandom(64)):
        bad = sockets(socket.create_connection((LOCAL, server.media_port), timeout=5))
        assert await loop.run_in_executor(None, closed_by_server, bad, payload), payload[:4]
    # ... and only that one: the first connection still answers checks.
    reply = await loop.run_in_executor(None, check_over, good)
    assert reply.success, reply.attrs
    await call.still_decoding()


async def test_tcp_connection_from_a_udp_peers_port_number_does_not_divert_its_media(call: Call, server, sockets):
    """TCP and UDP ports are separate spaces: any local process (or a host
    behind the same NAT address) can open a TCP connection from the port
    number a WebRTC peer uses for UDP. The SFU must still send that peer's
    media over UDP to it."""
    port = call.pb.local_udp_port("subscribe")
    tcp = sockets(socket.socket(socket.AF_INET, socket.SOCK_STREAM))
    tcp.bind((LOCAL, port))
    tcp.connect((LOCAL, server.media_port))
    tcp.setblocking(False)
    await asyncio.sleep(0.2)
    before = call.pb.frames(call.a.name, "camera")
    got = bytearray()
    deadline = time.monotonic() + 3
    while time.monotonic() < deadline:
        await asyncio.sleep(0.1)
        try:
            got += tcp.recv(1 << 16)
        except BlockingIOError:
            pass
    after = call.pb.frames(call.a.name, "camera")
    tcp.close()
    t = time.monotonic()
    try:
        await call.pb.wait_frames({(call.a.name, "camera"): after + 10}, timeout=10)
        recovered = f"B decoded again {time.monotonic() - t:.1f} s after that connection closed"
    except AssertionError:
        recovered = "B did not decode again within 10 s of that connection closing"
    print(f"\nTCP connection from B's UDP port {port}: {len(got)} bytes of B's media came over it; "
          f"B decoded {after - before} frames in 3 s; {recovered}")
    assert not got, f"{len(got)} bytes meant for B's UDP address arrived on a stranger's TCP connection"
    assert after - before >= 20


async def test_bad_sdp_is_bad_request_and_the_call_goes_on(h: Harness, server):
    a, b = await h.user("sa"), await h.user("sb")
    pa, pb = MediaPeer(a.ws, "a"), MediaPeer(b.ws, "b")
    try:
        call_id = await start_one_to_one(a.ws, b.ws, b.name)
        # No offer outstanding yet for B.
        await b.ws.call_err({"type": "subscribe_answer", "call_id": call_id, "sdp": "v=0\r\n"}, "bad_request")
        await pa.publish(call_id)
        # B has an offer outstanding now; garbage answers are refused, and the offer stays outstanding.
        for sdp in ("garbage", "v=0\r\no=- 1 1 IN IP4 0.0.0.0\r\ns=-\r\nt=0 0\r\nm=video 9 UDP/TLS/RTP/SAVPF 96\r\n",
                    "\x00" * 100, "v=0\r\n" * 2000):
            await b.ws.call_err({"type": "subscribe_answer", "call_id": call_id, "sdp": sdp}, "bad_request",
                                timeout=10)
        await b.ws.call_err({"type": "subscribe_answer", "call_id": call_id, "sdp": 42}, "bad_request")
        # Garbage offers from a participant are refused too.
        for sdp in ("garbage", "v=0\r\nm=audio 9 UDP/TLS/RTP/SAVPF 111\r\na=mid:\r\n", "v=0\r\n" + "a=x\r\n" * 3000):
            await b.ws.call_err({"type": "publish_offer", "call_id": call_id, "sdp": sdp}, "bad_request", timeout=10)
        await b.ws.call_err({"type": "publish_offer", "call_id": call_id}, "bad_request")
        # The outstanding offer is still there, and a real answer to it works.
        await pb.subscribe_until([(a.name, "camera"), (a.name, "microphone")])
        await pb.wait_frames({(a.name, "camera"): 20}, timeout=30)
        # B publishes for real after its garbage: A receives it.
        await pb.publish(call_id)
        await pa.subscribe_until([(b.name, "camera")])
        await pa.wait_frames({(b.name, "camera"): 20}, timeout=30)
        await assert_keeps_decoding(pb, a.name)
    finally:
        await pa.close()
        await pb.close()
    assert server.alive()


async def test_a_stranger_cannot_join_or_receive_media(call: Call, h: Harness, server):
    c = await h.user("rc")
    cid = call.call_id
    await c.ws.call_err({"type": "call_accept", "call_id": cid}, "forbidden")
    stranger = MediaPeer(c.ws, "c")
    try:
        # Publishing or answering in someone else's call is refused ...
        with pytest.raises(AssertionError, match="expected publish_answer, got .*forbidden"):
            await stranger.publish(cid)
        await c.ws.call_err({"type": "subscribe_answer", "call_id": cid, "sdp": "v=0\r\n"}, "forbidden")
        await c.ws.call_err({"type": "ice_restart", "call_id": cid, "pc": "subscribe"}, "forbidden")
        await c.ws.call_err({"type": "call_end", "call_id": cid}, "forbidden")
        await c.ws.call_err({"type": "record_call", "call_id": cid, "enabled": True}, "forbidden")
        await c.ws.call_err({"type": "call_signal", "call_id": cid, "to": call.a.name, "payload": {}}, "forbidden")
        # ... and nothing of the call reaches the stranger: no offer, no tracks, no signaling.
        await c.ws.expect_nothing(1.5)
        assert not stranger.stats
    finally:
        await stranger.close()
    # The participants noticed nothing either.
    await call.a.ws.expect_nothing(0.3)
    await call.still_decoding()
