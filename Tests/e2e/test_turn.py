"""TURN end to end: coturn's own test clients, login_response.ice_servers,
bad input, the loopback policy, and two aiortc peers connected only through
Parley's relays.

Loopback only: every socket is on 127.0.0.1; aiortc is given Parley's TURN
server and nothing else (its default configuration would contact a public
STUN server), and aioice's host gathering is patched to 127.0.0.1.
"""

from __future__ import annotations

import asyncio
import os
import re
import socket
import struct
import subprocess
import time

import pytest

import turn_client as tc
from conftest import Harness, ParleyServer, _free_udp_tcp_port, metric_value, require_tools

SECRET = "e2e-shared-secret"
REALM = "parley.test"
STATIC_USER, STATIC_PASSWORD = "test", "secret"

require_tools("turnutils_uclient", "turnutils_stunclient", "openssl")
# Kept as a marker of which tests drive coturn's clients.
needs_coturn = pytest.mark.coturn


def _turn_args() -> list[str]:
    return ["--realm", REALM, "--turn-secret", SECRET, "--turn-user", f"{STATIC_USER}:{STATIC_PASSWORD}",
            "--turn-user", "other:pw2", "--turn-quota-per-user", "100"]


@pytest.fixture(scope="module")
def turn_server(tmp_path_factory):
    tmp = tmp_path_factory.mktemp("turn")
    srv = ParleyServer(tmp / "data", tmp / "server.log", extra_args=_turn_args()).start()
    yield srv
    alive = srv.alive()
    tail = srv.log_tail()
    srv.stop()
    assert alive, f"parley died during the TURN tests:\n{tail}"


@pytest.fixture
async def th(turn_server):
    harness = Harness(turn_server)
    yield harness
    await harness.close_all()


def metrics(srv: ParleyServer) -> str:
    status, text = srv.http_get("/metrics")
    assert status == 200
    return text


def refusals(srv: ParleyServer, reason: str) -> float:
    return metric_value(metrics(srv), "parley_turn_refusals_total", f'reason="{reason}"') or 0.0


def wait_for(predicate, timeout: float = 3.0) -> bool:
    end = time.monotonic() + timeout
    while time.monotonic() < end:
        if predicate():
            return True
        time.sleep(0.1)
    return predicate()


def binding_answered(port: int, tcp: bool = False) -> bool:
    """A Binding request gets a success response with our address (retried:
    unauthenticated answers are rate-limited per source IP)."""
    for _ in range(10):
        c = tc.TURNClient(port, tcp=tcp, timeout=1.0)
        try:
            tid = os.urandom(12)
            c.send_raw(tc.encode(tc.BINDING, tc.REQUEST, [], tid=tid))
            m = c.recv()
            if m.tid == tid and m.success and m.get(tc.XOR_MAPPED_ADDRESS) is not None:
                return tc.parse_xor_address(m.get(tc.XOR_MAPPED_ADDRESS)) == c.sock.getsockname()
        except (socket.timeout, ConnectionError):
            time.sleep(0.3)
        finally:
            c.close()
    return False


# --------------------------------------------------------------------------
# coturn's clients
# --------------------------------------------------------------------------

@needs_coturn
def test_turnutils_stunclient(turn_server):
    r = subprocess.run(["turnutils_stunclient", "-p", str(turn_server.turn_port), "127.0.0.1"],
                       capture_output=True, text=True, timeout=20)
    out = r.stdout + r.stderr
    assert r.returncode == 0, out
    assert re.search(r"UDP reflexive addr: 127\.0\.0\.1:\d+", out), out


