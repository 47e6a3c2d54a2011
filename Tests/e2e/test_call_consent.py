"""ICE consent (RFC 7675): a participant whose media path is cut leaves the call.

The server runs with `--ice-consent-timeout 3`. One participant reaches the
SFU through `ImpairmentProxy` (both its peer connections, see
`media_checks.via_proxy`); once media flows, the proxy black-holes both
directions: its WebSocket stays open, but no connectivity check reaches the
SFU any more (aiortc would notice the loss itself only after six missed
checks, ~30 s). After the consent timeout the SFU closes
its transports (`parley_sfu_consent_lost_total`) and the call treats it as
a leave with reason `connection_lost`: in a 1:1 call the other side gets
`call_ended`, in a group call the others get `call_left` and go on.

aioice checks consent every 4-6 s (`CONSENT_INTERVAL` 5 s, ±20 %, RFC 7675
§5.1), longer than the 3 s timeout: with it every aiortc peer, cut or not,
would lose consent between two checks (measured: in a group call the
healthy members were dropped too). The healthy peers here check every
0.8-1.2 s instead (`aioice.ice.CONSENT_INTERVAL = 1`, a client setting; the
server is unchanged), so only the cut peer can run out, and the 1:1 test
first lets the call run for twice the timeout to show that nobody else does.
"""

from __future__ import annotations

import asyncio
import time

import aioice.ice
import pytest

from call_peers import loopback_only
from conftest import Harness
from media_checks import (CONSENT_LOST, MediaPeer, Metrics, assert_keeps_decoding, start_one_to_one, via_proxy,
                          wait_until)
from udp_proxy import ImpairmentProxy

CONSENT = 3


@pytest.fixture(autouse=True)
def _loopback(monkeypatch):
    loopback_only()
    monkeypatch.setattr(aioice.ice, "CONSENT_INTERVAL", 1.0)


@pytest.fixture
def consent_server(server_factory):
    return server_factory(extra_args=["--ice-consent-timeout", str(CONSENT)]).start()


@pytest.fixture
def proxy(consent_server):
    p = ImpairmentProxy(upstream=("127.0.0.1", consent_server.media_port))
    p.start()
    yield p
    p.stop()


async def test_one_to_one_call_ends_when_consent_expires(consent_server, proxy):
    srv = consent_server
    h = Harness(srv)
    a, b = await h.user("ka"), await h.user("kb")
    rewrite = via_proxy(srv.media_port, proxy.port)
    pa = MediaPeer(a.ws, "a")
    pb = MediaPeer(b.ws, "b", pub_rewrite=rewrite, sub_rewrite=rewrite)
    try:
        call_id = await start_one_to_one(a.ws, b.ws, b.name)
        await pa.publish(call_id)
        await pb.publish(call_id)
        await pb.subscribe_until([(a.name, "camera")])
        await pa.subscribe_until([(b.name, "camera")])
        await pb.wait_frames({(a.name, "camera"): 15}, timeout=30)
        await pa.wait_frames({(b.name, "camera"): 15}, timeout=30)
        assert proxy.stats()["flows"] == 2, proxy.stats()  # B's publish and subscribe connections

        # Control: with every path up, twice the timeout passes and nobody loses consent.
        m = Metrics(srv)
        await asyncio.sleep(2 * CONSENT + 1)
        assert m.refresh().delta(CONSENT_LOST) == 0, m.changed()
        await a.ws.expect_nothing(0.1)
        await assert_keeps_decoding(pb, a.name)
        await assert_keeps_decoding(pa, b.name)

        proxy.to_server.blackhole()
        proxy.to_client.blackhole()
        cut = time.monotonic()
        ended = await a.ws.recv_type("call_ended", call_id=call_id, timeout=CONSENT + 15)
        took = time.monotonic() - cut
        theirs = await b.ws.recv_type("call_ended", call_id=call_id, timeout=10)
        await wait_until(lambda: m.rising(CONSENT_LOST), 10, "consent_lost on /metrics",
                         detail=lambda: f"changed {m.changed()}")
        print(f"\n1:1: path cut, A got call_ended {ended['reason']!r} after {took:.1f} s (consent timeout "
              f"{CONSENT} s); B (WebSocket still open) got {theirs['reason']!r}; "
              f"consent_lost +{m.refresh().delta(CONSENT_LOST):.0f}")
        assert ended["reason"] == "connection_lost", ended
        assert theirs["reason"] == "connection_lost", theirs
        # Consent runs out CONSENT s after B's last check, 0-1.2 s before the cut
        # (more when a busy event loop delays aioice's timer).
        assert CONSENT - 2.5 <= took <= CONSENT + 3, took
        hist = await a.ws.call({"type": "call_history", "limit": 5}, "call_history")
        entry = next(c for c in hist["calls"] if c["call_id"] == call_id)
        assert entry["reason"] == "connection_lost" and entry["ended_at"], entry
        assert srv.alive()
    finally:
        await pa.close()
        await pb.close()
        await h.close_all()


