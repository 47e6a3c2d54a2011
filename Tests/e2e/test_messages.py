"""Direct, group and broadcast messages; idempotency; offline delivery; edit/delete/read/typing."""

import asyncio
import uuid

from conftest import (TS_RE, create_group, fetch_history, full_history, join_group, login, send_dm)


def utf16_len(s: str) -> int:
    return len(s.encode("utf-16-le")) // 2


async def test_send_and_receive(h):
    a = await h.user()
    b = await h.user()
    sent = await send_dm(a.ws, b.name, "Hello, B! ünïcødé ✓", client_message_id="c-1")
    assert isinstance(sent["message_id"], str) and sent["message_id"]
    assert TS_RE.match(sent["timestamp"]), sent
    assert sent["client_message_id"] == "c-1"
    got = await b.ws.recv_type("receive_message")
    assert got["message_id"] == sent["message_id"]
    assert got["sender"] == a.name
    assert got["recipient"] == b.name
    assert got["content"] == "Hello, B! ünïcødé ✓"
    assert got["timestamp"] == sent["timestamp"]
    assert got.get("client_message_id") == "c-1"
    # The sending connection gets no copy.
    await a.ws.expect_nothing(0.3)


async def test_message_ids_unique(h):
    a = await h.user()
    b = await h.user()
    ids = [(await send_dm(a.ws, b.name, f"n{i}"))["message_id"] for i in range(5)]
    assert len(set(ids)) == 5


async def test_send_to_unknown_recipient(h):
    a = await h.user()
    e = await a.ws.call_err({"type": "send_message", "recipient": "nobody" + uuid.uuid4().hex[:8], "content": "x"},
                            "not_found")
    assert e["request_id"]


async def test_sender_other_connection_receives_direct(h):
    a = await h.user()
    a2 = await a.connect("a2")
    b = await h.user()
    sent = await send_dm(a.ws, b.name, "sync my devices")
    got = await a2.recv_type("receive_message", message_id=sent["message_id"])
    assert got["sender"] == a.name and got["recipient"] == b.name and got["content"] == "sync my devices"
    await b.ws.recv_type("receive_message", message_id=sent["message_id"])
    await a.ws.expect_nothing(0.3)


async def test_message_to_self(h):
    a = await h.user()
    sent = await send_dm(a.ws, a.name, "note to self")
    hist = await fetch_history(a.ws, recipient=a.name)
    assert [m["message_id"] for m in hist["messages"]].count(sent["message_id"]) == 1


async def test_client_message_id_idempotent(h):
    a = await h.user()
    b = await h.user()
    cmid = "retry-" + uuid.uuid4().hex
    first = await send_dm(a.ws, b.name, "only once", client_message_id=cmid)
    second = await send_dm(a.ws, b.name, "only once", client_message_id=cmid)
    assert second["message_id"] == first["message_id"]
    assert second["client_message_id"] == cmid
    # Also from another connection of the same user.
    a2 = await a.connect("a2")
    third = await send_dm(a2, b.name, "only once", client_message_id=cmid)
    assert third["message_id"] == first["message_id"]
    # A different id is a different message; the same id from another user is too.
    other = await send_dm(a.ws, b.name, "only once", client_message_id=cmid + "-2")
    assert other["message_id"] != first["message_id"]
    c = await h.user()
    from_c = await send_dm(c.ws, b.name, "only once", client_message_id=cmid)
    assert from_c["message_id"] != first["message_id"]
    # Stored once.
    hist = await full_history(b.ws, recipient=a.name)
    ids = [m["message_id"] for m in hist]
    assert ids.count(first["message_id"]) == 1
    assert len(hist) == 2, hist


