"""fetch_history ranges and paging; search_messages visibility."""

import asyncio
import uuid

from conftest import TS_RE, create_group, fetch_history, join_group, send_dm


def word() -> str:
    return "zq" + uuid.uuid4().hex[:10]


async def test_history_basic(h):
    a = await h.user()
    b = await h.user()
    sent = [await send_dm(a.ws, b.name, f"msg {i}") for i in range(3)]
    back = await send_dm(b.ws, a.name, "reply")
    r = await fetch_history(b.ws, recipient=a.name)
    assert r["recipient"] == a.name
    assert r["has_more"] is False
    msgs = r["messages"]
    assert [m["message_id"] for m in msgs] == [s["message_id"] for s in sent] + [back["message_id"]]
    assert [m["content"] for m in msgs] == ["msg 0", "msg 1", "msg 2", "reply"]
    assert all(m["type"] == "receive_message" for m in msgs)
    assert [m["sender"] for m in msgs] == [a.name] * 3 + [b.name]
    assert [m["recipient"] for m in msgs] == [b.name] * 3 + [a.name]
    assert all(TS_RE.match(m["timestamp"]) for m in msgs)
    # The same conversation from the other side.
    r2 = await fetch_history(a.ws, recipient=b.name)
    assert [m["message_id"] for m in r2["messages"]] == [m["message_id"] for m in msgs]
    # Another conversation is separate.
    c = await h.user()
    assert (await fetch_history(c.ws, recipient=a.name))["messages"] == []


async def test_history_limit_and_before_id(h):
    a = await h.user()
    b = await h.user()
    ids = [(await send_dm(a.ws, b.name, f"p{i}"))["message_id"] for i in range(7)]
    r = await fetch_history(b.ws, recipient=a.name, limit=3)
    assert [m["message_id"] for m in r["messages"]] == ids[4:7]
    assert r["has_more"] is True
    r = await fetch_history(b.ws, recipient=a.name, limit=3, before_id=ids[4])
    assert [m["message_id"] for m in r["messages"]] == ids[1:4]
    assert r["has_more"] is True
    r = await fetch_history(b.ws, recipient=a.name, limit=3, before_id=ids[1])
    assert [m["message_id"] for m in r["messages"]] == ids[0:1]
    assert r["has_more"] is False
    r = await fetch_history(b.ws, recipient=a.name, limit=7)
    assert [m["message_id"] for m in r["messages"]] == ids and r["has_more"] is False


async def test_history_default_limit_is_50(h):
    a = await h.user()
    b = await h.user()
    ids = []
    for i in range(52):
        ids.append((await send_dm(a.ws, b.name, f"d{i}"))["message_id"])
    r = await fetch_history(b.ws, recipient=a.name)
    assert [m["message_id"] for m in r["messages"]] == ids[2:]
    assert r["has_more"] is True


async def test_history_time_range(h):
    a = await h.user()
    b = await h.user()
    sent = []
    for i in range(4):
        sent.append(await send_dm(a.ws, b.name, f"t{i}"))
        await asyncio.sleep(0.03)
    ts = [s["timestamp"] for s in sent]
    assert len(set(ts)) == 4, ts
    r = await fetch_history(b.ws, recipient=a.name, start_time=ts[1], end_time=ts[2])
    assert [m["message_id"] for m in r["messages"]] == [sent[1]["message_id"], sent[2]["message_id"]]
    assert r["has_more"] is False
    r = await fetch_history(b.ws, recipient=a.name, start_time=ts[2])
    assert [m["content"] for m in r["messages"]] == ["t2", "t3"]
    r = await fetch_history(b.ws, recipient=a.name, end_time=ts[0])
    assert [m["content"] for m in r["messages"]] == ["t0"]
    r = await fetch_history(b.ws, recipient=a.name, start_time="2000-01-01T00:00:00.000Z",
                            end_time="2000-01-02T00:00:00.000Z")
    assert r["messages"] == []
    # Range and limit together: the newest within the range, has_more for the rest.
    r = await fetch_history(b.ws, recipient=a.name, start_time=ts[0], end_time=ts[2], limit=2)
    assert [m["content"] for m in r["messages"]] == ["t1", "t2"] and r["has_more"] is True


async def test_history_bad_time(h):
    a = await h.user()
    b = await h.user()
    await b.ws.call_err({"type": "fetch_history", "recipient": a.name, "start_time": "yesterday"}, "bad_request")


