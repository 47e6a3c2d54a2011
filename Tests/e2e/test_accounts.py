"""Accounts and sessions: register, login (password and token), token on upgrade, logout, devices."""
import asyncio
import json


import pytest
from websockets.asyncio.client import connect as ws_connect
from websockets.exceptions import ConnectionClosed, InvalidStatus

from conftest import PASSWORD, TS_RE, login, login_token, new_username, register, send_dm, upgrade_status, open_ws


async def test_register_and_login(h):
    ws = await h.open()
    name = new_username()
    r = await register(ws, name, PASSWORD, "Display Name")
    assert r["status"] == "register_success"
    r = await login(ws, name)
    assert r["status"] == "login_success", r
    assert isinstance(r["token"], str) and len(r["token"]) >= 16
    assert r["user"]["username"] == name
    assert r["user"]["display_name"] == "Display Name"
    assert r["pending_messages"] == []
    assert isinstance(r["ice_servers"], list)
    # The connection is now authenticated.
    c = await ws.call({"type": "get_contacts"}, "contacts")
    assert c["contacts"] == []


async def test_display_name_defaults_to_username(h):
    ws = await h.open()
    name = new_username()
    assert (await register(ws, name))["status"] == "register_success"
    r = await login(ws, name)
    assert r["user"]["display_name"] == name


async def test_username_case_insensitive(h):
    ws = await h.open()
    base = new_username("mixed")
    mixed = base[:5].upper() + base[5:]
    r = await register(ws, mixed)
    assert r["status"] == "register_success", r
    # Stored lower-case: the lower-case spelling is taken ...
    r = await register(ws, base)
    assert r["status"] == "register_fail" and r["reason"] == "username taken", r
    # ... and any spelling logs in as the lower-case user.
    for spelling in (base, mixed, base.upper()):
        c = await h.open()
        r = await login(c, spelling)
        assert r["status"] == "login_success", (spelling, r)
        assert r["user"]["username"] == base


@pytest.mark.parametrize("bad", ["", "a" * 33, "has space", "bang!", "slash/x", "ümlaut", "a|b", "x@y"])
async def test_register_invalid_username(h, bad):
    ws = await h.open()
    r = await register(ws, bad)
    assert r["status"] == "register_fail", r
    assert r["reason"] == "invalid username"


async def test_register_allowed_username_characters(h):
    ws = await h.open()
    name = ("a_b.c-9" + new_username() + "0123456789")[:32]
    assert len(name) == 32
    assert (await register(ws, name))["status"] == "register_success"
    r = await login(ws, name)
    assert r["status"] == "login_success", r


async def test_password_length(h):
    ws = await h.open()
    name = new_username()
    r = await register(ws, name, "1234567")
    assert r["status"] == "register_fail" and r["reason"] == "password too short", r
    r = await register(ws, name, "12345678")
    assert r["status"] == "register_success", r
    assert (await login(ws, name, "12345678"))["status"] == "login_success"


async def test_username_taken(h):
    ws = await h.open()
    name = new_username()
    assert (await register(ws, name))["status"] == "register_success"
    r = await register(ws, name, "another-password")
    assert r["status"] == "register_fail" and r["reason"] == "username taken", r
    # The first password is still the valid one.
    assert (await login(ws, name, "another-password"))["status"] == "login_fail"
    assert (await login(ws, name, PASSWORD))["status"] == "login_success"


async def test_login_failures(h):
    u = await h.user(online=False)
    ws = await h.open()
    r = await login(ws, u.name, "wrong-password")
    assert r["status"] == "login_fail" and r["reason"] == "invalid credentials", r
    assert "token" not in r or not r["token"]
    r = await login(ws, new_username("nobody"), PASSWORD)
    assert r["status"] == "login_fail" and r["reason"] == "invalid credentials", r
    r = await login_token(ws, "not-a-real-token")
    assert r["status"] == "login_fail" and r["reason"] == "invalid credentials", r
    # Still not authenticated.
    await ws.call_err({"type": "get_contacts"}, "not_authenticated")


async def test_requests_need_login(h):
    ws = await h.open()
    for req in ({"type": "send_message", "recipient": "someone", "content": "hi"},
                {"type": "get_contacts"}, {"type": "list_groups"},
                {"type": "fetch_history", "recipient": "someone"},
                {"type": "search_messages", "query": "x"}):
        await ws.call_err(req, "not_authenticated")


