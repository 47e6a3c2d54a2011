"""Calls through Parley's SFU with aiortc peers (PROTOCOL.md, Calls).

Each participant publishes on one peer connection and subscribes on
another; the SFU forwards every publisher's media to the others. The tests
decode what arrives (frame counts, and that frames are not blank), follow
`tracks` to know whose camera, microphone or screen each m-section carries,
and check call signaling and history around it.
"""

from __future__ import annotations

import time

import pytest

from call_peers import CallPeer, loopback_only
from conftest import Harness, metric_value


@pytest.fixture(autouse=True)
def _loopback():
    loopback_only()


async def start_call(caller_ws, callee: str | None = None, group: str | None = None, **extra) -> str:
    req = {"type": "call_start", "media": ["audio", "video"], **extra}
    if callee:
        req["callee"] = callee
    if group:
        req["groupname"] = group
    started = await caller_ws.call(req, "call_started")
    assert isinstance(started["call_id"], str) and started["call_id"]
    return started["call_id"]


async def accept(ws, call_id: str) -> dict:
    incoming = await ws.recv_type("call_incoming", call_id=call_id)
    assert incoming["media"] == ["audio", "video"]
    return await ws.call({"type": "call_accept", "call_id": call_id}, "call_accepted")


def sfu_metrics(server) -> str:
    """The SFU's lines of /metrics, for failure messages."""
    return "\n".join(l for l in server.http_get("/metrics")[1].splitlines() if "sfu" in l and not l.startswith("#"))


async def test_one_to_one_call_with_screen_share(h, server):
    a = await h.user("ca")
    b = await h.user("cb")
    pa, pb = CallPeer(a.ws, "a"), CallPeer(b.ws, "b")
    try:
        t0 = time.monotonic()
        call_id = await start_call(a.ws, callee=b.name)
        incoming = await b.ws.recv_type("call_incoming", call_id=call_id)
        assert incoming["caller"] == a.name
        accepted = await b.ws.call({"type": "call_accept", "call_id": call_id}, "call_accepted")
        assert set(accepted["participants"]) == {a.name, b.name}
        joined = await a.ws.recv_type("call_joined", call_id=call_id)
        assert joined["user"] == b.name

        await pa.publish(call_id, screen=True)
        await pb.publish(call_id)
        # Each side gets offers as the other's tracks appear.
        await pb.answer_subscribe_offer()
        await pa.answer_subscribe_offer()
        # B may see A's tracks in one offer or two (A labelled the screen first).
        deadline = time.monotonic() + 10
        while not (pb.track(a.name, "screen") and pb.track(a.name, "camera")) and time.monotonic() < deadline:
            await pb.answer_subscribe_offer()
        screen = pb.track(a.name, "screen")
        assert screen and screen["kind"] == "video", pb.tracks
        assert pb.track(a.name, "camera") and pb.track(a.name, "microphone"), pb.tracks
        assert screen["msid"].split()[1] == screen["track_id"]

        try:
            await pb.wait_frames({(a.name, "camera"): 15, (a.name, "screen"): 15, (a.name, "microphone"): 30})
        except AssertionError as e:
            stats = await pb.sub.getStats()
            inbound = [(x.kind, x.ssrc, x.packetsReceived) for x in stats.values() if x.type == "inbound-rtp"]
            raise AssertionError(f"{e}\n{sfu_metrics(server)}\ninbound {inbound}") from None
        await pa.wait_frames({(b.name, "camera"): 15, (b.name, "microphone"): 30})
        first = min(s.first_at for s in pb.stats.values() if s.kind == "video" and s.first_at)
        print(f"call_start -> first decoded frame (aiortc): {(first - t0) * 1000:.0f} ms")
        assert pb.nonblank(a.name, "camera") > 0 and pb.nonblank(a.name, "screen") > 0
        assert pa.nonblank(b.name, "camera") > 0 and pa.nonblank(b.name, "microphone") > 0
        assert (640, 360) in pb.stats[screen["mid"]].sizes

        ended = await a.ws.call({"type": "call_end", "call_id": call_id}, "call_ended")
        assert ended["reason"] == "hangup"
        theirs = await b.ws.recv_type("call_ended", call_id=call_id)
        assert theirs["reason"] == "hangup"

        for user, peer in ((a, "caller"), (b, "callee")):
            hist = await user.ws.call({"type": "call_history", "limit": 10}, "call_history")
            entry = next(c for c in hist["calls"] if c["call_id"] == call_id)
            assert entry["caller"] == a.name
            assert set(entry["participants"]) == {a.name, b.name}
            assert entry["status"] == "completed", (peer, entry)
            assert entry["started_at"] and entry["ended_at"]
    finally:
        await pa.close()
        await pb.close()


