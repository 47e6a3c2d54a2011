"""Groups (create/join/leave/invite/list), contacts, presence and profile."""

import uuid

from conftest import TS_RE, create_group, join_group, login, new_username


async def groups_of(ws) -> dict:
    r = await ws.call({"type": "list_groups"}, "groups")
    return {g["group_id"]: g for g in r["groups"]}


async def test_create_and_list_group(h):
    a = await h.user()
    name = new_username("grp")
    gid, _ = await create_group(a.ws, name)
    gs = await groups_of(a.ws)
    assert gs[gid]["group_name"] == name
    assert gs[gid]["members"] == [a.name]
    b = await h.user()
    assert gid not in await groups_of(b.ws)


async def test_create_group_failures(h):
    a = await h.user()
    name = new_username("grp")
    await create_group(a.ws, name)
    for taken in (name, name.upper()):
        r = await a.ws.call({"type": "create_group", "group_name": taken}, "create_group_response")
        assert r["status"] == "create_group_fail" and r["reason"] == "group name taken", r
    for bad in ("", "has space", "bad!", "x" * 65):
        r = await a.ws.call({"type": "create_group", "group_name": bad}, "create_group_response")
        assert r["status"] == "create_group_fail" and r["reason"] == "invalid group name", (bad, r)


async def test_join_and_leave(h):
    a = await h.user()
    b = await h.user()
    gid, gname = await create_group(a.ws)
    await join_group(b.ws, gid)
    assert sorted((await groups_of(b.ws))[gid]["members"]) == sorted([a.name, b.name])
    r = await b.ws.call({"type": "join_group", "group_id": gid}, "join_group_response")
    assert r["status"] == "join_group_fail" and r["reason"] == "already a member", r
    r = await b.ws.call({"type": "join_group", "group_id": "g999999999"}, "join_group_response")
    assert r["status"] == "join_group_fail" and r["reason"] == "group not found", r
    # Member can send.
    await b.ws.call({"type": "send_group_message", "groupname": gname, "content": "hi"}, "group_message_sent")
    r = await b.ws.call({"type": "leave_group", "group_id": gid}, "leave_group_response")
    assert r["status"] == "leave_group_success"
    assert gid not in await groups_of(b.ws)
    assert (await groups_of(a.ws))[gid]["members"] == [a.name]
    r = await b.ws.call({"type": "leave_group", "group_id": gid}, "leave_group_response")
    assert r["status"] == "leave_group_fail" and r["reason"] == "not a member", r
    r = await b.ws.call({"type": "leave_group", "group_id": "g999999999"}, "leave_group_response")
    assert r["status"] == "leave_group_fail" and r["reason"] == "group not found", r
    # After leaving: no sending, no history, no delivery.
    await b.ws.call_err({"type": "send_group_message", "groupname": gname, "content": "x"}, "forbidden")
    await b.ws.call_err({"type": "fetch_history", "groupname": gname}, "forbidden")
    await a.ws.call({"type": "send_group_message", "groupname": gname, "content": "after"}, "group_message_sent")
    await b.ws.expect_nothing(0.4)


async def test_non_member_send_forbidden_unknown_group_not_found(h):
    a = await h.user()
    c = await h.user()
    gid, gname = await create_group(a.ws)
    await c.ws.call_err({"type": "send_group_message", "groupname": gname, "content": "let me in"}, "forbidden")
    await c.ws.call_err({"type": "send_group_message", "groupname": "nogroup" + uuid.uuid4().hex[:8],
                         "content": "x"}, "not_found")
    # Nothing was stored.
    r = await a.ws.call({"type": "fetch_history", "groupname": gname}, "history")
    assert r["messages"] == []


async def test_group_name_case_insensitive_in_messages(h):
    a = await h.user()
    gid, gname = await create_group(a.ws)
    r = await a.ws.call({"type": "send_group_message", "groupname": gname.upper(), "content": "caps"},
                        "group_message_sent")
    assert r["message_id"]
    hist = await a.ws.call({"type": "fetch_history", "groupname": gname}, "history")
    assert [m["content"] for m in hist["messages"]] == ["caps"]


async def test_invite(h):
    a = await h.user()
    b = await h.user()
    d = await h.user()
    gid, gname = await create_group(a.ws)
    r = await a.ws.call({"type": "invite", "group_id": gid, "username": b.name}, "invite_response")
    assert r["status"] == "invite_success" and r["group_id"] == gid and r["username"] == b.name
    inv = await b.ws.recv_type("group_invite")
    assert inv["group_id"] == gid and inv["group_name"] == gname and inv["inviter"] == a.name
    assert gid in await groups_of(b.ws)
    await b.ws.call({"type": "send_group_message", "groupname": gname, "content": "thanks"}, "group_message_sent")
    # Inviting a member again is a conflict; unknown users are not_found; non-members may not invite.
    await a.ws.call_err({"type": "invite", "group_id": gid, "username": b.name}, "conflict")
    await a.ws.call_err({"type": "invite", "group_id": gid, "username": "ghost" + uuid.uuid4().hex[:8]}, "not_found")
    await d.ws.call_err({"type": "invite", "group_id": gid, "username": d.name}, "forbidden")
    assert gid not in await groups_of(d.ws)
    await a.ws.call_err({"type": "invite", "group_id": "g999999999", "username": d.name}, "not_found")


