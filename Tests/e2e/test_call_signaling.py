"""Call signaling rules, end to end (PROTOCOL.md and docs/PROTOCOL.md, Calls).

Most tests need no media: they drive `call_start`, `call_accept`,
`call_reject`, `call_end`, `call_signal`, `ice_candidate`, closing sockets and
`call_history` over plain WebSocket connections and check every frame each
party's connections receive. One test uses aiortc peers, where a re-joining
group member must receive the others' media again.

Servers: the module's default server (ring timeout 30 s, no recordings, any
origin); one module server started with `--call-ring-timeout 2
--allowed-origins http://good.example` for timeouts and origins; restart
tests start their own on one data directory.
"""

from __future__ import annotations

import asyncio
import json
import time
import urllib.error
import urllib.request

import pytest

from call_peers import CallPeer, loopback_only
from conftest import (TS_RE, Harness, ParleyServer, User, WSClient, create_group, metric_value, open_ws,
                      upgrade_status)

QUIET = 0.4  # how long a connection must stay silent where nothing is expected
IGNORE = ("presence", "group_invite")
GOOD_ORIGIN = "http://good.example"


# --------------------------------------------------------------------------
# Fixtures and helpers
# --------------------------------------------------------------------------

@pytest.fixture(scope="module")
def ring2(tmp_path_factory):
    """A server whose unanswered calls end after 2 s, and which only lets
    pages from http://good.example open /ws."""
    tmp = tmp_path_factory.mktemp("ring2")
    srv = ParleyServer(tmp / "data", tmp / "server.log", turn=False,
                       extra_args=["--call-ring-timeout", "2", "--allowed-origins", GOOD_ORIGIN]).start()
    yield srv
    crashed = not srv.alive()
    tail = srv.log_tail()
    srv.stop()
    if crashed:
        pytest.fail(f"parley (ring2) died during the module:\n{tail}", pytrace=False)


@pytest.fixture
async def h2(ring2):
    harness = Harness(ring2)
    yield harness
    await harness.close_all()


async def start_call(ws: WSClient, callee: str | None = None, group: str | None = None, **extra) -> str:
    req = {"type": "call_start", **extra}
    if callee is not None:
        req["callee"] = callee
    if group is not None:
        req["groupname"] = group
    started = await ws.call(req, "call_started")
    cid = started["call_id"]
    assert isinstance(cid, str) and cid.startswith("c"), started
    return cid


async def incoming(ws: WSClient, call_id: str, caller: User, media=("audio", "video"), group: str | None = None):
    f = await ws.recv_type("call_incoming", call_id=call_id)
    assert f["caller"] == caller.name, f
    assert f["media"] == list(media), f
    if group is None:
        assert "groupname" not in f or f["groupname"] is None, f
    else:
        assert f["groupname"] == group, f
    return f


async def accept(ws: WSClient, call_id: str) -> list[str]:
    f = await ws.call({"type": "call_accept", "call_id": call_id}, "call_accepted")
    assert f["call_id"] == call_id, f
    return f["participants"]


async def ended(ws: WSClient, call_id: str, reason: str | set[str], timeout: float = 5.0) -> dict:
    f = await ws.recv_type("call_ended", call_id=call_id, timeout=timeout)
    if isinstance(reason, str):
        assert f["reason"] == reason, f
    else:
        assert f["reason"] in reason, f
    return f


async def end_call(ws: WSClient, call_id: str, reason: str | set[str] = "hangup") -> dict:
    f = await ws.call({"type": "call_end", "call_id": call_id}, "call_ended")
    assert f["call_id"] == call_id, f
    if isinstance(reason, str):
        assert f["reason"] == reason, f
    else:
        assert f["reason"] in reason, f
    return f


async def drain(ws: WSClient, seconds: float = QUIET) -> list[dict]:
    """Every frame already waiting plus those arriving within `seconds`."""
    out = list(ws.backlog)
    ws.backlog.clear()
    loop = asyncio.get_running_loop()
    end = loop.time() + seconds
    while (remaining := end - loop.time()) > 0:
        try:
            out.append(await ws._get(remaining))
        except AssertionError as e:
            if "no frame within" in str(e):
                break
            raise
    return out


async def silent(*clients: WSClient, seconds: float = QUIET) -> None:
    """None of the clients gets a frame (other than presence / group invites) within `seconds`."""
    await asyncio.gather(*(c.expect_nothing(seconds, ignore=IGNORE) for c in clients))


async def no_frame_about(ws: WSClient, call_id: str, types: set[str], seconds: float = QUIET) -> list[dict]:
    frames = await drain(ws, seconds)
    bad = [f for f in frames if f.get("call_id") == call_id and f.get("type") in types]
    assert not bad, f"{ws.label}: unexpected {bad}"
    return frames


async def make_group(owner: User, *members: User) -> str:
    gid, gname = await create_group(owner.ws)
    for m in members:
        r = await owner.ws.call({"type": "invite", "group_id": gid, "username": m.name}, "invite_response")
        assert r.get("status") == "invite_success", r
    return gname


async def history(ws: WSClient, **q) -> list[dict]:
    r = await ws.call({"type": "call_history", **q}, "call_history")
    assert isinstance(r["calls"], list), r
    return r["calls"]


async def entry(ws: WSClient, call_id: str) -> dict:
    calls = await history(ws, limit=200)
    found = [c for c in calls if c["call_id"] == call_id]
    assert len(found) == 1, (call_id, calls)
    return found[0]


def check_shape(e: dict) -> None:
    for k in ("call_id", "caller", "participants", "started_at", "ended_at", "status", "invited", "media"):
        assert k in e, (k, e)
    assert isinstance(e["participants"], list) and isinstance(e["invited"], list), e
    assert TS_RE.match(e["started_at"]), e
    assert e["ended_at"] is None or TS_RE.match(e["ended_at"]), e
    if e["ended_at"] is not None:
        assert e["ended_at"] >= e["started_at"], e


def errors(srv: ParleyServer, code: str) -> float:
    return metric_value(srv.http_get("/metrics")[1], "parley_errors_total", f'code="{code}"') or 0.0


