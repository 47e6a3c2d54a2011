"""The plain-text line protocol on the TCP line port, and its interplay with WebSocket users."""

import re
import uuid
from datetime import datetime

from conftest import PASSWORD, create_group, fetch_history, join_group, new_username, send_dm

WIDE = "2000-01-01T00:00:00Z 2100-01-01T00:00:00Z"


def line_user(line_client, name=None):
    name = name or new_username("l")
    lc = line_client()
    assert lc.cmd(f"register {name} {PASSWORD}") == "register_success"
    assert lc.cmd(f"login {name} {PASSWORD}") == "login_success"
    return lc, name


def is_error(line: str, code: str) -> bool:
    """`error <code>`, optionally followed by a human-readable reason."""
    return line.split(" ")[:2] == ["error", code]


def parse_receive(line: str):
    parts = line.split(" ", 4)
    assert len(parts) == 5 and parts[0] == "receive", line
    _, where, sender, ts, content = parts
    assert RFC3339.match(ts), line
    return where, sender, ts, content


RFC3339 = re.compile(r"^\d{4}-\d{2}-\d{2}T\d{2}:\d{2}:\d{2}(\.\d+)?Z$")


def same_instant(a: str, b: str) -> bool:
    """Equal to within the coarser of the two precisions (the line protocol may drop milliseconds)."""
    da = datetime.fromisoformat(a.replace("Z", "+00:00"))
    db = datetime.fromisoformat(b.replace("Z", "+00:00"))
    return abs((da - db).total_seconds()) < 1.0


def test_register_and_login(line_client):
    lc = line_client()
    name = new_username("l")
    assert lc.cmd(f"register {name} short") == "register_fail password too short"
    assert lc.cmd(f"register {name} {PASSWORD}") == "register_success"
    assert lc.cmd(f"register {name} {PASSWORD}") == "register_fail username taken"
    assert lc.cmd(f"register bad!name {PASSWORD}") == "register_fail invalid username"
    assert lc.cmd(f"login {name} wrong-password") == "login_fail invalid credentials"
    assert lc.cmd(f"login {name.upper()} {PASSWORD}") == "login_success"
    assert lc.cmd("logout") == "logout_success"
    assert is_error(lc.cmd(f"send {name} hi"), "not_authenticated")


def test_not_authenticated(line_client):
    lc = line_client()
    for cmd in ("send someone hello", "fetch_history someone " + WIDE, "create_group abc",
                "join_group g1", "leave_group g1"):
        assert is_error(lc.cmd(cmd), "not_authenticated"), cmd
    # Still usable afterwards.
    name = new_username("l")
    assert lc.cmd(f"register {name} {PASSWORD}") == "register_success"


def test_unknown_command(line_client):
    lc, _ = line_user(line_client)
    assert is_error(lc.cmd("frobnicate now"), "unknown_command")
    assert is_error(lc.cmd("SENDX a b"), "unknown_command")
    # The connection still works.
    assert lc.cmd("create_group " + new_username("lg")).startswith("create_group_success ")


async def test_line_to_websocket(h, line_client):
    lc, lname = line_user(line_client)
    w = await h.user()
    resp = lc.cmd(f"send {w.name} hello from the line")
    assert resp.startswith("send_success "), resp
    mid = resp.split(" ", 1)[1]
    got = await w.ws.recv_type("receive_message")
    assert got["message_id"] == mid
    assert got["sender"] == lname and got["recipient"] == w.name
    assert got["content"] == "hello from the line"
    hist = (await fetch_history(w.ws, recipient=lname))["messages"]
    assert [m["message_id"] for m in hist] == [mid]


async def test_websocket_to_line(h, line_client):
    lc, lname = line_user(line_client)
    w = await h.user()
    sent = await send_dm(w.ws, lname, "hi line user, how are you?")
    where, sender, ts, content = parse_receive(lc.readline())
    assert (where, sender, content) == (w.name, w.name, "hi line user, how are you?")
    assert same_instant(ts, sent["timestamp"]), (ts, sent["timestamp"])
    lc.expect_nothing(0.3)


def test_line_to_line(line_client):
    l1, n1 = line_user(line_client)
    l2, n2 = line_user(line_client)
    assert l1.cmd(f"send {n2} ping pong").startswith("send_success ")
    where, sender, _, content = parse_receive(l2.readline())
    assert (where, sender, content) == (n1, n1, "ping pong")
    l1.expect_nothing(0.3)


async def test_escaping(h, line_client):
    lc, lname = line_user(line_client)
    w = await h.user()
    await send_dm(w.ws, lname, "two\nlines and a back\\slash")
    _, _, _, content = parse_receive(lc.readline())
    assert content == "two\\nlines and a back\\\\slash"
    resp = lc.cmd(f"send {w.name} a\\nb c\\\\d")
    assert resp.startswith("send_success "), resp
    got = await w.ws.recv_type("receive_message")
    assert got["content"] == "a\nb c\\d"