def _uclient(port: int, *args: str) -> tuple[int, int, int, str]:
    """Runs turnutils_uclient client-to-client (-y) with IPv4 relays (-X) and
    DONT-FRAGMENT (-g); returns (sent, received, lost, output).

    -c: no RTCP allocations, which uclient asks for with EVEN-PORT's R bit (a
    reserved port pair) that Parley refuses with 508. -s: Send/Data
    indications instead of channels, because uclient picks channel numbers at
    random from RFC 5766's 0x4000-0x7FFF while RFC 8656 §12 allows only
    0x4000-0x4FFF (Parley answers 400 to the rest; ChannelData is covered by
    the aiortc test and test_loopback_peers_allowed_with_flag)."""
    cmd = ["turnutils_uclient", "-p", str(port), "-y", "-c", "-s", "-X", "-g", "-e", "127.0.0.1",
           "-n", "200", "-m", "2", "-l", "170", "-z", "10", *args, "127.0.0.1"]
    r = subprocess.run(cmd, capture_output=True, text=True, timeout=90)
    out = r.stdout + r.stderr
    assert r.returncode == 0, f"{' '.join(cmd)}\n{out[-3000:]}"
    lost = re.search(r"Total lost packets (\d+) \(([\d.]+)%\)", out)
    totals = re.findall(r"tot_send_msgs=(\d+), tot_recv_msgs=(\d+)", out)
    assert lost and totals, out[-3000:]
    sent, received = map(int, totals[-1])
    print(f"uclient {' '.join(args)}: sent={sent} received={received} lost={lost.group(1)} ({lost.group(2)}%)")
    return sent, received, int(lost.group(1)), out


@needs_coturn
@pytest.mark.parametrize("transport", ["udp", "tcp"])
def test_turnutils_uclient_long_term_credentials(turn_server, transport):
    before = metric_value(metrics(turn_server), "parley_turn_allocations_total") or 0
    extra = ["-t"] if transport == "tcp" else []
    sent, received, lost, out = _uclient(turn_server.turn_port, "-u", STATIC_USER, "-w", STATIC_PASSWORD, *extra)
    assert sent >= 400 and received == sent and lost == 0, out[-2000:]
    # 2 clients, each a pair of allocations (-y), each answered by Parley.
    assert wait_for(lambda: (metric_value(metrics(turn_server), "parley_turn_allocations_total") or 0) >= before + 2)
    assert refusals(turn_server, "insufficient_capacity_508") == 0
    # Counters reach /metrics every 250 ms: wait for the export, don't race it.
    def relayed():
        return metric_value(metrics(turn_server), "parley_turn_relayed_packets_total", 'direction="to_peer"') or 0
    assert wait_for(lambda: relayed() >= sent), f"relayed {relayed()} < sent {sent}"


@needs_coturn
@pytest.mark.parametrize("transport", ["udp", "tcp"])
def test_turnutils_uclient_rest_credentials(turn_server, transport):
    # The username/password a login_response would carry, computed here from the secret.
    username = f"{int(time.time()) + 3600}:restuser"
    password = tc.rest_password(SECRET, username)
    extra = ["-t"] if transport == "tcp" else []
    sent, received, lost, out = _uclient(turn_server.turn_port, "-u", username, "-w", password, *extra)
    assert sent >= 400 and received == sent and lost == 0, out[-2000:]


@needs_coturn
def test_turnutils_uclient_rest_secret_flag(turn_server):
    # uclient derives "<timestamp>:<user>" and the HMAC itself from -W.
    sent, received, lost, out = _uclient(turn_server.turn_port, "-u", "wuser", "-W", SECRET)
    assert sent >= 400 and received == sent and lost == 0, out[-2000:]


def test_expired_rest_credential_refused(turn_server):
    username = f"{int(time.time()) - 10}:late"
    c = tc.TURNClient(turn_server.turn_port, username, tc.rest_password(SECRET, username))
    try:
        m = c.request(tc.ALLOCATE, [(tc.REQUESTED_TRANSPORT, bytes([17, 0, 0, 0]))])
        assert m.error == 401
    finally:
        c.close()


# --------------------------------------------------------------------------
# login_response.ice_servers
# --------------------------------------------------------------------------