def http_json(srv: ParleyServer, path: str, token: str) -> tuple[int, dict]:
    req = urllib.request.Request(f"{srv.base_url}{path}", headers={"Authorization": f"Bearer {token}"})
    try:
        with urllib.request.urlopen(req, timeout=10) as r:
            return r.status, json.loads(r.read())
    except urllib.error.HTTPError as e:
        return e.code, json.loads(e.read() or b"{}")


# --------------------------------------------------------------------------
# 1:1 calls
# --------------------------------------------------------------------------

async def test_one_to_one_rings_every_callee_connection_and_answer_stops_the_others(h):
    a, b = await h.user("sa"), await h.user("sb")
    a2 = await a.connect("a2")
    b1, b2 = b.ws, await b.connect("b2")
    cid = await start_call(a.ws, b.name)
    for ws in (b1, b2):
        await incoming(ws, cid, a)
    # The caller's other device does not ring.
    await no_frame_about(a2, cid, {"call_incoming"})

    live = await entry(a.ws, cid)
    check_shape(live)
    assert live["status"] == "ringing" and live["ended_at"] is None, live
    assert (await entry(b1, cid))["status"] == "ringing"

    participants = await accept(b1, cid)
    assert participants == [a.name, b.name]
    joined = await a.ws.recv_type("call_joined", call_id=cid)
    assert joined["user"] == b.name
    await ended(b2, cid, "answered_elsewhere")
    await silent(b1, a2)

    for ws in (a.ws, b1):
        e = await entry(ws, cid)
        assert e["status"] == "ongoing" and e["ended_at"] is None, e
        assert e["answered_at"] and TS_RE.match(e["answered_at"]), e

    f = await end_call(a.ws, cid, "hangup")
    assert f["request_id"].startswith(a.ws.label)
    for ws in (b1, b2, a2):
        await ended(ws, cid, "hangup")
    await silent(a.ws)
    for ws in (a.ws, b1):
        e = await entry(ws, cid)
        assert e["status"] == "completed" and e["ended_at"] is not None, e
        assert e["reason"] == "hangup" and e["participants"] == [a.name, b.name], e


async def test_callee_hangs_up_ends_the_call_for_both(h):
    a, b = await h.user("sa"), await h.user("sb")
    cid = await start_call(a.ws, b.name, media=["audio"])
    await incoming(b.ws, cid, a, media=["audio"])
    await accept(b.ws, cid)
    await a.ws.recv_type("call_joined", call_id=cid)
    rid = "bye-from-b"
    await b.ws.send({"type": "call_end", "call_id": cid, "request_id": rid})
    mine = await b.ws.recv_type("call_ended", call_id=cid)
    assert mine["request_id"] == rid and mine["reason"] == "hangup", mine
    theirs = await ended(a.ws, cid, "hangup")
    assert "request_id" not in theirs, theirs
    # An ended call is gone: accepting or ending it again is not_found.
    await b.ws.call_err({"type": "call_accept", "call_id": cid}, "not_found")
    await a.ws.call_err({"type": "call_end", "call_id": cid}, "not_found")
    e = await entry(a.ws, cid)
    assert e["media"] == ["audio"] and e["status"] == "completed", e


async def test_reject_ends_the_call_for_both(h):
    a, b = await h.user("sa"), await h.user("sb")
    b2 = await b.connect("b2")
    cid = await start_call(a.ws, b.name)
    await incoming(b.ws, cid, a)
    await incoming(b2, cid, a)
    f = await b.ws.call({"type": "call_reject", "call_id": cid}, "call_ended")
    assert f["call_id"] == cid and f["reason"] == "rejected", f
    await ended(a.ws, cid, "rejected")
    await ended(b2, cid, "rejected")
    await silent(b.ws)
    assert (await entry(a.ws, cid))["status"] == "rejected"
    assert (await entry(b.ws, cid))["status"] == "rejected"


async def test_reject_with_reason_busy(h):
    a, b = await h.user("sa"), await h.user("sb")
    cid = await start_call(a.ws, b.name)
    await incoming(b.ws, cid, a)
    f = await b.ws.call({"type": "call_reject", "call_id": cid, "reason": "busy"}, "call_ended")
    assert f["reason"] == "busy", f
    await ended(a.ws, cid, "busy")
    e = await entry(a.ws, cid)
    assert e["status"] == "busy" and e["reason"] == "busy", e
    # Any other reason a client gives is a plain rejection.
    cid2 = await start_call(a.ws, b.name)
    await incoming(b.ws, cid2, a)
    f = await b.ws.call({"type": "call_reject", "call_id": cid2, "reason": "in a meeting"}, "call_ended")
    assert f["reason"] == "rejected", f
    await ended(a.ws, cid2, "rejected")


async def test_callee_in_another_call_is_busy_and_not_rung(h):
    a, b, c = await h.user("sa"), await h.user("sb"), await h.user("sc")
    b2 = await b.connect("b2")
    first = await start_call(a.ws, b.name)
    await incoming(b.ws, first, a)
    await accept(b.ws, first)
    await a.ws.recv_type("call_joined", call_id=first)
    await ended(b2, first, "answered_elsewhere")

    second = await start_call(c.ws, b.name)  # call_started first ...
    await ended(c.ws, second, "busy")         # ... then busy at once
    for ws in (b.ws, b2):
        await no_frame_about(ws, second, {"call_incoming"})
    e = await entry(c.ws, second)
    assert e["status"] == "busy" and e["reason"] == "busy" and e["ended_at"], e
    assert (await entry(b.ws, second))["status"] in ("missed", "rejected")
    # A's call is untouched.
    assert (await entry(a.ws, first))["status"] == "ongoing"
    await end_call(a.ws, first)
    await ended(b.ws, first, "hangup")


async def test_a_callee_who_is_only_ringing_is_not_busy(h):
    a, b, c = await h.user("sa"), await h.user("sb"), await h.user("sc")
    first = await start_call(a.ws, b.name)
    await incoming(b.ws, first, a)
    second = await start_call(c.ws, b.name)
    await incoming(b.ws, second, c)
    await silent(c.ws)
    await end_call(a.ws, first)
    await end_call(c.ws, second)


