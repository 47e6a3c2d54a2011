"""Backup and migration over the HTTP API: GET /api/export and POST /api/import."""

import json
import urllib.error
import urllib.request

from conftest import PASSWORD, Harness, create_group, full_history, register, send_dm


def http(srv, method: str, path: str, token: str | None = None, body: bytes | None = None) -> tuple[int, dict]:
    req = urllib.request.Request(f"http://127.0.0.1:{srv.http_port}{path}", data=body, method=method)
    if token:
        req.add_header("Authorization", f"Bearer {token}")
    if body is not None:
        req.add_header("Content-Type", "application/json")
    try:
        with urllib.request.urlopen(req, timeout=10) as r:
            return r.status, json.loads(r.read())
    except urllib.error.HTTPError as e:
        return e.code, json.loads(e.read() or b"{}")


async def test_export_requires_a_valid_token(h):
    assert http(h.srv, "GET", "/api/export")[0] == 401
    assert http(h.srv, "GET", "/api/export", token="not-a-token")[0] == 401
    assert http(h.srv, "POST", "/api/import", token="not-a-token", body=b"{}")[0] == 401


async def test_export_holds_everything_the_user_can_read(h):
    a = await h.user("xa")
    b = await h.user("xb")
    c = await h.user("xc")
    await a.ws.call({"type": "update_profile", "display_name": "Ann Export", "settings": {"theme": "dark"}},
                    "profile_updated")
    await a.ws.call({"type": "add_contact", "username": b.name}, "contact_added")
    await send_dm(a.ws, b.name, "from a to b")
    await send_dm(b.ws, a.name, "from b to a")
    await send_dm(b.ws, c.name, "b to c, not for a")
    gid, gname = await create_group(a.ws)
    await a.ws.call({"type": "send_group_message", "groupname": gname, "content": "to the group"}, "group_message_sent")

    status, doc = http(h.srv, "GET", "/api/export", token=a.token)
    assert status == 200
    assert doc["format"] == "parley-backup" and doc["version"] == 1
    assert doc["user"]["username"] == a.name and doc["user"]["display_name"] == "Ann Export"
    assert doc["user"]["settings"] == {"theme": "dark"}
    assert doc["contacts"] == [b.name]
    assert [g["group_name"] for g in doc["groups"]] == [gname]
    contents = [m["content"] for m in doc["messages"]]
    assert contents == ["from a to b", "from b to a", "to the group"]
    assert doc["call_history"] == []


async def test_import_into_another_server_restores_sent_messages_once(h, server_factory):
    a = await h.user("ma")
    b = await h.user("mb")
    first = await send_dm(a.ws, b.name, "sent before migration")
    await send_dm(b.ws, a.name, "received before migration")
    gid, gname = await create_group(a.ws)
    await a.ws.call({"type": "send_group_message", "groupname": gname, "content": "group history"}, "group_message_sent")
    await a.ws.call({"type": "add_contact", "username": b.name}, "contact_added")
    _, doc = http(h.srv, "GET", "/api/export", token=a.token)

    # A second, empty server: both users exist there (they registered again).
    srv2 = server_factory().start()
    h2 = Harness(srv2)
    try:
        ws = await h2.open()
        for name in (a.name, b.name):
            assert (await register(ws, name, PASSWORD))["status"] == "register_success"
        a2 = await _login(h2, a.name)
        status, result = http(srv2, "POST", "/api/import", token=a2.token, body=json.dumps(doc).encode())
        assert status == 200, result
        assert result["imported"]["messages"] == 2      # only what a sent
        assert result["imported"]["contacts"] == 1
        assert result["imported"]["groups"] == 1
        hist = await full_history(a2.ws, recipient=b.name)
        assert [m["content"] for m in hist] == ["sent before migration"]
        assert hist[0]["timestamp"] == first["timestamp"]   # original time kept
        group_hist = await full_history(a2.ws, groupname=gname)
        assert [m["content"] for m in group_hist] == ["group history"]
        # Importing again adds nothing.
        status, again = http(srv2, "POST", "/api/import", token=a2.token, body=json.dumps(doc).encode())
        assert status == 200 and again["imported"]["messages"] == 0
        # Garbage is refused without touching anything.
        assert http(srv2, "POST", "/api/import", token=a2.token, body=b"{not json")[0] == 400
        assert http(srv2, "POST", "/api/import", token=a2.token, body=b'{"format":"other"}')[0] == 400
        assert len(await full_history(a2.ws, recipient=b.name)) == 1
    finally:
        await h2.close_all()


async def _login(h2: Harness, name: str):
    from conftest import User
    u = User(h2, name, PASSWORD, name)
    await u.connect()
    return u
