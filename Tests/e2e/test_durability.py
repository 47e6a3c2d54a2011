"""Durability: acknowledged messages survive SIGKILL; everything survives a clean restart."""

import asyncio

from conftest import Harness, PASSWORD, create_group, full_history, join_group, login, login_token, send_dm

N = 300
KILL_AFTER = 100
WINDOW = 24


async def test_sigkill_mid_stream_keeps_every_acknowledged_message(server_factory):
    srv = server_factory().start()
    h = Harness(srv)
    try:
        a = await h.user("da")
        b = await h.user("db", online=False)   # offline throughout: everything must be pending
        acked: dict[str, int] = {}
        rate_limited: list[int] = []

        async def sender():
            for i in range(N):
                while i - len(acked) > WINDOW and not a.ws.is_closed:
                    await asyncio.sleep(0.001)
                if a.ws.is_closed:
                    return
                try:
                    await a.ws.send({"type": "send_message", "recipient": b.name, "content": f"dur {i:04d}",
                                     "client_message_id": f"d{i}", "request_id": f"d{i}"})
                except Exception:
                    return

        async def receiver():
            while True:
                try:
                    f = await a.ws.recv(timeout=15)
                except AssertionError:
                    return  # connection closed (server killed)
                if f.get("type") == "message_sent":
                    key = f.get("client_message_id") or f.get("request_id")
                    acked[f["message_id"]] = int(key[1:])
                elif f.get("type") == "error":
                    assert f.get("code") == "rate_limited", f
                    rate_limited.append(int(f["request_id"][1:]))

        async def killer():
            while len(acked) < KILL_AFTER:
                await asyncio.sleep(0.0005)
            srv.kill9()

        await asyncio.wait_for(asyncio.gather(sender(), receiver(), killer()), 60)
        assert not rate_limited, "test sent too fast; rate limited frames would be unacknowledged anyway"
        assert KILL_AFTER <= len(acked) < N, f"{len(acked)} acknowledged: the kill was not mid-stream"
        assert len(set(acked.values())) == len(acked), "two message_ids for one client_message_id"

        srv.start()  # same data dir
        ws = await h.open("db-after")
        r = await login(ws, b.name)
        assert r["status"] == "login_success", r
        pending = r["pending_messages"]
        pending_ids = [p["message_id"] for p in pending]
        history = await full_history(ws, recipient=a.name)
        hist_ids = [m["message_id"] for m in history]

        assert len(set(pending_ids)) == len(pending_ids), "duplicate pending messages"
        assert len(set(hist_ids)) == len(hist_ids), "duplicate history entries"
        contents = [m["content"] for m in history]
        assert len(set(contents)) == len(contents), "a message was stored twice"
        missing_hist = [mid for mid in acked if mid not in hist_ids]
        missing_pend = [mid for mid in acked if mid not in pending_ids]
        assert not missing_hist, f"{len(missing_hist)} acknowledged messages lost from history: {missing_hist[:5]}"
        assert not missing_pend, f"{len(missing_pend)} acknowledged messages not pending: {missing_pend[:5]}"
        by_id = {m["message_id"]: m for m in history}
        for mid, i in acked.items():
            assert by_id[mid]["content"] == f"dur {i:04d}"
            assert by_id[mid]["sender"] == a.name
        # Pending is oldest first and a subset of the stored conversation.
        idx = [int(p["content"].split()[1]) for p in pending]
        assert idx == sorted(idx)
        assert set(pending_ids) <= set(hist_ids)

        # Delivered once: not pending again.
        await ws.close()
        await asyncio.sleep(0.3)
        ws2 = await h.open("db-again")
        assert (await login(ws2, b.name))["pending_messages"] == []
    finally:
        await h.close_all()
        srv.stop()


async def test_clean_restart_keeps_everything(server_factory):
    srv = server_factory().start()
    h = Harness(srv)
    try:
        a = await h.user("ra")
        b = await h.user("rb")
        c = await h.user("rc", online=False)
        token_a = a.token
        gid, gname = await create_group(a.ws)
        await join_group(b.ws, gid)
        await a.ws.call({"type": "add_contact", "username": b.name}, "contact_added")
        m1 = await send_dm(a.ws, b.name, "before restart", client_message_id="keep-1")
        g1 = await b.ws.call({"type": "send_group_message", "groupname": gname, "content": "group before"},
                             "group_message_sent")
        to_c = await send_dm(a.ws, c.name, "for offline c")
        await h.close_all()

        srv.proc.terminate()
        rc = srv.proc.wait(timeout=10)
        assert rc == 0, f"parley exited with {rc} on SIGTERM (contract: stops cleanly)"
        srv.start()

        wa = await h.open("a")
        r = await login_token(wa, token_a)
        assert r["status"] == "login_success", "token did not survive the restart"
        assert r["user"]["username"] == a.name
        hist = (await wa.call({"type": "fetch_history", "recipient": b.name}, "history"))["messages"]
        assert [m["message_id"] for m in hist] == [m1["message_id"]]
        ghist = (await wa.call({"type": "fetch_history", "groupname": gname}, "history"))["messages"]
        assert [m["message_id"] for m in ghist] == [g1["message_id"]]
        groups = (await wa.call({"type": "list_groups"}, "groups"))["groups"]
        assert [sorted(g["members"]) for g in groups if g["group_id"] == gid] == [sorted([a.name, b.name])]
        contacts = (await wa.call({"type": "get_contacts"}, "contacts"))["contacts"]
        assert [x["username"] for x in contacts] == [b.name]
        # Idempotency survives too.
        again = await send_dm(wa, b.name, "before restart", client_message_id="keep-1")
        assert again["message_id"] == m1["message_id"]
        # New ids do not collide with old ones.
        new = await send_dm(wa, b.name, "after restart")
        assert new["message_id"] not in (m1["message_id"], g1["message_id"], to_c["message_id"])
        # Offline recipient gets the message sent before the restart.
        wc = await h.open("c")
        rc_ = await login(wc, c.name)
        assert [p["message_id"] for p in rc_["pending_messages"]] == [to_c["message_id"]]
        # Passwords still work.
        wb = await h.open("b")
        assert (await login(wb, b.name, PASSWORD))["status"] == "login_success"
    finally:
        await h.close_all()
        srv.stop()


async def test_sigterm_closes_connections_cleanly_and_exits_zero(server_factory):
    """SIGTERM: open WebSocket clients get a close frame, the process exits 0, and
    a line-protocol client sees its connection end."""
    import signal
    import socket

    srv = server_factory().start()
    h = Harness(srv)
    try:
        a = await h.user("st")
        line = socket.create_connection(("127.0.0.1", srv.line_port), timeout=5)
        srv.proc.send_signal(signal.SIGTERM)
        code = await asyncio.get_running_loop().run_in_executor(None, lambda: srv.proc.wait(timeout=15))
        assert code == 0, srv.log_tail()
        for _ in range(50):
            if a.ws.is_closed:
                break
            await asyncio.sleep(0.1)
        assert a.ws.is_closed, "connection still open after shutdown"
        assert a.ws.ws.protocol.close_rcvd is not None, "no close frame from the server"
        assert a.ws.ws.protocol.close_rcvd.code in (1000, 1001), a.ws.ws.protocol.close_rcvd
        assert line.recv(100) == b""          # EOF: the server closed it
        line.close()
        assert "stopped" in srv.log_text()
    finally:
        await h.close_all()