async def test_caller_hangs_up_before_an_answer(h):
    a, b = await h.user("sa"), await h.user("sb")
    b2 = await b.connect("b2")
    cid = await start_call(a.ws, b.name)
    await incoming(b.ws, cid, a)
    await incoming(b2, cid, a)
    await end_call(a.ws, cid, "hangup")
    await ended(b.ws, cid, "hangup")
    await ended(b2, cid, "hangup")
    await b.ws.call_err({"type": "call_accept", "call_id": cid}, "not_found")
    e = await entry(a.ws, cid)
    assert e["status"] == "cancelled" and e["participants"] == [a.name], e
    assert (await entry(b.ws, cid))["status"] == "missed"


async def test_closing_the_callee_socket_ends_a_one_to_one_call(h):
    a, b = await h.user("sa"), await h.user("sb")
    b2 = await b.connect("b2")
    cid = await start_call(a.ws, b.name)
    await incoming(b.ws, cid, a)
    await accept(b.ws, cid)
    await a.ws.recv_type("call_joined", call_id=cid)
    await ended(b2, cid, "answered_elsewhere")
    await b.ws.close()
    await ended(a.ws, cid, "disconnected")
    await ended(b2, cid, "disconnected")
    assert (await entry(a.ws, cid))["status"] == "completed"


async def test_closing_the_caller_socket_ends_a_one_to_one_call(h):
    a, b = await h.user("sa"), await h.user("sb")
    a2 = await a.connect("a2")
    cid = await start_call(a.ws, b.name)
    await incoming(b.ws, cid, a)
    await accept(b.ws, cid)
    await a.ws.recv_type("call_joined", call_id=cid)
    await a.ws.close()
    await ended(b.ws, cid, "disconnected")
    await ended(a2, cid, "disconnected")
    # Unanswered, a caller who goes away cancels the call.
    cid2 = await start_call(a2, b.name)
    await incoming(b.ws, cid2, a)
    await a2.close()
    await ended(b.ws, cid2, {"hangup", "disconnected"})
    assert (await entry(b.ws, cid2))["status"] == "missed"


async def test_logging_out_is_a_leave(h):
    a, b = await h.user("sa"), await h.user("sb")
    cid = await start_call(a.ws, b.name)
    await incoming(b.ws, cid, a)
    await accept(b.ws, cid)
    await a.ws.recv_type("call_joined", call_id=cid)
    await b.ws.call({"type": "logout"}, "logout_response")
    await ended(a.ws, cid, "disconnected")


# --------------------------------------------------------------------------
# Ring timeout (server with --call-ring-timeout 2)
# --------------------------------------------------------------------------

async def test_unanswered_calls_time_out(h2):
    a, b, c = await h2.user("ta"), await h2.user("tb"), await h2.user("tc")
    b2 = await b.connect("b2")
    gname = await make_group(a, b, c)
    one = await start_call(a.ws, b.name)
    t0 = time.monotonic()
    a_g = await a.connect("a-group")
    group = await start_call(a_g, group=gname)
    # A third call is answered at once: its timer must not fire.
    d, e = await h2.user("td"), await h2.user("te")
    answered = await start_call(d.ws, e.name)
    await incoming(e.ws, answered, d)
    await accept(e.ws, answered)

    for ws in (b.ws, b2):
        await incoming(ws, one, a)
    await ended(a.ws, one, "timeout", timeout=10)
    waited = time.monotonic() - t0
    assert 1.0 <= waited <= 8.0, waited
    await ended(b.ws, one, "timeout")
    await ended(b2, one, "timeout")
    await ended(a_g, group, "timeout", timeout=10)
    await ended(c.ws, group, "timeout")

    assert (await entry(a.ws, one))["status"] == "no_answer"
    assert (await entry(b.ws, one))["status"] == "missed"
    ge = await entry(a.ws, group)
    assert ge["status"] == "no_answer" and ge["reason"] == "timeout" and ge["groupname"] == gname, ge
    assert (await entry(c.ws, group))["status"] == "missed"

    # 2 s and more have passed since the answered call started: still on.
    await no_frame_about(d.ws, answered, {"call_ended"}, seconds=0.5)
    assert (await entry(d.ws, answered))["status"] == "ongoing"
    await end_call(d.ws, answered)
    await ended(e.ws, answered, "hangup")


# --------------------------------------------------------------------------
# Permissions and malformed requests
# --------------------------------------------------------------------------

OFFER = "v=0\r\no=- 1 1 IN IP4 127.0.0.1\r\ns=-\r\nt=0 0\r\n"
CANDIDATE = "candidate:1 1 udp 2130706431 127.0.0.1 50000 typ host"


async def test_a_stranger_is_forbidden_everything(h, server):
    a, b, s = await h.user("pa"), await h.user("pb"), await h.user("ps")
    cid = await start_call(a.ws, b.name)
    await incoming(b.ws, cid, a)
    await accept(b.ws, cid)
    await a.ws.recv_type("call_joined", call_id=cid)
    requests = [
        {"type": "call_accept", "call_id": cid},
        {"type": "call_reject", "call_id": cid},
        {"type": "publish_offer", "call_id": cid, "sdp": OFFER},
        {"type": "subscribe_answer", "call_id": cid, "sdp": OFFER},
        {"type": "publish_track", "call_id": cid, "mid": "0", "source": "screen"},
        {"type": "ice_candidate", "call_id": cid, "pc": "publish", "candidate": CANDIDATE, "sdp_mid": "0",
         "sdp_mline_index": 0},
        {"type": "ice_candidate", "call_id": cid, "pc": "subscribe", "candidate": ""},
        {"type": "call_end", "call_id": cid},
        {"type": "record_call", "call_id": cid, "enabled": True},
        {"type": "call_signal", "call_id": cid, "to": a.name, "payload": {"x": 1}},
        {"type": "ice_restart", "call_id": cid},
    ]
    before = errors(server, "forbidden")
    for req in requests:
        await s.ws.call_err(req, "forbidden")
    after = errors(server, "forbidden")
    assert after - before == len(requests), (before, after)
    # Nothing reached the parties and the call goes on.
    await silent(a.ws, b.ws)
    assert (await entry(a.ws, cid))["status"] == "ongoing"
    assert await history(s.ws) == []
    await end_call(a.ws, cid)


