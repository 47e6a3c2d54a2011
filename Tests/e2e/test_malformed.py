"""Malformed and abusive input. After each: the offending connection still works (where the
transport allows), another user's session is unaffected, and the server stays healthy."""

import asyncio
import base64
import json
import os
import random
import socket
import string

import pytest

from conftest import LineClient, PASSWORD, new_username, raw_http, send_dm


class Guard:
    """Two bystanders that must keep working whatever the test throws at the server."""

    def __init__(self, h):
        self.h = h

    async def setup(self):
        self.x = await self.h.user("bx")
        self.y = await self.h.user("by")

    async def check(self):
        assert self.h.srv.alive(), "server process died"
        assert self.h.srv.health_status() == 200
        sent = await send_dm(self.x.ws, self.y.name, "bystander check")
        got = await self.y.ws.recv_type("receive_message", message_id=sent["message_id"])
        assert got["content"] == "bystander check"


@pytest.fixture
async def guard(h):
    g = Guard(h)
    await g.setup()
    return g


async def works(ws):
    """A follow-up request on the same connection succeeds."""
    await ws.call({"type": "list_groups"}, "groups")


async def next_error(ws, timeout=5.0):
    return await ws.recv_type("error", timeout)


def not_json(rng, n):
    while True:
        s = "".join(rng.choice(string.printable) for _ in range(rng.randint(1, n)))
        try:
            json.loads(s)
        except ValueError:
            return s


async def test_invalid_json(h, guard):
    a = await h.user()
    anon = await h.open("anon")
    wrong = []
    for ws in (a.ws, anon):
        for payload in ("{", "not json", "[1,2", '{"type": "list_groups",}', '{"type": "list_groups", "x": [1,]}',
                        "", "   ", "\x00\x01\x02", "{'type': 'list_groups'}", '{"type":"list_groups"} trailing',
                        '{"type":"list_groups"}{"type":"list_groups"}', "{type: 'list_groups'}"):
            await ws.send_raw(payload)
            f = await ws.recv(5)
            if f.get("type") != "error" or f.get("code") != "bad_json":
                wrong.append((ws.label, payload, f))
    assert not wrong, "invalid JSON not answered with bad_json: " + repr(wrong)
    await works(a.ws)
    await anon.call_err({"type": "list_groups"}, "not_authenticated")
    await guard.check()


async def test_random_text_frames(h, guard):
    a = await h.user()
    rng = random.Random(1234)
    for _ in range(40):
        payload = not_json(rng, 300)
        await a.ws.send_raw(payload)
        e = await next_error(a.ws)
        assert e["code"] == "bad_json", (payload, e)
    await works(a.ws)
    await guard.check()


async def test_binary_frames(h, guard):
    a = await h.user()
    for payload in (json.dumps({"type": "list_groups"}).encode(), os.urandom(100), b"", b"\xff\xfe\x00"):
        await a.ws.send_raw(payload)
        e = await next_error(a.ws)
        assert e["code"] == "bad_json", (payload, e)
    await a.ws.expect_nothing(0.3)  # the binary list_groups was not served
    await works(a.ws)
    await guard.check()


async def test_non_object_json(h, guard):
    a = await h.user()
    for payload in ("[1,2]", "[]", '"send_message"', "42", "null", "true", '[{"type":"list_groups"}]'):
        await a.ws.send_raw(payload)
        e = await next_error(a.ws)
        assert e["code"] == "bad_json", (payload, e)
    await a.ws.expect_nothing(0.3)
    await works(a.ws)
    await guard.check()


async def test_missing_or_bad_type(h, guard):
    a = await h.user()
    for frame in ({"foo": 1}, {"type": 5}, {"type": None}, {"type": ["list_groups"]}, {"type": {"x": 1}}):
        frame = dict(frame, request_id="mt")
        e = await a.ws.req(frame)
        assert e["type"] == "error" and e["code"] == "bad_request", (frame, e)
    e = await a.ws.call_err({"type": "fly_to_the_moon", "request_id": "u-1"}, "unknown_type")
    assert e["request_id"] == "u-1"
    await works(a.ws)
    await guard.check()


WRONG_TYPES = [
    ({"type": "send_message", "recipient": 5, "content": "x"}, "recipient"),
    ({"type": "send_message", "recipient": "someone", "content": ["x"]}, "content"),
    ({"type": "send_message", "recipient": "someone", "content": "x", "client_message_id": 7}, "client_message_id"),
    ({"type": "send_message", "content": "x"}, "recipient"),
    ({"type": "send_message", "recipient": "someone"}, "content"),
    ({"type": "fetch_history", "recipient": "someone", "limit": "ten"}, "limit"),
    ({"type": "fetch_history", "recipient": "someone", "before_id": 12}, "before_id"),
    ({"type": "broadcast_message", "recipients": "user1", "content": "x"}, "recipients"),
    ({"type": "broadcast_message", "recipients": [1, 2], "content": "x"}, "recipients"),
    ({"type": "send_group_message", "groupname": 3, "content": "x"}, "groupname"),
    ({"type": "create_group", "group_name": 7}, "group_name"),
    ({"type": "join_group", "group_id": 7}, "group_id"),
    ({"type": "edit_message", "message_id": 7, "content": "x"}, "message_id"),
    ({"type": "mark_read", "message_id": None}, "message_id"),
    ({"type": "search_messages", "query": 5}, "query"),
    ({"type": "add_contact", "username": ["x"]}, "username"),
    ({"type": "typing", "recipient": "someone", "state": 1}, "state"),
]