async def test_group_call_goes_on_without_the_member_whose_consent_expired(consent_server, proxy):
    srv = consent_server
    h = Harness(srv)
    a, b, c = await h.user("ga"), await h.user("gb"), await h.user("gc")
    group = await a.ws.call({"type": "create_group", "group_name": f"k{a.name[-10:]}"}, "create_group_response")
    for u in (b, c):
        await a.ws.call({"type": "invite", "group_id": group["group_id"], "username": u.name}, "invite_response")
    rewrite = via_proxy(srv.media_port, proxy.port)
    peers = {a.name: MediaPeer(a.ws, "a"), b.name: MediaPeer(b.ws, "b"),
             c.name: MediaPeer(c.ws, "c", pub_rewrite=rewrite, sub_rewrite=rewrite)}
    try:
        started = await a.ws.call({"type": "call_start", "groupname": group["group_name"], "media": ["audio", "video"]},
                                  "call_started")
        call_id = started["call_id"]
        for u in (b, c):
            await u.ws.recv_type("call_incoming", call_id=call_id, timeout=10)
            await u.ws.call({"type": "call_accept", "call_id": call_id}, "call_accepted", timeout=10)
        for u in (a, b, c):
            await peers[u.name].publish(call_id, audio=False)
        for u in (a, b, c):
            others = [x.name for x in (a, b, c) if x is not u]
            await peers[u.name].subscribe_until([(o, "camera") for o in others])
        for u in (a, b, c):
            others = [x.name for x in (a, b, c) if x is not u]
            await peers[u.name].wait_frames({(o, "camera"): 10 for o in others}, timeout=30)

        m = Metrics(srv)
        proxy.to_server.blackhole()
        proxy.to_client.blackhole()
        cut = time.monotonic()
        for u in (a, b):
            left = await u.ws.recv_type("call_left", call_id=call_id, timeout=CONSENT + 15)
            assert left["user"] == c.name, left
        took = time.monotonic() - cut
        gone = await c.ws.recv_type("call_ended", call_id=call_id, timeout=10)
        await wait_until(lambda: m.rising(CONSENT_LOST), 10, "consent_lost on /metrics",
                         detail=lambda: f"changed {m.changed()}")
        print(f"\ngroup: C's path cut, A and B got call_left after {took:.1f} s; C got call_ended "
              f"{gone['reason']!r}; consent_lost +{m.refresh().delta(CONSENT_LOST):.0f}")
        # The dropped member's own device is told as any leaver is ("left",
        # docs/PROTOCOL.md: `left` only to the leaver; the contract leaves it
        # open); its WebSocket is still there to hear it.
        assert gone["reason"] in ("left", "connection_lost"), gone
        assert CONSENT - 2.5 <= took <= CONSENT + 3, took
        # A and B get offers without C's tracks and keep decoding each other.
        for u, other in ((a, b), (b, a)):
            p = peers[u.name]
            await p.answer_subscribe_offer()
            assert not p.track(c.name, "camera"), p.tracks
            await assert_keeps_decoding(p, other.name)
        assert srv.alive()
    finally:
        for p in peers.values():
            await p.close()
        await h.close_all()