async def test_only_participant_connections_may_use_media(h):
    """A party's connection that has not joined is no participant: forbidden."""
    a, b = await h.user("pa"), await h.user("pb")
    b2 = await b.connect("b2")
    cid = await start_call(a.ws, b.name)
    await incoming(b.ws, cid, a)
    # Before accepting, the callee's connection may not publish.
    await b.ws.call_err({"type": "publish_offer", "call_id": cid, "sdp": OFFER}, "forbidden")
    await b.ws.call_err({"type": "ice_candidate", "call_id": cid, "pc": "publish", "candidate": CANDIDATE},
                        "forbidden")
    await accept(b.ws, cid)
    await a.ws.recv_type("call_joined", call_id=cid)
    await ended(b2, cid, "answered_elsewhere")
    for req in ({"type": "publish_offer", "call_id": cid, "sdp": OFFER},
                {"type": "subscribe_answer", "call_id": cid, "sdp": OFFER},
                {"type": "publish_track", "call_id": cid, "mid": "0"},
                {"type": "ice_candidate", "call_id": cid, "pc": "publish", "candidate": CANDIDATE},
                {"type": "call_end", "call_id": cid}):
        await b2.call_err(req, "forbidden")
    # The caller's other connection is not in the call either.
    a2 = await a.connect("a2")
    await a2.call_err({"type": "publish_offer", "call_id": cid, "sdp": OFFER}, "forbidden")
    await a2.call_err({"type": "call_accept", "call_id": cid}, "forbidden")
    await silent(a.ws, b.ws)
    await end_call(b.ws, cid)
    await ended(a.ws, cid, "hangup")


async def test_unknown_call_ids_are_not_found(h):
    a = await h.user("pa")
    for cid in ("c999999999", "nonsense", "c"):
        for req in ({"type": "call_accept", "call_id": cid},
                    {"type": "call_reject", "call_id": cid},
                    {"type": "call_end", "call_id": cid},
                    {"type": "publish_offer", "call_id": cid, "sdp": OFFER},
                    {"type": "subscribe_answer", "call_id": cid, "sdp": OFFER},
                    {"type": "publish_track", "call_id": cid, "mid": "0"},
                    {"type": "ice_candidate", "call_id": cid, "pc": "publish", "candidate": CANDIDATE},
                    {"type": "call_signal", "call_id": cid, "to": a.name, "payload": {}},
                    {"type": "record_call", "call_id": cid, "enabled": False}):
            await a.ws.call_err(req, "not_found")


async def test_call_start_refusals(h, uname):
    a, b, outsider = await h.user("pa"), await h.user("pb"), await h.user("po")
    await a.ws.call_err({"type": "call_start", "callee": a.name}, "bad_request")
    await a.ws.call_err({"type": "call_start", "callee": a.name.upper()}, "bad_request")
    await a.ws.call_err({"type": "call_start", "callee": uname("nobody")}, "not_found")
    await a.ws.call_err({"type": "call_start", "groupname": uname("nogroup")}, "not_found")
    gname = await make_group(a, b)
    await outsider.ws.call_err({"type": "call_start", "groupname": gname}, "forbidden")
    # None of the refusals left the connection in a call.
    cid = await start_call(a.ws, b.name)
    await incoming(b.ws, cid, a)
    await a.ws.call_err({"type": "call_start", "callee": outsider.name}, "conflict")
    await a.ws.call_err({"type": "call_start", "groupname": gname}, "conflict")
    await no_frame_about(outsider.ws, cid, {"call_incoming"})
    await silent(outsider.ws)
    # The callee, once in the call, cannot start another on that connection.
    await accept(b.ws, cid)
    await b.ws.call_err({"type": "call_start", "callee": outsider.name}, "conflict")
    # Another connection of the same user is not in a call and may.
    a2 = await a.connect("a2")
    other = await start_call(a2, outsider.name)
    await incoming(outsider.ws, other, a)
    await end_call(a2, other)
    await ended(outsider.ws, other, "hangup")
    await end_call(a.ws, cid)


async def test_malformed_call_requests_are_bad_request(h):
    a, b = await h.user("pa"), await h.user("pb")
    cid = await start_call(a.ws, b.name)
    await incoming(b.ws, cid, a)
    await accept(b.ws, cid)
    await a.ws.recv_type("call_joined", call_id=cid)
    bad = [
        {"type": "call_accept"},
        {"type": "call_reject"},
        {"type": "call_end"},
        {"type": "call_end", "call_id": 7},
        {"type": "call_end", "call_id": None},
        {"type": "publish_offer", "sdp": OFFER},
        {"type": "publish_offer", "call_id": cid},
        {"type": "subscribe_answer", "call_id": cid},
        {"type": "ice_candidate", "call_id": cid, "pc": "data", "candidate": CANDIDATE},
        {"type": "ice_candidate", "call_id": cid, "candidate": CANDIDATE},
        {"type": "ice_candidate", "call_id": cid, "pc": "publish", "candidate": "a=" + CANDIDATE},
        {"type": "ice_candidate", "call_id": cid, "pc": "publish", "candidate": "1 1 udp 1 127.0.0.1 9 typ host"},
        {"type": "ice_candidate", "pc": "publish", "candidate": CANDIDATE},
        {"type": "publish_track", "call_id": cid, "mid": "0", "source": "hologram"},
        {"type": "publish_track", "call_id": cid},
        {"type": "call_signal", "call_id": cid, "to": a.name, "payload": "hello"},
        {"type": "call_signal", "call_id": cid, "to": a.name, "payload": [1, 2]},
        {"type": "call_signal", "call_id": cid, "to": a.name, "payload": None},
        {"type": "call_signal", "call_id": cid, "to": a.name},
        {"type": "call_signal", "call_id": cid, "payload": {}},
        {"type": "record_call", "call_id": cid},
        {"type": "call_history", "limit": 0},
        {"type": "call_history", "limit": 201},
        {"type": "call_history", "limit": "ten"},
    ]
    for req in bad:
        f = await b.ws.req(req)
        assert f.get("type") == "error" and f.get("code") == "bad_request", (req, f)
    # call_start from a connection that is in no call (else it is a conflict first).
    free = await b.connect("b-free")
    for req in ({"type": "call_start", "callee": a.name, "media": ["audio", "smell"]},
                {"type": "call_start", "callee": a.name, "media": []},
                {"type": "call_start", "callee": a.name, "media": "audio"},
                {"type": "call_start", "callee": a.name, "media": ["video", "video"]},
                {"type": "call_start"},
                {"type": "call_start", "callee": a.name, "groupname": "whatever"},
                {"type": "call_start", "callee": 42},
                {"type": "call_start", "callee": a.name, "record": "yes"}):
        f = await free.req(req)
        assert f.get("type") == "error" and f.get("code") == "bad_request", (req, f)
    await no_frame_about(a.ws, "", {"call_incoming"}, seconds=0)
    # The call survived all of it.
    await silent(a.ws)
    assert (await entry(a.ws, cid))["status"] == "ongoing"
    await end_call(a.ws, cid)