async def test_offline_delivery_once_oldest_first(h):
    a = await h.user()
    b = await h.user(online=False)
    gid, gname = await create_group(a.ws)
    inv = await a.ws.call({"type": "invite", "group_id": gid, "username": b.name}, "invite_response")
    assert inv["status"] == "invite_success", inv
    s1 = await send_dm(a.ws, b.name, "first")
    s2 = await a.ws.call({"type": "send_group_message", "groupname": gname, "content": "second"},
                         "group_message_sent")
    s3 = await send_dm(a.ws, b.name, "third", client_message_id="k3")

    ws = await h.open("b-login")
    r = await login(ws, b.name)
    assert r["status"] == "login_success"
    pending = r["pending_messages"]
    assert [p["message_id"] for p in pending] == [s1["message_id"], s2["message_id"], s3["message_id"]], pending
    assert [p["type"] for p in pending] == ["receive_message", "receive_group_message", "receive_message"]
    assert [p["content"] for p in pending] == ["first", "second", "third"]
    assert pending[0]["sender"] == a.name and pending[0]["recipient"] == b.name
    assert pending[1]["groupname"] == gname and pending[1]["sender"] == a.name
    assert pending[2].get("client_message_id") == "k3"
    for p in pending:
        assert TS_RE.match(p["timestamp"]), p
    # Not also pushed live on that connection.
    await ws.expect_nothing(0.4, ignore=("presence", "group_invite"))
    # A message while connected is live, not pending later.
    s4 = await send_dm(a.ws, b.name, "live")
    await ws.recv_type("receive_message", message_id=s4["message_id"])
    await ws.close()
    await asyncio.sleep(0.3)
    ws2 = await h.open("b-again")
    r2 = await login(ws2, b.name)
    assert r2["pending_messages"] == []


async def test_pending_pushed_on_token_upgrade(h):
    a = await h.user()
    b = await h.user()
    token = b.token
    await b.ws.close()
    await asyncio.sleep(0.3)
    s1 = await send_dm(a.ws, b.name, "while away 1")
    s2 = await send_dm(a.ws, b.name, "while away 2")
    ws = await h.open("b-token", path=f"/ws?token={token}")
    g1 = await ws.recv_type("receive_message")
    g2 = await ws.recv_type("receive_message")
    assert [g1["message_id"], g2["message_id"]] == [s1["message_id"], s2["message_id"]]
    await ws.expect_nothing(0.3)
    await ws.close()
    await asyncio.sleep(0.3)
    ws3 = await h.open("b-pw")
    assert (await login(ws3, b.name))["pending_messages"] == []


async def test_group_message_delivery(h):
    a = await h.user()
    a2 = await a.connect("a2")
    b = await h.user()
    c = await h.user()  # not a member
    gid, gname = await create_group(a.ws)
    await join_group(b.ws, gid)
    sent = await a.ws.call({"type": "send_group_message", "groupname": gname, "content": "Hi group"},
                           "group_message_sent")
    assert isinstance(sent["message_id"], str) and TS_RE.match(sent["timestamp"])
    for dev in (b.ws, a2):
        got = await dev.recv_type("receive_group_message", message_id=sent["message_id"])
        assert got["groupname"] == gname and got["sender"] == a.name and got["content"] == "Hi group"
        assert got["timestamp"] == sent["timestamp"]
    await a.ws.expect_nothing(0.4)
    await c.ws.expect_nothing(0.1)


async def test_broadcast(h):
    a = await h.user()
    b = await h.user()
    c = await h.user()
    r = await a.ws.call({"type": "broadcast_message", "recipients": [b.name, c.name], "content": "Meeting at 5"},
                        "broadcast_sent")
    ids = r["message_ids"]
    assert set(ids) == {b.name, c.name}
    assert ids[b.name] != ids[c.name]
    assert TS_RE.match(r["timestamp"])
    for u in (b, c):
        got = await u.ws.recv_type("receive_message", message_id=ids[u.name])
        assert got["sender"] == a.name and got["recipient"] == u.name and got["content"] == "Meeting at 5"


async def test_broadcast_unknown_recipient_stores_nothing(h):
    a = await h.user()
    b = await h.user()
    await a.ws.call_err({"type": "broadcast_message", "recipients": [b.name, "ghost" + uuid.uuid4().hex[:8]],
                         "content": "should not exist"}, "not_found")
    await b.ws.expect_nothing(0.4)
    assert (await fetch_history(b.ws, recipient=a.name))["messages"] == []
    await a.ws.call_err({"type": "broadcast_message", "recipients": [], "content": "x"}, "bad_request")


async def test_edit_message(h):
    a = await h.user()
    b = await h.user()
    sent = await send_dm(a.ws, b.name, "Hi B")
    await b.ws.recv_type("receive_message", message_id=sent["message_id"])
    mid = sent["message_id"]
    await b.ws.call_err({"type": "edit_message", "message_id": mid, "content": "hacked"}, "forbidden")
    e = await a.ws.call({"type": "edit_message", "message_id": mid, "content": "Hi again"}, "message_edited")
    assert e["message_id"] == mid and e["content"] == "Hi again" and TS_RE.match(e["edited_at"])
    got = await b.ws.recv_type("message_edited", message_id=mid)
    assert got["content"] == "Hi again" and TS_RE.match(got["edited_at"])
    for ws, other in ((a.ws, b.name), (b.ws, a.name)):
        msgs = (await fetch_history(ws, recipient=other))["messages"]
        assert [m["content"] for m in msgs] == ["Hi again"]
        assert TS_RE.match(msgs[0].get("edited_at") or ""), msgs
    await a.ws.call_err({"type": "edit_message", "message_id": "m999999999", "content": "x"}, "not_found")