def test_send_failures(line_client):
    lc, _ = line_user(line_client)
    assert lc.cmd("send nobody" + uuid.uuid4().hex[:8] + " hello").startswith("send_fail ")
    assert lc.cmd("send #nogroup" + uuid.uuid4().hex[:8] + " hello").startswith("send_fail ")
    # Still works.
    l2, n2 = line_user(line_client)
    assert lc.cmd(f"send {n2} still fine").startswith("send_success ")


async def test_non_member_group_send_fails(h, line_client):
    lc, _ = line_user(line_client)
    w = await h.user()
    _, gname = await create_group(w.ws)
    resp = lc.cmd(f"send #{gname} let me in")
    assert resp.startswith("send_fail ") and "forbidden" in resp, resp
    assert (await fetch_history(w.ws, groupname=gname))["messages"] == []


async def test_group_commands_and_messages(h, line_client):
    lc, lname = line_user(line_client)
    w = await h.user()
    gid, gname = await create_group(w.ws)
    assert lc.cmd(f"join_group {gid}") == "join_group_success"
    assert lc.cmd(f"join_group {gid}") == "join_group_fail already a member"
    assert lc.cmd("join_group g999999999") == "join_group_fail group not found"
    # Line -> group (WebSocket member receives).
    resp = lc.cmd(f"send #{gname} hello group")
    assert resp.startswith("send_success "), resp
    mid = resp.split(" ", 1)[1]
    got = await w.ws.recv_type("receive_group_message")
    assert got["message_id"] == mid and got["groupname"] == gname
    assert got["sender"] == lname and got["content"] == "hello group"
    lc.expect_nothing(0.3)  # the sending connection gets no copy
    # WebSocket -> group (line member receives).
    await w.ws.call({"type": "send_group_message", "groupname": gname, "content": "hi from ws"},
                    "group_message_sent")
    where, sender, _, content = parse_receive(lc.readline())
    assert (where, sender, content) == (f"#{gname}", w.name, "hi from ws")
    # History over the line for the group.
    assert lc.cmd(f"fetch_history #{gname} {WIDE}") == "history 2"
    rows = [lc.readline() for _ in range(2)]
    assert rows[0].split(" ", 3)[0] == mid and rows[0].split(" ", 3)[1] == lname
    assert rows[0].split(" ", 3)[3] == "hello group"
    assert rows[1].split(" ", 3)[1] == w.name and rows[1].split(" ", 3)[3] == "hi from ws"
    # Leave.
    assert lc.cmd(f"leave_group {gid}") == "leave_group_success"
    assert lc.cmd(f"leave_group {gid}") == "leave_group_fail not a member"
    assert lc.cmd(f"send #{gname} gone").startswith("send_fail ")
    groups = (await w.ws.call({"type": "list_groups"}, "groups"))["groups"]
    assert [g["members"] for g in groups if g["group_id"] == gid] == [[w.name]]


async def test_line_create_group_visible_to_websocket(h, line_client):
    lc, lname = line_user(line_client)
    w = await h.user()
    gname = new_username("lg")
    resp = lc.cmd(f"create_group {gname}")
    assert resp.startswith("create_group_success "), resp
    gid = resp.split(" ", 1)[1]
    assert lc.cmd(f"create_group {gname}") == "create_group_fail group name taken"
    await join_group(w.ws, gid)
    groups = (await w.ws.call({"type": "list_groups"}, "groups"))["groups"]
    g = [g for g in groups if g["group_id"] == gid]
    assert g and g[0]["group_name"] == gname and sorted(g[0]["members"]) == sorted([lname, w.name])


async def test_fetch_history(h, line_client):
    lc, lname = line_user(line_client)
    w = await h.user()
    s1 = await send_dm(w.ws, lname, "first")
    parse_receive(lc.readline())
    r = lc.cmd(f"send {w.name} second")
    assert r.startswith("send_success ")
    s2_id = r.split(" ", 1)[1]
    s3 = await send_dm(w.ws, lname, "third one")
    parse_receive(lc.readline())
    assert lc.cmd(f"fetch_history {w.name} {WIDE}") == "history 3"
    rows = [lc.readline().split(" ", 3) for _ in range(3)]
    assert [r[0] for r in rows] == [s1["message_id"], s2_id, s3["message_id"]]
    assert [r[1] for r in rows] == [w.name, lname, w.name]
    assert [r[3] for r in rows] == ["first", "second", "third one"]
    assert RFC3339.match(rows[0][2]) and same_instant(rows[0][2], s1["timestamp"]), rows[0]
    # An empty range.
    assert lc.cmd(f"fetch_history {w.name} 2000-01-01T00:00:00Z 2000-01-02T00:00:00Z") == "history 0"
    # Bad times are refused without a history line.
    resp = lc.cmd(f"fetch_history {w.name} yesterday today")
    assert not resp.startswith("history"), resp
    lc.expect_nothing(0.2)