async def test_recording_needs_a_record_dir(h):
    a, b = await h.user("ra"), await h.user("rb")
    await a.ws.call_err({"type": "call_start", "callee": b.name, "record": True}, "forbidden")
    b_frames = await drain(b.ws, 0.2)
    assert not [f for f in b_frames if f.get("type") == "call_incoming"], b_frames
    # The refused start left no call behind (no conflict, nothing in history).
    assert await history(a.ws) == []
    cid = await start_call(a.ws, b.name, record=False)
    await incoming(b.ws, cid, a)
    await accept(b.ws, cid)
    await a.ws.call_err({"type": "record_call", "call_id": cid, "enabled": True}, "forbidden")
    e = await entry(a.ws, cid)
    assert not e.get("recorded"), e
    await end_call(a.ws, cid)


# --------------------------------------------------------------------------
# Group calls
# --------------------------------------------------------------------------

async def test_group_call_join_leave_rejoin_and_end(h):
    a, b, c, s = await h.user("ga"), await h.user("gb"), await h.user("gc"), await h.user("gs")
    gname = await make_group(a, b, c)
    a2 = await a.connect("a2")
    b2 = await b.connect("b2")
    cid = await start_call(a.ws, group=gname)
    for ws in (b.ws, b2, c.ws):
        await incoming(ws, cid, a, group=gname)
    await no_frame_about(a2, cid, {"call_incoming"})
    await no_frame_about(s.ws, cid, {"call_incoming"}, seconds=0)

    await s.ws.call_err({"type": "call_accept", "call_id": cid}, "forbidden")
    assert await accept(b.ws, cid) == [a.name, b.name]
    assert (await a.ws.recv_type("call_joined", call_id=cid))["user"] == b.name
    assert await accept(c.ws, cid) == [a.name, b.name, c.name]
    for ws in (a.ws, b.ws):
        assert (await ws.recv_type("call_joined", call_id=cid))["user"] == c.name

    # C's socket drops: a leave; the others hear of it and the call goes on.
    await c.ws.close()
    for ws in (a.ws, b.ws):
        assert (await ws.recv_type("call_left", call_id=cid))["user"] == c.name
    await no_frame_about(a.ws, cid, {"call_ended"}, seconds=0.2)
    assert (await entry(a.ws, cid))["status"] == "ongoing"

    # C re-joins from a new connection while the call lasts.
    c_new = await c.connect("c-new")
    assert set(await accept(c_new, cid)) == {a.name, b.name, c.name}
    for ws in (a.ws, b.ws):
        assert (await ws.recv_type("call_joined", call_id=cid))["user"] == c.name

    # B leaves with call_end: `left` for B, call_left for the others.
    await end_call(b.ws, cid, "left")
    for ws in (a.ws, c_new):
        assert (await ws.recv_type("call_left", call_id=cid))["user"] == b.name
    await no_frame_about(a.ws, cid, {"call_ended"}, seconds=0.2)

    # Fewer than two remain: the call ends, the last one gets the leaver's reason.
    await end_call(c_new, cid, {"left", "hangup"})
    await ended(a.ws, cid, "hangup")
    await ended(a2, cid, "hangup")
    for u in (a, b):
        e = await entry(u.ws, cid)
        check_shape(e)
        assert e["status"] == "completed" and e["groupname"] == gname, e
        assert e["participants"] == [a.name, b.name, c.name], e
        assert sorted(e["invited"]) == sorted([b.name, c.name]), e
    assert (await entry(c_new, cid))["status"] == "completed"


async def test_group_call_ends_when_a_drop_leaves_one(h):
    a, b, c = await h.user("ga"), await h.user("gb"), await h.user("gc")
    gname = await make_group(a, b, c)
    cid = await start_call(a.ws, group=gname)
    await incoming(b.ws, cid, a, group=gname)
    await incoming(c.ws, cid, a, group=gname)
    await accept(b.ws, cid)
    await a.ws.recv_type("call_joined", call_id=cid)
    await b.ws.close()
    await ended(a.ws, cid, "disconnected")
    await ended(c.ws, cid, "disconnected")  # still ringing: every party's connection hears
    b_new = await b.connect("b-new")
    await b_new.call_err({"type": "call_accept", "call_id": cid}, "not_found")
    assert (await entry(c.ws, cid))["status"] == "missed"


async def test_group_caller_hangs_up_before_anyone_joined(h):
    a, b, c = await h.user("ga"), await h.user("gb"), await h.user("gc")
    gname = await make_group(a, b, c)
    cid = await start_call(a.ws, group=gname)
    await incoming(b.ws, cid, a, group=gname)
    await incoming(c.ws, cid, a, group=gname)
    await end_call(a.ws, cid, "hangup")
    await ended(b.ws, cid, "hangup")
    await ended(c.ws, cid, "hangup")
    assert (await entry(a.ws, cid))["status"] == "cancelled"


async def test_group_call_ends_rejected_when_every_member_declines(h):
    a, b, c = await h.user("ga"), await h.user("gb"), await h.user("gc")
    gname = await make_group(a, b, c)
    b2 = await b.connect("b2")
    cid = await start_call(a.ws, group=gname)
    for ws in (b.ws, b2, c.ws):
        await incoming(ws, cid, a, group=gname)
    f = await b.ws.call({"type": "call_reject", "call_id": cid}, "call_ended")
    assert f["reason"] == "rejected", f
    await ended(b2, cid, "rejected")  # B's devices stop ringing
    await no_frame_about(a.ws, cid, {"call_ended"})  # the call goes on for the others
    await no_frame_about(c.ws, cid, {"call_ended"}, seconds=0)
    f = await c.ws.call({"type": "call_reject", "call_id": cid}, "call_ended")
    assert f["reason"] == "rejected", f
    await ended(a.ws, cid, "rejected")
    for u in (a, b, c):
        assert (await entry(u.ws, cid))["status"] == "rejected", u.name