async def test_contacts(h):
    a = await h.user()
    b = await h.user(display_name="Bee Display")
    r = await a.ws.call({"type": "get_contacts"}, "contacts")
    assert r["contacts"] == []
    added = await a.ws.call({"type": "add_contact", "username": b.name}, "contact_added")
    assert added["contact"]["username"] == b.name
    assert added["contact"]["display_name"] == "Bee Display"
    contacts = (await a.ws.call({"type": "get_contacts"}, "contacts"))["contacts"]
    assert [c["username"] for c in contacts] == [b.name]
    entry = contacts[0]
    for key in ("username", "display_name", "avatar_link", "online", "last_seen"):
        assert key in entry, entry
    assert entry["online"] is True
    # Contacts are per user: B's list is unchanged.
    assert (await b.ws.call({"type": "get_contacts"}, "contacts"))["contacts"] == []
    await a.ws.call_err({"type": "add_contact", "username": "ghost" + uuid.uuid4().hex[:8]}, "not_found")
    await a.ws.call_err({"type": "add_contact", "username": a.name}, "bad_request")
    removed = await a.ws.call({"type": "remove_contact", "username": b.name}, "contact_removed")
    assert removed["username"] == b.name
    assert (await a.ws.call({"type": "get_contacts"}, "contacts"))["contacts"] == []


async def test_contact_never_seen(h):
    a = await h.user()
    b = await h.user(online=False)
    added = await a.ws.call({"type": "add_contact", "username": b.name}, "contact_added")
    assert added["contact"]["online"] is False
    assert added["contact"]["last_seen"] is None


async def test_presence_first_and_last_connection(h):
    a = await h.user()
    b = await h.user(online=False)
    await a.ws.call({"type": "add_contact", "username": b.name}, "contact_added")
    b1 = await h.open("b1")
    assert (await login(b1, b.name))["status"] == "login_success"
    p = await a.ws.recv_type("presence")
    assert p["username"] == b.name and p["status"] == "online"
    entry = (await a.ws.call({"type": "get_contacts"}, "contacts"))["contacts"][0]
    assert entry["online"] is True
    # A second connection is not a new "first" connection.
    b2 = await h.open("b2")
    assert (await login(b2, b.name))["status"] == "login_success"
    await a.ws.expect_nothing(0.4, ignore=())
    await b1.close()
    await a.ws.expect_nothing(0.4, ignore=())
    await b2.close()
    p = await a.ws.recv_type("presence")
    assert p["username"] == b.name and p["status"] == "offline"
    assert TS_RE.match(p["last_seen"] or ""), p
    entry = (await a.ws.call({"type": "get_contacts"}, "contacts"))["contacts"][0]
    assert entry["online"] is False and TS_RE.match(entry["last_seen"] or ""), entry


async def test_presence_only_to_watchers(h):
    a = await h.user()
    watcher = await h.user()
    stranger = await h.user()
    await watcher.ws.call({"type": "add_contact", "username": a.name}, "contact_added")
    ws = await a.connect("a-second")
    await ws.close()
    # A still has its first connection, so no presence change at all.
    await watcher.ws.expect_nothing(0.4, ignore=())
    await a.ws.close()
    p = await watcher.ws.recv_type("presence")
    assert p["username"] == a.name and p["status"] == "offline"
    await stranger.ws.expect_nothing(0.2, ignore=())


async def test_update_profile(h):
    a = await h.user()
    watcher = await h.user()
    await watcher.ws.call({"type": "add_contact", "username": a.name}, "contact_added")
    r = await a.ws.call({"type": "update_profile", "display_name": "New Name", "settings": {"theme": "dark", "n": 3}},
                        "profile_updated")
    assert r["user"]["username"] == a.name and r["user"]["display_name"] == "New Name"
    contacts = (await watcher.ws.call({"type": "get_contacts"}, "contacts"))["contacts"]
    assert contacts[0]["display_name"] == "New Name"
    ws = await h.open()
    lr = await login(ws, a.name)
    assert lr["user"]["display_name"] == "New Name"
    assert lr["user"]["settings"] == {"theme": "dark", "n": 3}
    await a.ws.call_err({"type": "update_profile", "settings": "dark"}, "bad_request")
    await a.ws.call_err({"type": "update_profile", "display_name": 42}, "bad_request")
    r = await a.ws.req({"type": "update_profile", "display_name": "x" * 65})
    assert r["type"] == "error" and r["code"] in ("bad_request", "too_large"), r
    lr = await login(ws, a.name)
    assert lr["user"]["display_name"] == "New Name"