async def test_delete_message(h):
    a = await h.user()
    b = await h.user()
    keep = await send_dm(a.ws, b.name, "keep me")
    gone = await send_dm(a.ws, b.name, "delete me")
    mid = gone["message_id"]
    await b.ws.call_err({"type": "delete_message", "message_id": mid}, "forbidden")
    d = await a.ws.call({"type": "delete_message", "message_id": mid}, "message_deleted")
    assert d["message_id"] == mid
    got = await b.ws.recv_type("message_deleted", message_id=mid)
    assert got["message_id"] == mid
    for ws, other in ((a.ws, b.name), (b.ws, a.name)):
        msgs = (await fetch_history(ws, recipient=other))["messages"]
        assert [m["message_id"] for m in msgs] == [keep["message_id"]]
    await a.ws.call_err({"type": "edit_message", "message_id": mid, "content": "zombie"}, "not_found")
    await a.ws.call_err({"type": "delete_message", "message_id": "m999999999"}, "not_found")


async def test_group_edit_delete_notifies_members(h):
    a = await h.user()
    b = await h.user()
    c = await h.user()
    gid, gname = await create_group(a.ws)
    await join_group(b.ws, gid)
    await join_group(c.ws, gid)
    sent = await a.ws.call({"type": "send_group_message", "groupname": gname, "content": "orig"},
                           "group_message_sent")
    mid = sent["message_id"]
    await b.ws.call_err({"type": "edit_message", "message_id": mid, "content": "b edit"}, "forbidden")
    await c.ws.call_err({"type": "delete_message", "message_id": mid}, "forbidden")
    await a.ws.call({"type": "edit_message", "message_id": mid, "content": "edited"}, "message_edited")
    for u in (b, c):
        got = await u.ws.recv_type("message_edited", message_id=mid)
        assert got["content"] == "edited"
    await a.ws.call({"type": "delete_message", "message_id": mid}, "message_deleted")
    for u in (b, c):
        await u.ws.recv_type("message_deleted", message_id=mid)
    assert (await fetch_history(c.ws, groupname=gname))["messages"] == []


async def test_mark_read_sends_receipt(h):
    a = await h.user()
    b = await h.user()
    c = await h.user()
    sent = await send_dm(a.ws, b.name, "read me")
    mid = sent["message_id"]
    r = await b.ws.call({"type": "mark_read", "message_id": mid}, "marked_read")
    assert r["message_id"] == mid
    rr = await a.ws.recv_type("read_receipt")
    assert rr["message_id"] == mid and rr["reader"] == b.name and TS_RE.match(rr["timestamp"])
    # Marking twice sends the receipt once.
    await b.ws.req({"type": "mark_read", "message_id": mid})
    await a.ws.expect_nothing(0.4)
    # Neither the sender nor a stranger may mark it.
    f = await a.ws.req({"type": "mark_read", "message_id": mid})
    assert f["type"] == "error", f
    f = await c.ws.req({"type": "mark_read", "message_id": mid})
    assert f["type"] == "error", f
    await a.ws.expect_nothing(0.3)
    await b.ws.call_err({"type": "mark_read", "message_id": "m999999999"}, "not_found")


async def test_delete_chat_only_for_requester(h):
    a = await h.user()
    b = await h.user()
    for i in range(3):
        await send_dm(a.ws, b.name, f"old {i}")
    r = await b.ws.call({"type": "delete_chat", "recipient": a.name}, "chat_deleted")
    assert r.get("recipient") == a.name
    assert (await fetch_history(b.ws, recipient=a.name))["messages"] == []
    assert [m["content"] for m in (await fetch_history(a.ws, recipient=b.name))["messages"]] == \
        ["old 0", "old 1", "old 2"]
    new = await send_dm(a.ws, b.name, "new one")
    msgs = (await fetch_history(b.ws, recipient=a.name))["messages"]
    assert [m["message_id"] for m in msgs] == [new["message_id"]]