async def test_group_call_goes_on_when_one_member_declines_and_another_joins(h):
    a, b, c = await h.user("ga"), await h.user("gb"), await h.user("gc")
    gname = await make_group(a, b, c)
    cid = await start_call(a.ws, group=gname)
    await incoming(b.ws, cid, a, group=gname)
    await incoming(c.ws, cid, a, group=gname)
    await b.ws.call({"type": "call_reject", "call_id": cid}, "call_ended")
    await accept(c.ws, cid)
    await a.ws.recv_type("call_joined", call_id=cid)
    await end_call(c.ws, cid, {"left", "hangup"})
    await ended(a.ws, cid, "hangup")
    assert (await entry(a.ws, cid))["status"] == "completed"
    assert (await entry(b.ws, cid))["status"] == "rejected"
    assert (await entry(c.ws, cid))["status"] == "completed"


async def test_rejoined_member_receives_the_media_again(h):
    """Media matters here: after a dropped socket and a re-join from a new
    connection, the member gets a fresh subscribe_offer with the others'
    tracks and decodes them; the others' tracks list loses and regains nothing
    of theirs (the member did not publish)."""
    loopback_only()
    a, b, c = await h.user("ma"), await h.user("mb"), await h.user("mc")
    gname = await make_group(a, b, c)
    pa = CallPeer(a.ws, "a")
    pc1 = pc2 = None
    try:
        cid = await start_call(a.ws, group=gname)
        await incoming(b.ws, cid, a, group=gname)
        await incoming(c.ws, cid, a, group=gname)
        await accept(b.ws, cid)
        await accept(c.ws, cid)
        await pa.publish(cid, audio=True, video=True)
        pc1 = CallPeer(c.ws, "c1")
        deadline = time.monotonic() + 15
        while not (pc1.track(a.name, "camera") and pc1.track(a.name, "microphone")):
            assert time.monotonic() < deadline, pc1.tracks
            await pc1.answer_subscribe_offer()
        await pc1.wait_frames({(a.name, "camera"): 5})

        await c.ws.close()
        await pc1.close()
        assert (await a.ws.recv_type("call_left", call_id=cid))["user"] == c.name

        c_new = await c.connect("c-new")
        await accept(c_new, cid)
        pc2 = CallPeer(c_new, "c2")
        deadline = time.monotonic() + 15
        while not (pc2.track(a.name, "camera") and pc2.track(a.name, "microphone")):
            assert time.monotonic() < deadline, pc2.tracks
            await pc2.answer_subscribe_offer()
        assert all(t["user"] != c.name for t in pc2.tracks), pc2.tracks
        await pc2.wait_frames({(a.name, "camera"): 5, (a.name, "microphone"): 5})
        await end_call(a.ws, cid, {"left", "hangup"})
    finally:
        for p in (pa, pc1, pc2):
            if p is not None:
                await p.close()


async def test_member_added_during_the_call_is_a_full_participant(h):
    a, b, d = await h.user("ga"), await h.user("gb"), await h.user("gd")
    gid, gname = await create_group(a.ws)
    await a.ws.call({"type": "invite", "group_id": gid, "username": b.name}, "invite_response")
    cid = await start_call(a.ws, group=gname)
    await incoming(b.ws, cid, a, group=gname)
    await a.ws.call({"type": "invite", "group_id": gid, "username": d.name}, "invite_response")
    # Membership is checked when accepting, so D may join (docs/PROTOCOL.md).
    assert await accept(d.ws, cid) == [a.name, d.name]
    assert (await a.ws.recv_type("call_joined", call_id=cid))["user"] == d.name
    # The caller leaves: fewer than two remain, everyone in it gets call_ended.
    await end_call(a.ws, cid, {"left", "hangup"})
    await ended(b.ws, cid, "hangup")
    problems = []
    d_frames = await drain(d.ws, 1.5)
    if not [f for f in d_frames if f.get("type") == "call_ended" and f.get("call_id") == cid]:
        problems.append(f"D (in the media) got no call_ended; D's frames: {d_frames}")
    e = await entry(a.ws, cid)
    if d.name not in e["participants"]:
        problems.append(f"participants {e['participants']} lack D")
    d_calls = await history(d.ws)
    if cid not in [c["call_id"] for c in d_calls]:
        problems.append(f"D's call_history {d_calls} lacks the call")
    assert not problems, problems


# --------------------------------------------------------------------------
# call_signal and ice_candidate
# --------------------------------------------------------------------------

PAYLOAD = {
    "kind": "offer",
    "sdp": "v=0\r\no=- 42 2 IN IP4 127.0.0.1\r\n",
    "nested": {"list": [1, 2.5, -3, True, False, None, "x"], "empty": {}, "emptylist": []},
    "unicode": "h\u00e9llo \u2603 \U0001f600 \"quoted\" back\\slash \u0001",
    "number": 1234567890123,
    "float": 0.1,
    "exp": -3.5e-7,
}


async def test_call_signal_is_relayed_verbatim_to_every_connection(h):
    a, b, s = await h.user("xa"), await h.user("xb"), await h.user("xs")
    b2 = await b.connect("b2")
    cid = await start_call(a.ws, b.name)
    await incoming(b.ws, cid, a)
    await incoming(b2, cid, a)

    await a.ws.send({"type": "call_signal", "call_id": cid, "to": b.name, "payload": PAYLOAD})
    for ws in (b.ws, b2):
        f = await ws.recv_type("call_signal", call_id=cid)
        assert f["from"] == a.name and f["payload"] == PAYLOAD, f
        assert set(f) <= {"type", "call_id", "from", "payload"}, f
    await silent(a.ws)  # no acknowledgement, no echo

    back = {"kind": "answer", "n": [[[]]]}
    await b2.send({"type": "call_signal", "call_id": cid, "to": a.name.upper(), "payload": back})
    f = await a.ws.recv_type("call_signal", call_id=cid)
    assert f["from"] == b.name and f["payload"] == back, f

    # To someone who is not a party: not_found, and they get nothing.
    await a.ws.call_err({"type": "call_signal", "call_id": cid, "to": s.name, "payload": {}}, "not_found")
    await a.ws.call_err({"type": "call_signal", "call_id": cid, "to": "no-such-user-x", "payload": {}}, "not_found")
    await no_frame_about(s.ws, cid, {"call_signal"})
    await end_call(a.ws, cid)