async def test_login_response_carries_ice_servers(th, turn_server):
    u = await th.user("ice")
    servers = u.last_login.get("ice_servers")
    assert isinstance(servers, list) and len(servers) == 1, u.last_login
    s = servers[0]
    port = turn_server.turn_port
    assert s["urls"] == [f"stun:127.0.0.1:{port}", f"turn:127.0.0.1:{port}?transport=udp",
                         f"turn:127.0.0.1:{port}?transport=tcp"]
    expiry, _, user = s["username"].partition(":")
    assert user == u.name
    assert 23 * 3600 < int(expiry) - time.time() <= 24 * 3600 + 5
    assert s["credential"] == tc.rest_password(SECRET, s["username"])
    # And they work: an allocation with exactly those credentials.
    c = tc.TURNClient(port, s["username"], s["credential"])
    try:
        ip, relay_port = c.allocate()
        assert ip == "127.0.0.1" and 49160 <= relay_port <= 49999
    finally:
        c.close()


async def test_ice_servers_omitted_when_turn_is_off(server_factory):
    srv = server_factory(turn=False).start()
    h = Harness(srv)
    try:
        u = await h.user("noturn")
        assert "ice_servers" not in u.last_login, u.last_login
    finally:
        await h.close_all()


# --------------------------------------------------------------------------
# Bad input
# --------------------------------------------------------------------------

def _garbage_battery(port: int, tcp: bool) -> None:
    # Truncated STUN: the header claims 8 bytes of attributes, none follow.
    trunc = struct.pack("!HHI", 0x0001, 8, tc.MAGIC) + os.urandom(12)
    # Random bytes that are neither STUN nor ChannelData.
    rnd = b"\xff" + os.urandom(63)
    # Framed as STUN, but its one attribute claims more bytes than there are.
    bad_attr = struct.pack("!HHI", 0x0001, 8, tc.MAGIC) + os.urandom(12) + b"\x00\x20\x00\x40" + b"\0" * 4
    if tcp:
        # Neither STUN nor ChannelData, or over the size limit: the stream
        # cannot be resynchronised, so the server closes it.
        for data in (rnd, struct.pack("!HHI", 0x0001, 65532, tc.MAGIC) + os.urandom(12)):
            s = socket.create_connection(("127.0.0.1", port), timeout=2)
            s.sendall(data)
            s.settimeout(2)
            try:
                assert s.recv(100) == b"", "the server must close a stream it cannot frame"
            except ConnectionResetError:
                pass
            s.close()
        # A malformed message in a well-framed stream is dropped; a message
        # cut short by the client closing is simply forgotten.
        s = socket.create_connection(("127.0.0.1", port), timeout=2)
        s.sendall(bad_attr + trunc)
        s.close()
    else:
        oversize = struct.pack("!HHI", 0x0001, 4000, tc.MAGIC) + os.urandom(12) + os.urandom(4000)
        s = socket.socket(socket.AF_INET, socket.SOCK_DGRAM)
        for data in (trunc, rnd, oversize, bad_attr, b"", b"\x00"):
            s.sendto(data, ("127.0.0.1", port))
        s.close()

    c = tc.TURNClient(port, STATIC_USER, STATIC_PASSWORD, tcp=tcp)
    try:
        c.allocate()
        # Wrong password → 401.
        bad = tc.TURNClient(port, STATIC_USER, "wrong", tcp=tcp)
        assert bad.request(tc.ALLOCATE, [(tc.REQUESTED_TRANSPORT, bytes([17, 0, 0, 0]))]).error == 401
        bad.close()
        # Unknown comprehension-required attribute → 420 listing it.
        m = c.request(tc.CREATE_PERMISSION, [(tc.XOR_PEER_ADDRESS, tc.xor_address("127.0.0.1", 9, b"")),
                                             (0x7F31, b"\x01\x02\x03\x04")])
        assert m.error == 420 and m.get(tc.UNKNOWN_ATTRIBUTES) == b"\x7f\x31", (m.error, m.attrs)
        # ChannelData on a channel never bound: silently dropped.
        c.send_raw(tc.channel_data(0x4567, b"nobody", padded=tcp))
        # A bad ChannelData length (claims 200 bytes, carries 4) over UDP.
        if not tcp:
            c.send_raw(struct.pack("!HH", 0x4000, 200) + b"abcd")
    finally:
        c.close()