async def test_history_excludes_deleted_shows_edits(h):
    a = await h.user()
    b = await h.user()
    m1 = await send_dm(a.ws, b.name, "one")
    m2 = await send_dm(a.ws, b.name, "two")
    m3 = await send_dm(a.ws, b.name, "three")
    await a.ws.call({"type": "delete_message", "message_id": m2["message_id"]}, "message_deleted")
    await a.ws.call({"type": "edit_message", "message_id": m3["message_id"], "content": "THREE"}, "message_edited")
    msgs = (await fetch_history(b.ws, recipient=a.name))["messages"]
    assert [m["message_id"] for m in msgs] == [m1["message_id"], m3["message_id"]]
    assert [m["content"] for m in msgs] == ["one", "THREE"]
    assert "edited_at" not in msgs[0] or msgs[0]["edited_at"] is None
    assert TS_RE.match(msgs[1]["edited_at"])


async def test_group_history_members_only(h):
    a = await h.user()
    b = await h.user()
    c = await h.user()
    gid, gname = await create_group(a.ws)
    await join_group(b.ws, gid)
    s1 = await a.ws.call({"type": "send_group_message", "groupname": gname, "content": "g1"}, "group_message_sent")
    s2 = await b.ws.call({"type": "send_group_message", "groupname": gname, "content": "g2"}, "group_message_sent")
    r = await fetch_history(b.ws, groupname=gname)
    assert r["groupname"] == gname
    assert [m["message_id"] for m in r["messages"]] == [s1["message_id"], s2["message_id"]]
    assert all(m["type"] == "receive_group_message" and m["groupname"] == gname for m in r["messages"])
    assert [m["sender"] for m in r["messages"]] == [a.name, b.name]
    await c.ws.call_err({"type": "fetch_history", "groupname": gname}, "forbidden")
    await c.ws.call_err({"type": "fetch_history", "groupname": "nogroup" + uuid.uuid4().hex[:8]}, "not_found")
    await c.ws.call_err({"type": "fetch_history", "recipient": "nouser" + uuid.uuid4().hex[:8]}, "not_found")


async def search(ws, query, **kw):
    r = await ws.call({"type": "search_messages", "query": query, **kw}, "search_results")
    assert isinstance(r["messages"], list)
    return r["messages"]


async def test_search_direct_isolation(h):
    a = await h.user()
    b = await h.user()
    c = await h.user()
    w = word()
    sent = await send_dm(a.ws, b.name, f"the secret word is {w} ok")
    await send_dm(c.ws, a.name, "unrelated chatter")
    for u in (a, b):
        res = await search(u.ws, w)
        assert [m["message_id"] for m in res] == [sent["message_id"]], res
        assert res[0]["content"] == f"the secret word is {w} ok"
        assert res[0]["sender"] == a.name
    assert await search(c.ws, w) == []
    assert sent["message_id"] not in {m["message_id"] for m in await search(c.ws, "secret word")}


async def test_search_prefix_and_all_words(h):
    a = await h.user()
    b = await h.user()
    w1, w2 = word(), word()
    both = await send_dm(a.ws, b.name, f"{w1} and {w2}")
    only1 = await send_dm(a.ws, b.name, f"{w1} alone")
    ids = {m["message_id"] for m in await search(b.ws, w1)}
    assert ids == {both["message_id"], only1["message_id"]}
    assert [m["message_id"] for m in await search(b.ws, f"{w1} {w2}")] == [both["message_id"]]
    # Prefix match on the last word.
    assert [m["message_id"] for m in await search(b.ws, f"{w1} {w2[:-4]}")] == [both["message_id"]]
    assert len(await search(b.ws, w1, limit=1)) == 1


async def test_search_group_members_only(h):
    a = await h.user()
    b = await h.user()
    c = await h.user()
    gid, gname = await create_group(a.ws)
    await join_group(b.ws, gid)
    w = word()
    sent = await a.ws.call({"type": "send_group_message", "groupname": gname, "content": f"group {w}"},
                           "group_message_sent")
    res = await search(b.ws, w)
    assert [m["message_id"] for m in res] == [sent["message_id"]]
    assert res[0].get("groupname") == gname
    assert await search(c.ws, w) == []


async def test_search_excludes_deleted(h):
    a = await h.user()
    b = await h.user()
    w = word()
    gone = await send_dm(a.ws, b.name, f"{w} deleted")
    await send_dm(a.ws, b.name, f"{w} hello")
    assert len(await search(b.ws, w)) == 2
    await a.ws.call({"type": "delete_message", "message_id": gone["message_id"]}, "message_deleted")
    for u in (a, b):
        assert [m["content"] for m in await search(u.ws, w)] == [f"{w} hello"]
    assert len(await search(b.ws, w)) == 1
    # B clears the chat: B's search no longer sees it, A's still does.
    await b.ws.call({"type": "delete_chat", "recipient": a.name}, "chat_deleted")
    assert await search(b.ws, w) == []
    assert len(await search(a.ws, w)) == 1