async def test_ice_candidates_from_participants_need_no_answer(h):
    a, b = await h.user("ia"), await h.user("ib")
    cid = await start_call(a.ws, b.name)
    await incoming(b.ws, cid, a)
    await accept(b.ws, cid)
    await a.ws.recv_type("call_joined", call_id=cid)
    for ws, pc in ((a.ws, "publish"), (b.ws, "subscribe")):
        await ws.send({"type": "ice_candidate", "call_id": cid, "pc": pc, "candidate": CANDIDATE, "sdp_mid": "0",
                       "sdp_mline_index": 0, "request_id": "cand-1"})
        await ws.send({"type": "ice_candidate", "call_id": cid, "pc": pc, "candidate": "", "request_id": "cand-2"})
        await ws.send({"type": "ice_candidate", "call_id": cid, "pc": pc,
                       "candidate": "candidate:2 1 tcp 1518280447 127.0.0.1 9 typ host tcptype active"})
    await silent(a.ws, b.ws, seconds=0.6)
    await end_call(a.ws, cid)


# --------------------------------------------------------------------------
# Call history and export
# --------------------------------------------------------------------------

async def test_call_history_statuses_order_and_paging(h):
    x, y, z = await h.user("hx"), await h.user("hy"), await h.user("hz")
    ids: dict[str, str] = {}

    ids["completed"] = await start_call(x.ws, y.name, media=["audio"])
    await incoming(y.ws, ids["completed"], x, media=["audio"])
    await accept(y.ws, ids["completed"])
    await end_call(x.ws, ids["completed"])

    ids["cancelled"] = await start_call(x.ws, y.name)
    await incoming(y.ws, ids["cancelled"], x)
    await end_call(x.ws, ids["cancelled"])

    ids["rejected"] = await start_call(x.ws, y.name)
    await incoming(y.ws, ids["rejected"], x)
    await y.ws.call({"type": "call_reject", "call_id": ids["rejected"]}, "call_ended")
    await ended(x.ws, ids["rejected"], "rejected")

    ids["busy_reply"] = await start_call(x.ws, y.name)
    await incoming(y.ws, ids["busy_reply"], x)
    await y.ws.call({"type": "call_reject", "call_id": ids["busy_reply"], "reason": "busy"}, "call_ended")
    await ended(x.ws, ids["busy_reply"], "busy")

    zy = await start_call(z.ws, y.name)
    await incoming(y.ws, zy, z)
    await accept(y.ws, zy)
    ids["busy"] = await start_call(x.ws, y.name)
    await ended(x.ws, ids["busy"], "busy")
    await end_call(z.ws, zy)

    live = await start_call(x.ws, y.name)
    await incoming(y.ws, live, x)
    for u in (x, y):
        e = await entry(u.ws, live)
        check_shape(e)
        assert e["status"] == "ringing" and e["ended_at"] is None and e["answered_at"] is None, e
    await accept(y.ws, live)
    for u in (x, y):
        e = await entry(u.ws, live)
        assert e["status"] == "ongoing" and e["ended_at"] is None and e["answered_at"], e
    await end_call(y.ws, live)
    await ended(x.ws, live, "hangup")
    ids["completed2"] = live

    order = ["completed2", "busy", "busy_reply", "rejected", "cancelled", "completed"]
    calls = await history(x.ws)
    assert [c["call_id"] for c in calls] == [ids[k] for k in order], calls
    for c in calls:
        check_shape(c)
        assert c["caller"] == x.name and c["invited"] == [y.name] and c.get("callee") == y.name, c
        assert c["ended_at"] is not None, c
    starts = [c["started_at"] for c in calls]
    assert starts == sorted(starts, reverse=True)
    x_status = {k: c["status"] for k, c in zip(order, calls)}
    assert x_status == {"completed2": "completed", "busy": "busy", "busy_reply": "busy", "rejected": "rejected",
                        "cancelled": "cancelled", "completed": "completed"}, x_status
    first = calls[-1]
    assert first["media"] == ["audio"] and first["participants"] == [x.name, y.name], first
    assert first["started_at"] <= first["answered_at"] <= first["ended_at"], first
    assert first["reason"] == "hangup", first
    assert calls[0]["media"] == ["audio", "video"], calls[0]

    ycalls = {c["call_id"]: c for c in await history(y.ws)}
    assert ycalls[ids["completed"]]["status"] == "completed"
    assert ycalls[ids["cancelled"]]["status"] == "missed"
    assert ycalls[ids["rejected"]]["status"] == "rejected"
    assert ycalls[ids["busy_reply"]]["status"] == "rejected"
    assert ycalls[ids["busy"]]["status"] in ("missed", "rejected")
    assert ycalls[zy]["status"] == "completed" and ycalls[zy]["caller"] == z.name
    assert zy not in {c["call_id"] for c in calls}, "Z's call is not in X's history"

    # Paging: limit, then before_id = the last id of the page.
    page1 = await history(x.ws, limit=2)
    assert [c["call_id"] for c in page1] == [ids["completed2"], ids["busy"]]
    page2 = await history(x.ws, limit=2, before_id=page1[-1]["call_id"])
    assert [c["call_id"] for c in page2] == [ids["busy_reply"], ids["rejected"]]
    page3 = await history(x.ws, limit=10, before_id=page2[-1]["call_id"])
    assert [c["call_id"] for c in page3] == [ids["cancelled"], ids["completed"]]
    assert await history(x.ws, before_id=ids["completed"]) == []
    one_by_one, before = [], None
    for _ in range(10):
        q = {"limit": 1} | ({"before_id": before} if before else {})
        page = await history(x.ws, **q)
        if not page:
            break
        assert len(page) == 1
        one_by_one.append(page[0]["call_id"])
        before = page[0]["call_id"]
    assert one_by_one == [c["call_id"] for c in calls]