@pytest.mark.parametrize("transport", ["udp", "tcp"])
def test_bad_input_is_refused_and_counted(turn_server, transport):
    tcp = transport == "tcp"
    port = turn_server.turn_port
    reasons = ["malformed", "bad_integrity_401", "unknown_attribute_420", "unbound_channel",
               "framing" if tcp else "bad_channeldata_length"]
    before = {r: refusals(turn_server, r) for r in reasons}
    _garbage_battery(port, tcp)
    time.sleep(0.5)
    assert turn_server.alive()
    assert binding_answered(port, tcp=False)
    assert binding_answered(port, tcp=True)

    def counted():
        return all(refusals(turn_server, r) > before[r] for r in reasons)
    assert wait_for(counted), {r: (before[r], refusals(turn_server, r)) for r in reasons}
    if tcp:
        assert refusals(turn_server, "framing") >= before["framing"] + 2
    else:
        assert refusals(turn_server, "malformed") >= before["malformed"] + 5


# --------------------------------------------------------------------------
# Peer policy
# --------------------------------------------------------------------------

def test_loopback_peers_refused_by_default(server_factory):
    srv = server_factory(allow_loopback_peers=False, extra_args=_turn_args()).start()
    c = tc.TURNClient(srv.turn_port, STATIC_USER, STATIC_PASSWORD)
    try:
        c.allocate()
        assert c.create_permission("127.0.0.1").error == 403
        assert c.channel_bind(0x4000, "127.0.0.1", 5000).error == 403
        assert wait_for(lambda: refusals(srv, "forbidden_403") >= 2)
    finally:
        c.close()


def test_loopback_peers_allowed_with_flag(turn_server):
    c = tc.TURNClient(turn_server.turn_port, STATIC_USER, STATIC_PASSWORD)
    peer = socket.socket(socket.AF_INET, socket.SOCK_DGRAM)
    peer.bind(("127.0.0.1", 0))
    peer.settimeout(2)
    try:
        _, relay_port = c.allocate()
        assert c.create_permission("127.0.0.1").success
        assert c.channel_bind(0x4000, *peer.getsockname()).success
        c.send_raw(tc.channel_data(0x4000, b"ping", padded=False))
        data, src = peer.recvfrom(100)
        assert data == b"ping" and src == ("127.0.0.1", relay_port)
        peer.sendto(b"pong", ("127.0.0.1", relay_port))
        assert c.recv_raw() == b"\x40\x00\x00\x04pong"
    finally:
        c.close()
        peer.close()


# --------------------------------------------------------------------------
# aiortc through the relay only
# --------------------------------------------------------------------------