async def test_group_call_of_three_survives_a_leave(h, server):
    a, b, c = await h.user("ga"), await h.user("gb"), await h.user("gc")
    group = await a.ws.call({"type": "create_group", "group_name": f"grp{a.name[-8:]}"}, "create_group_response")
    gid, gname = group["group_id"], group["group_name"]
    for u in (b, c):
        await a.ws.call({"type": "invite", "group_id": gid, "username": u.name}, "invite_response")
    peers = {u.name: CallPeer(u.ws, u.name) for u in (a, b, c)}
    try:
        call_id = await start_call(a.ws, group=gname)
        for u in (b, c):
            await accept(u.ws, call_id)
        for u in (a, b, c):
            await peers[u.name].publish(call_id, video=True)
        # Everyone receives the other two: answer offers until both are there.
        for u in (a, b, c):
            p = peers[u.name]
            others = [x.name for x in (a, b, c) if x is not u]
            deadline = time.monotonic() + 15
            while not all(p.track(o, "camera") and p.track(o, "microphone") for o in others):
                assert time.monotonic() < deadline, (u.name, p.tracks)
                await p.answer_subscribe_offer()
        for u in (a, b, c):
            others = [x.name for x in (a, b, c) if x is not u]
            await peers[u.name].wait_frames({(o, "camera"): 10 for o in others})

        # C leaves: A and B get a fresh offer without C's tracks and keep decoding each other.
        ended = await c.ws.call({"type": "call_end", "call_id": call_id}, "call_ended")
        assert ended["reason"] == "left"
        for u in (a, b):
            p = peers[u.name]
            left = await u.ws.recv_type("call_left", call_id=call_id)
            assert left["user"] == c.name
            sdp = await p.answer_subscribe_offer()
            assert "a=inactive" in sdp, "C's lines go inactive, they are not removed"
            assert not p.track(c.name, "camera"), p.tracks
        before = {u.name: peers[u.name].frames([x.name for x in (a, b) if x is not u][0], "camera") for u in (a, b)}
        await peers[a.name].wait_frames({(b.name, "camera"): before[a.name] + 20})
        await peers[b.name].wait_frames({(a.name, "camera"): before[b.name] + 20})

        # Two remain: the call goes on; when B leaves too, it ends.
        await b.ws.call({"type": "call_end", "call_id": call_id}, "call_ended")
        final = await a.ws.recv_type("call_ended", call_id=call_id)
        assert final["reason"] == "hangup"
        hist = await c.ws.call({"type": "call_history", "limit": 5}, "call_history")
        entry = next(x for x in hist["calls"] if x["call_id"] == call_id)
        assert entry["groupname"] == gname and set(entry["participants"]) == {a.name, b.name, c.name}
    finally:
        for p in peers.values():
            await p.close()


async def test_calls_spread_over_media_workers(server_factory, uname):
    """With --media-workers 2 each call is pinned to one worker (its own
    port, media-port + i); calls land on both, and media flows on either."""
    srv = server_factory(extra_args=["--media-workers", "2"]).start()
    h = Harness(srv)
    peers: list[CallPeer] = []
    try:
        ports = set()
        pairs = []
        for i in range(6):
            a, b = await h.user("wa"), await h.user("wb")
            call_id = await start_call(a.ws, callee=b.name)
            peer = CallPeer(a.ws, a.name)
            peers.append(peer)
            answer = await peer.publish(call_id, video=False)
            port = int(next(l for l in answer.splitlines() if l.startswith("a=candidate:") and " udp " in l).split()[5])
            ports.add(port)
            pairs.append((a, b, call_id, port))
        assert ports == {srv.media_port, srv.media_port + 1}, ports
        # A full call on the second worker.
        a, b, call_id, port = next(p for p in pairs if p[3] == srv.media_port + 1)
        await accept(b.ws, call_id)
        pb = CallPeer(b.ws, b.name)
        peers.append(pb)
        await pb.publish(call_id, video=True)
        pa = next(p for p in peers if p.ws is a.ws)
        await pa.answer_subscribe_offer()
        await pa.wait_frames({(b.name, "camera"): 10, (b.name, "microphone"): 20})
        text = srv.http_get("/metrics")[1]
        assert metric_value(text, "parley_sfu_rooms", 'worker="1"') is not None
    finally:
        for p in peers:
            await p.close()
        await h.close_all()


async def test_public_ip_goes_into_the_candidates(server_factory):
    """Behind a 1:1 NAT the SFU advertises --public-ip, on UDP and ICE-TCP."""
    srv = server_factory(extra_args=["--public-ip", "192.0.2.10"]).start()
    h = Harness(srv)
    try:
        a, b = await h.user("pa"), await h.user("pb")
        call_id = await start_call(a.ws, callee=b.name)
        peer = CallPeer(a.ws, a.name)
        try:
            answer = await peer.publish(call_id, video=False)
        finally:
            await peer.close()
        candidates = [l for l in answer.splitlines() if l.startswith("a=candidate:")]
        assert f"a=candidate:1 1 udp 2130706431 192.0.2.10 {srv.media_port} typ host" in candidates, candidates
        assert f"a=candidate:2 1 tcp 1518280447 192.0.2.10 {srv.media_port} typ host tcptype passive" in candidates
    finally:
        await h.close_all()