async def test_export_includes_call_history(h):
    a, b = await h.user("ea"), await h.user("eb")
    done = await start_call(a.ws, b.name)
    await incoming(b.ws, done, a)
    await accept(b.ws, done)
    await end_call(b.ws, done)
    await ended(a.ws, done, "hangup")
    missed = await start_call(a.ws, b.name, media=["video"])
    await incoming(b.ws, missed, a, media=["video"])
    await end_call(a.ws, missed)

    for u, statuses in ((a, {done: "completed", missed: "cancelled"}), (b, {done: "completed", missed: "missed"})):
        status, doc = http_json(h.srv, "/api/export", u.token)
        assert status == 200, doc
        exported = {c["call_id"]: c for c in doc["call_history"]}
        assert set(exported) == {done, missed}, doc["call_history"]
        assert {k: v["status"] for k, v in exported.items()} == statuses
        ws_view = {c["call_id"]: c for c in await history(u.ws)}
        for cid, e in exported.items():
            check_shape(e)
            assert e["caller"] == a.name and e["participants"] == ws_view[cid]["participants"], e
            assert e["started_at"] == ws_view[cid]["started_at"] and e["ended_at"] == ws_view[cid]["ended_at"], e
        assert exported[missed]["media"] == ["video"]
    c = await h.user("ec")
    status, doc = http_json(h.srv, "/api/export", c.token)
    assert status == 200 and doc["call_history"] == [], doc


# --------------------------------------------------------------------------
# Origins (server with --allowed-origins http://good.example)
# --------------------------------------------------------------------------

async def test_allowed_origins(ring2, h2):
    before = errors(ring2, "forbidden")
    evil = upgrade_status(ring2, headers={"Origin": "http://evil.example"})
    assert evil != 101, "an upgrade from another origin must be refused"
    assert 400 <= evil < 500, evil
    assert errors(ring2, "forbidden") >= before + 1
    assert upgrade_status(ring2, headers={"Origin": "https://good.example"}) != 101  # scheme matters
    assert upgrade_status(ring2, headers={"Origin": GOOD_ORIGIN}) == 101
    assert upgrade_status(ring2) == 101

    u = await h2.user("oa")  # the harness sends no Origin
    good = await h2.open("good", headers={"Origin": GOOD_ORIGIN})
    r = await good.call({"type": "login", "username": u.name, "password": u.pw}, "login_response")
    assert r["status"] == "login_success", r
    with pytest.raises(Exception):
        bad = await open_ws(ring2, "evil", headers={"Origin": "http://evil.example"})
        await bad.close()


async def test_refused_origin_is_400(ring2):
    # docs/PROTOCOL.md: the refused upgrade answers 400 (what the WebSocket
    # upgrader answers for any upgrade that does not go through).
    assert upgrade_status(ring2, headers={"Origin": "http://evil.example"}) == 400


# --------------------------------------------------------------------------
# Restart
# --------------------------------------------------------------------------

async def test_calls_cut_off_by_a_restart_end_with_server_restart(server_factory):
    srv = server_factory(turn=False).start()
    h = Harness(srv)
    try:
        a, b, c = await h.user("ka"), await h.user("kb"), await h.user("kc")
        ringing = await start_call(a.ws, b.name)
        await incoming(b.ws, ringing, a)
        ongoing = await start_call(c.ws, b.name)
        await incoming(b.ws, ongoing, c)
        b2 = await b.connect("b2")
        await accept(b2, ongoing)
        srv.kill9()
        await h.close_all()

        srv.start()
        h = Harness(srv)
        for u in (a, b, c):
            u.h, u.ws = h, None
            await u.connect()
        e = await entry(a.ws, ringing)
        assert e["reason"] == "server_restart" and e["ended_at"] is not None, e
        assert e["status"] not in ("ringing", "ongoing"), e
        assert (await entry(b.ws, ringing))["status"] == "missed"
        e = await entry(c.ws, ongoing)
        assert e["reason"] == "server_restart" and e["ended_at"] is not None and e["status"] == "completed", e
        # The old calls are gone; new ones get new ids.
        await b.ws.call_err({"type": "call_accept", "call_id": ringing}, "not_found")
        fresh = await start_call(a.ws, b.name)
        assert fresh not in (ringing, ongoing)
        await incoming(b.ws, fresh, a)
        await end_call(a.ws, fresh)
    finally:
        await h.close_all()


async def test_graceful_stop_leaves_no_call_open(server_factory):
    srv = server_factory(turn=False).start()
    h = Harness(srv)
    try:
        a, b = await h.user("ka"), await h.user("kb")
        ringing = await start_call(a.ws, b.name)
        await incoming(b.ws, ringing, a)
        await asyncio.to_thread(srv.stop)  # SIGTERM with the connections open
        await h.close_all()
        await asyncio.to_thread(srv.start)
        h = Harness(srv)
        a.h, a.ws = h, None
        await a.connect()
        e = await entry(a.ws, ringing)
        assert e["ended_at"] is not None and e["status"] not in ("ringing", "ongoing"), e
        assert e["reason"] in ("server_restart", "disconnected", "hangup"), e
    finally:
        await h.close_all()


async def test_a_late_reject_from_another_device_cannot_end_an_answered_call(h):
    a = await h.user("lr")
    b = await h.user("lr")
    b2 = await b.connect("b2")
    started = await a.ws.call({"type": "call_start", "callee": b.name}, "call_started")
    call_id = started["call_id"]
    await b.ws.recv_type("call_incoming", call_id=call_id)
    await b2.recv_type("call_incoming", call_id=call_id)
    await b.ws.call({"type": "call_accept", "call_id": call_id}, "call_accepted")
    await b2.recv_type("call_ended", call_id=call_id, reason="answered_elsewhere")
    await b2.call_err({"type": "call_reject", "call_id": call_id}, "conflict")
    # The answered call goes on: A is not told it ended.
    await a.ws.recv_type("call_joined", call_id=call_id)
    await a.ws.expect_nothing(0.5)
    await a.ws.call({"type": "call_end", "call_id": call_id}, "call_ended")