async def test_token_login(h):
    u = await h.user()
    token = u.token
    ws = await h.open()
    r = await login_token(ws, token)
    assert r["status"] == "login_success", r
    assert r["user"]["username"] == u.name
    assert r["token"] == token  # docs/PROTOCOL.md: resuming answers the same token
    await ws.call({"type": "list_groups"}, "groups")


async def _token_connection_works(h, sender, recipient_name, ws):
    await ws.call({"type": "get_contacts"}, "contacts")
    sent = await send_dm(sender.ws, recipient_name, "via token connection")
    got = await ws.recv_type("receive_message", message_id=sent["message_id"])
    assert got["content"] == "via token connection"


async def test_token_in_authorization_header(h):
    a = await h.user()
    b = await h.user()
    ws = await h.open(headers={"Authorization": f"Bearer {b.token}"})
    await _token_connection_works(h, a, b.name, ws)


async def test_token_in_query(h):
    a = await h.user()
    b = await h.user()
    ws = await h.open(path=f"/ws?token={b.token}")
    await _token_connection_works(h, a, b.name, ws)


async def assert_token_refused(srv, **kw):
    """docs/PROTOCOL.md: an invalid token on the upgrade gets an `error` frame with
    `not_authenticated`, then a close with code 1008, and the connection is never
    authenticated."""
    raw = await ws_connect(f"ws://127.0.0.1:{srv.http_port}{kw.get('path', '/ws')}",
                           additional_headers=kw.get("headers"), open_timeout=5, close_timeout=2)
    try:
        first = json.loads(await asyncio.wait_for(raw.recv(), 5))
        assert first["type"] == "error" and first["code"] == "not_authenticated", first
        with pytest.raises(ConnectionClosed) as ei:
            await asyncio.wait_for(raw.recv(), 5)
        assert ei.value.rcvd is not None and ei.value.rcvd.code == 1008, ei.value
    finally:
        await raw.close()


@pytest.mark.parametrize("how", ["header", "query"])
async def test_bad_token_on_upgrade_refused(h, how):
    if how == "header":
        await assert_token_refused(h.srv, headers={"Authorization": "Bearer bogus-token-123"})
    else:
        await assert_token_refused(h.srv, path="/ws?token=bogus-token-123")
    # A plain upgrade still works.
    assert upgrade_status(h.srv) == 101


async def test_logout_revokes_token(h):
    u = await h.user()
    other_device = await u.connect("other")   # a second token
    other_token = u.token
    ws = await h.open()
    r = await login(ws, u.name)
    token = r["token"]
    assert token != other_token
    r = await ws.call({"type": "logout"}, "logout_response")
    assert r["status"] == "logout_success"
    # The connection is no longer authenticated.
    await ws.call_err({"type": "get_contacts"}, "not_authenticated")
    # The token is dead for frame login and for the upgrade.
    c = await h.open()
    r = await login_token(c, token)
    assert r["status"] == "login_fail", r
    await assert_token_refused(h.srv, headers={"Authorization": f"Bearer {token}"})
    await assert_token_refused(h.srv, path=f"/ws?token={token}")
    # Other devices (other tokens) stay logged in.
    await other_device.call({"type": "get_contacts"}, "contacts")
    c2 = await h.open()
    assert (await login_token(c2, other_token))["status"] == "login_success"
    # The password still works.
    assert (await login(c, u.name))["status"] == "login_success"


async def test_multi_device_both_receive(h):
    a = await h.user()
    b = await h.user()
    b2 = await b.connect("b2")
    b3 = await h.open(path=f"/ws?token={b.token}")
    sent = await send_dm(a.ws, b.name, "to every device")
    for dev in (b.ws, b2, b3):
        got = await dev.recv_type("receive_message", message_id=sent["message_id"])
        assert got["content"] == "to every device"
        assert got["sender"] == a.name and got["recipient"] == b.name
        assert TS_RE.match(got["timestamp"]), got
    # Each device got it exactly once.
    for dev in (b.ws, b2, b3):
        await dev.expect_nothing(0.3)


async def test_relogin_switches_user(h):
    a = await h.user()
    b = await h.user(online=False)
    c = await h.user()
    ws = a.ws
    r = await login(ws, b.name)
    assert r["status"] == "login_success" and r["user"]["username"] == b.name
    sent = await send_dm(c.ws, b.name, "for b")
    got = await ws.recv_type("receive_message", message_id=sent["message_id"])
    assert got["recipient"] == b.name