async def test_two_aiortc_peers_connect_only_through_parley_turn(turn_server, monkeypatch, th):
    import aioice.ice
    from aiortc import RTCConfiguration, RTCIceServer, RTCIceTransportPolicy, RTCPeerConnection, RTCRtpSender
    from media_tracks import FrameCounter, Pattern, Tone

    monkeypatch.setattr(aioice.ice, "get_host_addresses", lambda use_ipv4=True, use_ipv6=True: ["127.0.0.1"])

    # Credentials exactly as a login hands them out.
    u = await th.user("rtc")
    ice = u.last_login["ice_servers"][0]
    turn_url = f"turn:127.0.0.1:{turn_server.turn_port}?transport=udp"
    assert turn_url in ice["urls"]

    def make_pc():
        return RTCPeerConnection(RTCConfiguration(
            iceServers=[RTCIceServer(urls=[turn_url], username=ice["username"], credential=ice["credential"])],
            iceTransportPolicy=RTCIceTransportPolicy.RELAY))

    a, b = make_pc(), make_pc()
    counter = FrameCounter(b)
    frames = counter.frames
    relayed_before = metric_value(metrics(turn_server), "parley_turn_relayed_packets_total", 'direction="to_peer"') or 0
    try:
        video = a.addTransceiver(Pattern(), direction="sendonly")
        audio = a.addTransceiver(Tone(), direction="sendonly")
        video.setCodecPreferences([c for c in RTCRtpSender.getCapabilities("video").codecs if c.mimeType == "video/VP8"])
        audio.setCodecPreferences([c for c in RTCRtpSender.getCapabilities("audio").codecs if c.mimeType == "audio/opus"])
        await a.setLocalDescription(await a.createOffer())
        offer = a.localDescription
        cands = [ln for ln in offer.sdp.splitlines() if ln.startswith("a=candidate:")]
        assert cands and all(" typ relay " in ln and " 127.0.0.1 " in ln for ln in cands), cands
        await b.setRemoteDescription(offer)
        await b.setLocalDescription(await b.createAnswer())
        answer = b.localDescription
        assert all(" typ relay " in ln for ln in answer.sdp.splitlines() if ln.startswith("a=candidate:"))
        await a.setRemoteDescription(answer)

        t0 = time.monotonic()
        while time.monotonic() - t0 < 25:
            if frames["video"] >= 20 and frames["audio"] >= 40:
                break
            assert a.connectionState != "failed" and b.connectionState != "failed"
            await asyncio.sleep(0.1)
        print(f"aiortc via TURN: {a.connectionState}/{b.connectionState} after {time.monotonic() - t0:.1f}s, "
              f"frames decoded video={frames['video']} audio={frames['audio']}")
        assert a.connectionState == "connected" and b.connectionState == "connected"
        assert frames["video"] >= 20 and frames["audio"] >= 40, frames
    finally:
        await a.close()
        await b.close()
        counter.cancel()
    relayed = metric_value(metrics(turn_server), "parley_turn_relayed_packets_total", 'direction="to_peer"') or 0
    assert relayed - relayed_before >= 60


# --------------------------------------------------------------------------
# TURN over TLS
# --------------------------------------------------------------------------

async def test_turn_over_tls(server_factory, tmp_path):
    cert, key = tmp_path / "cert.pem", tmp_path / "key.pem"
    subprocess.run(["openssl", "req", "-x509", "-newkey", "ec", "-pkeyopt", "ec_paramgen_curve:prime256v1",
                    "-nodes", "-days", "1", "-subj", "/CN=localhost", "-keyout", str(key), "-out", str(cert)],
                   check=True, capture_output=True, timeout=30)
    tls_port = _free_udp_tcp_port()
    srv = server_factory(extra_args=_turn_args() + ["--turn-tls-port", str(tls_port), "--turn-tls-cert", str(cert),
                                                    "--turn-tls-key", str(key)]).start()
    assert wait_for(lambda: "TURN over TLS listening" in srv.log_text())
    h = Harness(srv)
    try:
        u = await h.user("tls")
        urls = u.last_login["ice_servers"][0]["urls"]
        assert urls[-1] == f"turns:127.0.0.1:{tls_port}?transport=tcp", urls
    finally:
        await h.close_all()

    c = tc.TURNClient(tls_port, STATIC_USER, STATIC_PASSWORD, tls=True)
    peer = socket.socket(socket.AF_INET, socket.SOCK_DGRAM)
    peer.bind(("127.0.0.1", 0))
    peer.settimeout(2)
    try:
        _, relay_port = c.allocate()
        assert c.channel_bind(0x4001, *peer.getsockname()).success
        c.send_raw(tc.channel_data(0x4001, b"over tls", padded=True))
        data, src = peer.recvfrom(100)
        assert data == b"over tls" and src == ("127.0.0.1", relay_port)
        peer.sendto(b"back", ("127.0.0.1", relay_port))
        assert c.recv_raw() == b"\x40\x01\x00\x04back"
        peer.sendto(b"odd", ("127.0.0.1", relay_port))
        assert c.recv_raw() == b"\x40\x01\x00\x03odd\x00"  # padded to 4 on streams
    finally:
        c.close()
        peer.close()


def test_no_tls_listener_without_certificate(turn_server):
    assert "TURN over TLS listening" not in turn_server.log_text()