async def test_delete_group_chat_only_for_requester(h):
    a = await h.user()
    b = await h.user()
    gid, gname = await create_group(a.ws)
    await join_group(b.ws, gid)
    await a.ws.call({"type": "send_group_message", "groupname": gname, "content": "g old"}, "group_message_sent")
    r = await b.ws.call({"type": "delete_chat", "groupname": gname}, "chat_deleted")
    assert r.get("groupname") == gname
    assert (await fetch_history(b.ws, groupname=gname))["messages"] == []
    assert [m["content"] for m in (await fetch_history(a.ws, groupname=gname))["messages"]] == ["g old"]


async def test_typing_forwarded_not_stored(h):
    a = await h.user()
    b = await h.user()
    await a.ws.send({"type": "typing", "recipient": b.name, "state": "started"})
    t = await b.ws.recv_type("typing")
    assert t["sender"] == a.name and t["recipient"] == b.name and t["state"] == "started"
    await a.ws.send({"type": "typing", "recipient": b.name, "state": "stopped"})
    t = await b.ws.recv_type("typing")
    assert t["sender"] == a.name and t["state"] == "stopped"
    await a.ws.expect_nothing(0.3)  # no acknowledgement
    assert (await fetch_history(b.ws, recipient=a.name))["messages"] == []
    assert (await fetch_history(a.ws, recipient=b.name))["messages"] == []
    r = await a.ws.req({"type": "typing", "recipient": b.name, "state": "dancing"})
    assert r["type"] == "error" and r["code"] == "bad_request", r
    await b.ws.expect_nothing(0.3)


async def test_group_typing(h):
    a = await h.user()
    b = await h.user()
    gid, gname = await create_group(a.ws)
    await join_group(b.ws, gid)
    await a.ws.send({"type": "typing", "groupname": gname, "state": "started"})
    t = await b.ws.recv_type("typing")
    assert t["sender"] == a.name and t["groupname"] == gname and t["state"] == "started"
    await a.ws.expect_nothing(0.3)
    assert (await fetch_history(b.ws, groupname=gname))["messages"] == []


async def test_url_entities(h):
    a = await h.user()
    b = await h.user()
    u1, u2 = "https://example.com/a?b=1", "http://x.org/p"
    content = f"😀 see {u1} and {u2}"
    sent = await send_dm(a.ws, b.name, content)
    got = await b.ws.recv_type("receive_message", message_id=sent["message_id"])
    expected = [
        {"type": "url", "url": u, "offset": utf16_len(content[:content.index(u)]), "length": utf16_len(u)}
        for u in (u1, u2)
    ]
    assert expected[0]["offset"] == 7  # the emoji is two UTF-16 code units
    assert got.get("entities") == expected
    plain = await send_dm(a.ws, b.name, "no links here, example dot com")
    got = await b.ws.recv_type("receive_message", message_id=plain["message_id"])
    assert not got.get("entities")
    hist = (await fetch_history(b.ws, recipient=a.name))["messages"]
    assert hist[0].get("entities") == expected


async def test_location(h):
    a = await h.user()
    b = await h.user()
    for loc in ({"lat": 48.137, "lon": 11.575}, {"lat": -90, "lon": 180}, {"lat": 90, "lon": -180}):
        sent = await send_dm(a.ws, b.name, "I am here", location=loc)
        got = await b.ws.recv_type("receive_message", message_id=sent["message_id"])
        assert got["location"]["lat"] == loc["lat"] and got["location"]["lon"] == loc["lon"], got
    for bad in ({"lat": 90.5, "lon": 0}, {"lat": 0, "lon": 180.01}, {"lat": -91, "lon": 0},
                {"lat": "48", "lon": 11}, {"lat": 1}, "48,11", [1, 2]):
        await a.ws.call_err({"type": "send_message", "recipient": b.name, "content": "bad loc", "location": bad},
                            "bad_request")
    await b.ws.expect_nothing(0.3)
    assert len((await fetch_history(b.ws, recipient=a.name))["messages"]) == 3


async def test_content_limits(h):
    a = await h.user()
    b = await h.user()
    await a.ws.call_err({"type": "send_message", "recipient": b.name, "content": ""}, "bad_request")
    await a.ws.call_err({"type": "send_message", "recipient": b.name, "content": "x" * 8001}, "too_large")
    big = "y" * 8000
    sent = await send_dm(a.ws, b.name, big)
    got = await b.ws.recv_type("receive_message", message_id=sent["message_id"])
    assert got["content"] == big
    assert len((await fetch_history(b.ws, recipient=a.name))["messages"]) == 1