@pytest.mark.parametrize("frame,field", WRONG_TYPES, ids=[f"{f['type']}-{fld}" for f, fld in WRONG_TYPES])
async def test_wrong_field_types(h, frame, field):
    a = await h.user()
    e = await a.ws.call_err(frame, "bad_request")
    assert field in e["reason"], e
    await works(a.ws)


async def test_wrong_types_then_bystander(h, guard):
    a = await h.user()
    for frame, _ in WRONG_TYPES:
        await a.ws.call_err(frame, "bad_request")
    await works(a.ws)
    await guard.check()


@pytest.mark.parametrize("size", [65537, 70_000, 1_000_000])
async def test_oversize_frame(h, guard, size):
    a = await h.user()
    b = await h.user()
    head = json.dumps({"type": "send_message", "recipient": b.name, "content": ""})[:-2]
    payload = head + "x" * (size - len(head) - 2) + '"}'
    assert len(payload.encode()) == size
    await a.ws.send_raw(payload)
    e = await next_error(a.ws, 10)
    assert e["code"] == "too_large", e
    await works(a.ws)
    await b.ws.expect_nothing(0.3)  # it was not delivered
    await guard.check()


async def test_frame_at_limit_not_too_large(h):
    a = await h.user()
    # A frame just under 64 KiB is not a frame-size error; it is served normally.
    payload = json.dumps({"type": "list_groups", "request_id": "big", "pad": "p" * 65000})
    assert len(payload) < 65536
    await a.ws.send_raw(payload)
    r = await a.ws.recv_match(lambda f: f.get("request_id") == "big")
    assert r["type"] == "groups", r


async def test_request_id_echo(h, guard):
    a = await h.user()
    r = await a.ws.call({"type": "list_groups", "request_id": "abc"}, "groups")
    assert r["request_id"] == "abc"
    e = await a.ws.call_err({"type": "send_message", "recipient": "ghost" + new_username(), "content": "x",
                             "request_id": "e-1"}, "not_found")
    assert e["request_id"] == "e-1"
    rid64 = "r" * 64
    r = await a.ws.call({"type": "list_groups", "request_id": rid64}, "groups")
    assert r["request_id"] == rid64
    # Over-long or non-string request_id: bad_request, value not echoed, request not served.
    for bad in ("r" * 65, 123, {"a": 1}):
        await a.ws.send({"type": "list_groups", "request_id": bad})
        e = await a.ws.recv_type(("error", "groups"))
        assert e["type"] == "error" and e["code"] == "bad_request", (bad, e)
        assert e.get("request_id") != bad, e
        await a.ws.expect_nothing(0.2)
    await works(a.ws)
    await guard.check()


async def test_case_insensitive_type(h):
    a = await h.user()
    b = await h.user()
    r = await a.ws.req({"type": " SEND_MESSAGE ", "recipient": b.name, "content": "shouty"})
    assert r["type"] == "message_sent", r
    got = await b.ws.recv_type("receive_message", message_id=r["message_id"])
    assert got["content"] == "shouty"
    r = await a.ws.req({"type": "\tList_Groups "})
    assert r["type"] == "groups", r


async def test_type_trimming_includes_newlines(h):
    a = await h.user()
    r = await a.ws.req({"type": "\nlist_groups\r\n"})
    assert r["type"] == "groups", r


async def burst(ws, n):
    """Send n list_groups frames at once; return the n answers in arrival order."""
    for i in range(n):
        await ws.ws.send(json.dumps({"type": "list_groups", "request_id": f"b{i}"}))
    answers = []
    while len(answers) < n:
        f = await ws.recv_match(lambda f: f.get("type") == "groups" or f.get("code") == "rate_limited", timeout=20,
                                what=f"answer {len(answers) + 1} of {n}")
        answers.append(f)
    return answers


async def test_rate_limited(h, guard):
    a = await h.user()
    n = 300
    answers = await burst(a.ws, n)
    limited = [f for f in answers if f.get("code") == "rate_limited"]
    served = [f for f in answers if f["type"] == "groups"]
    assert limited, f"no rate_limited in a burst of {n}"
    assert len(served) >= 150, f"only {len(served)} served (burst allowance is 200)"
    assert len(limited) + len(served) == n
    # The first frames of the burst are the ones served.
    assert [f.get("request_id") for f in served[:100]] == [f"b{i}" for i in range(100)]
    await a.ws.expect_nothing(0.3)
    # Other connections are unaffected right away...
    await guard.check()
    other = await a.connect("a-other")
    await works(other)
    # ... and this one recovers once tokens refill.
    await asyncio.sleep(1.5)
    await works(a.ws)


async def test_rate_limited_echoes_request_id(h):
    """docs/PROTOCOL.md: "Every direct response to a request, and every error about it, echoes it"."""
    a = await h.user()
    answers = await burst(a.ws, 260)
    limited = [f for f in answers if f.get("code") == "rate_limited"]
    assert limited
    assert all(str(f.get("request_id", "")).startswith("b") for f in limited), limited[:3]


async def test_random_bytes_on_websocket_transport(h, guard):
    """Garbage instead of WebSocket framing after a successful upgrade: may close that connection only."""
    for seed in range(3):
        s = socket.create_connection(("127.0.0.1", h.srv.http_port), timeout=3)
        key = base64.b64encode(os.urandom(16)).decode()
        s.sendall((f"GET /ws HTTP/1.1\r\nHost: 127.0.0.1\r\nUpgrade: websocket\r\nConnection: Upgrade\r\n"
                   f"Sec-WebSocket-Key: {key}\r\nSec-WebSocket-Version: 13\r\n\r\n").encode())
        head = b""
        while b"\r\n\r\n" not in head:
            chunk = s.recv(4096)
            assert chunk, "upgrade response cut short"
            head += chunk
        assert head.startswith(b"HTTP/1.1 101"), head[:100]
        try:
            s.sendall(random.Random(seed).randbytes(8192))
            s.settimeout(1)
            s.recv(4096)
        except OSError:
            pass
        s.close()
    await guard.check()


GARBAGE_HTTP = [
    b"\x16\x03\x01\x02\x00\x01\x00\x01\xfc\x03\x03" + bytes(range(256)),          # TLS ClientHello-ish
    b"GARBAGE\r\n\r\n",
    b"GET / HTTP/9.9\r\n\r\n",
    b"GET /health HTTP/1.1\r\nHost: x\r\nContent-Length: -5\r\n\r\n",
    b"POST /api/import HTTP/1.1\r\nHost: x\r\nContent-Length: 99999999\r\n\r\nshort",
    b"GET /" + b"a" * 100_000 + b" HTTP/1.1\r\nHost: x\r\n\r\n",
    b"GET / HTTP/1.1\r\nHost: x\r\nX-Big: " + b"b" * 200_000 + b"\r\n\r\n",
    b"GET /ws HTTP/1.1\r\nHost: x\r\nUpgrade: websocket\r\nConnection: Upgrade\r\n"
    b"Sec-WebSocket-Version: 99\r\n\r\n",
    b"GET /ws HTTP/1.1\r\nHost: x\r\nUpgrade: websocket\r\nConnection: Upgrade\r\n\r\n",
    b"\x00" * 1000,
    b"GET / HTTP/1.1\r\nHo",  # cut off mid-header
]


async def test_http_port_garbage(h, guard):
    for payload in GARBAGE_HTTP + [random.Random(i).randbytes(5000) for i in range(5)]:
        raw_http(h.srv, payload, timeout=1.0)
        assert h.srv.alive(), f"server died after {payload[:60]!r}"
    # Connections opened and dropped without a byte.
    for _ in range(20):
        socket.create_connection(("127.0.0.1", h.srv.http_port), timeout=2).close()
    assert h.srv.http_get("/health")[0] == 200
    await guard.check()


async def test_line_port_garbage(h, guard):
    rng = random.Random(99)
    for i in range(5):
        lc = LineClient(h.srv, timeout=2)
        try:
            lc.sock.sendall(rng.randbytes(3000) + b"\n\x00\xff\xfe\n\r\n")
            lc.sock.settimeout(0.5)
            try:
                lc.sock.recv(65536)
            except OSError:
                pass
        finally:
            lc.close()
    assert h.srv.alive()
    # Overlong line: error too_large, connection keeps working.
    lc = LineClient(h.srv)
    try:
        lc.send(b"send someone " + b"z" * 20_000)
        assert lc.readline().split(" ")[:2] == ["error", "too_large"]
        name = new_username("lg")
        assert lc.cmd(f"register {name} {PASSWORD}") == "register_success"
        assert lc.cmd(f"login {name} {PASSWORD}") == "login_success"
        # Invalid UTF-8 and empty lines do not stop the connection either.
        lc.sock.sendall(b"\xff\xfe\xfd garbage\n\n")
        lc.send("create_group " + new_username("lg"))
        lines = [lc.readline()]  # error lines for the garbage may come first
        while not lines[-1].startswith("create_group_") and len(lines) < 5:
            lines.append(lc.readline())
        assert lines[-1].startswith("create_group_success "), lines
    finally:
        lc.close()
    await guard.check()


async def test_many_bad_frames_keep_data(h, guard):
    """Nothing already stored is lost: history survives an onslaught of bad input."""
    a = await h.user()
    b = await h.user()
    sent = await send_dm(a.ws, b.name, "precious")
    rng = random.Random(7)
    for _ in range(100):
        await a.ws.send_raw(not_json(rng, 50))
    for _ in range(100):
        await next_error(a.ws)
    r = await b.ws.call({"type": "fetch_history", "recipient": a.name}, "history")
    assert [m["message_id"] for m in r["messages"]] == [sent["message_id"]]
    await guard.check()
