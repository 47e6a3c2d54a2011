"""End-to-end test harness for the Parley server.

The server binary is taken from ``$PARLEY_BIN`` (default: ``../../.build/debug/parley``
relative to this file).  Each test module gets its own server process on free
ports and a fresh data directory; durability tests start their own servers with
``ParleyServer`` directly so they can SIGKILL and restart them.

Contract: /work/shared/PROTOCOL.md; server choices: docs/PROTOCOL.md.
"""

from __future__ import annotations

import asyncio
import json
import os
import re
import shutil
import signal
import socket
import subprocess
import time
import urllib.error
import urllib.request
import uuid
from pathlib import Path
from typing import Any, Iterable

import pytest
from websockets.asyncio.client import connect as ws_connect
from websockets.exceptions import ConnectionClosed

HERE = Path(__file__).resolve().parent
DEFAULT_BIN = (HERE / ".." / ".." / ".build" / "debug" / "parley").resolve()
PARLEY_BIN = Path(os.environ.get("PARLEY_BIN", str(DEFAULT_BIN)))

PASSWORD = "s3cret-pass"
DEFAULT_TIMEOUT = 5.0
TS_RE = re.compile(r"^\d{4}-\d{2}-\d{2}T\d{2}:\d{2}:\d{2}\.\d{3}Z$")


def require_tools(*tools: str) -> None:
    """Fail (never skip) when a peer or tool `make deps` installs is missing:
    a test that quietly skips would pass on a machine that cannot run it."""
    missing = [t for t in tools if shutil.which(t) is None]
    if missing:
        pytest.fail(f"missing {', '.join(missing)}: `make deps` installs them", pytrace=False)


# --------------------------------------------------------------------------
# Server process
# --------------------------------------------------------------------------

def _free_ports() -> tuple[int, int, int]:
    """Two free TCP ports and one free UDP port (held open together so they differ)."""
    socks = []
    try:
        for kind in (socket.SOCK_STREAM, socket.SOCK_STREAM, socket.SOCK_DGRAM):
            s = socket.socket(socket.AF_INET, kind)
            s.bind(("127.0.0.1", 0))
            socks.append(s)
        return tuple(s.getsockname()[1] for s in socks)  # type: ignore[return-value]
    finally:
        for s in socks:
            s.close()


def _free_udp_tcp_port() -> int:
    """A port free for both UDP and TCP (TURN, RFC 8656 §4, and the SFU with ICE-TCP listen on both)."""
    for _ in range(50):
        u = socket.socket(socket.AF_INET, socket.SOCK_DGRAM)
        t = socket.socket(socket.AF_INET, socket.SOCK_STREAM)
        try:
            u.bind(("127.0.0.1", 0))
            port = u.getsockname()[1]
            try:
                t.bind(("127.0.0.1", port))
            except OSError:
                continue
            return port
        finally:
            u.close()
            t.close()
    raise RuntimeError("no port free for both UDP and TCP")


class ParleyServer:
    """One `parley serve` process on a data directory that survives restarts.

    TURN runs on a free port (``turn_port``) with loopback peers allowed
    (``--allow-loopback-peers``, tests only) unless ``turn=False`` or
    ``allow_loopback_peers=False``; ``extra_args`` are appended to the command.
    """

    def __init__(self, data_dir: Path, log_path: Path, *, turn: bool = True, allow_loopback_peers: bool = True,
                 extra_args: Iterable[str] = ()):
        self.data_dir = Path(data_dir)
        self.log_path = Path(log_path)
        self.proc: subprocess.Popen | None = None
        self.http_port = self.line_port = self.media_port = self.turn_port = 0
        self.turn = turn
        self.allow_loopback_peers = allow_loopback_peers
        self.extra_args = list(extra_args)
        self._log_offset = 0
        self._log_file = None

    # -- lifecycle ---------------------------------------------------------

    def start(self, timeout: float = 30.0) -> "ParleyServer":
        if not PARLEY_BIN.exists():
            pytest.fail(f"server binary not found at {PARLEY_BIN} (set PARLEY_BIN)", pytrace=False)
        self.data_dir.mkdir(parents=True, exist_ok=True)
        self.http_port, self.line_port, _ = _free_ports()
        # The SFU takes the media port for UDP and for ICE-TCP (RFC 6544).
        self.media_port = _free_udp_tcp_port()
        self.turn_port = _free_udp_tcp_port() if self.turn else 0
        # Test-only work factor: production uses the server's default PBKDF2
        # iteration count (210,000, docs/PROTOCOL.md); the server honours
        # PARLEY_PASSWORD_ITERATIONS so registrations in tests are fast.
        env = dict(os.environ, PARLEY_PASSWORD_ITERATIONS="1000")
        self._log_offset = self.log_path.stat().st_size if self.log_path.exists() else 0
        self._log_file = open(self.log_path, "ab")
        cmd = [
            str(PARLEY_BIN), "serve",
            "--host", "127.0.0.1",
            "--http-port", str(self.http_port),
            "--line-port", str(self.line_port),
            "--media-port", str(self.media_port),
            "--turn-port", str(self.turn_port),
            "--data-dir", str(self.data_dir),
            "--log-level", "info",
        ]
        if self.turn and self.allow_loopback_peers:
            cmd.append("--allow-loopback-peers")
        cmd += self.extra_args
        self.proc = subprocess.Popen(cmd, stdout=self._log_file, stderr=subprocess.STDOUT,
                                     stdin=subprocess.DEVNULL, env=env, cwd=str(self.data_dir))
        deadline = time.monotonic() + timeout
        saw_listening = healthy = line_ok = False
        saw_turn = not self.turn
        while time.monotonic() < deadline:
            if self.proc.poll() is not None:
                pytest.fail(f"parley exited with {self.proc.returncode} during start-up:\n{self.log_tail()}",
                            pytrace=False)
            if not saw_listening or not saw_turn:
                for line in self.log_text().splitlines():
                    low = line.lower()
                    if "listening" in low and "turn" not in low and (str(self.http_port) in low or "http" in low):
                        saw_listening = True
                    if "turn listening" in low:
                        saw_turn = True
            if not saw_turn:
                time.sleep(0.05)
                continue
            if saw_listening and not healthy:
                healthy = self.health_status() == 200
            if healthy and not line_ok:
                try:
                    socket.create_connection(("127.0.0.1", self.line_port), timeout=0.5).close()
                    line_ok = True
                except OSError:
                    pass
            if saw_listening and healthy and line_ok:
                return self
            time.sleep(0.05)
        state = f"listening-line={saw_listening} turn={saw_turn} health-200={healthy} line-port-open={line_ok}"
        self.stop()
        pytest.fail(f"parley did not become ready within {timeout}s ({state}):\n{self.log_tail()}", pytrace=False)

    def stop(self) -> None:
        """SIGTERM, then SIGKILL if it does not exit within 5 s."""
        if self.proc is not None and self.proc.poll() is None:
            self.proc.terminate()
            try:
                self.proc.wait(timeout=5)
            except subprocess.TimeoutExpired:
                self.proc.kill()
                self.proc.wait(timeout=5)
        self._close_log()

    def kill9(self) -> None:
        if self.proc is not None and self.proc.poll() is None:
            os.kill(self.proc.pid, signal.SIGKILL)
            self.proc.wait(timeout=5)
        self._close_log()

    def restart(self) -> "ParleyServer":
        self.stop()
        return self.start()

    def _close_log(self) -> None:
        if self._log_file is not None:
            self._log_file.close()
            self._log_file = None

    def alive(self) -> bool:
        return self.proc is not None and self.proc.poll() is None

    # -- inspection --------------------------------------------------------

    def log_text(self) -> str:
        try:
            with open(self.log_path, "rb") as f:
                f.seek(self._log_offset)
                return f.read().decode("utf-8", "replace")
        except FileNotFoundError:
            return ""

    def log_tail(self, n: int = 60) -> str:
        return "\n".join(self.log_text().splitlines()[-n:])

    @property
    def base_url(self) -> str:
        return f"http://127.0.0.1:{self.http_port}"

    @property
    def ws_url(self) -> str:
        return f"ws://127.0.0.1:{self.http_port}/ws"

    def http_get(self, path: str, timeout: float = 3.0) -> tuple[int, str]:
        try:
            with urllib.request.urlopen(self.base_url + path, timeout=timeout) as r:
                return r.status, r.read().decode("utf-8", "replace")
        except urllib.error.HTTPError as e:
            return e.code, e.read().decode("utf-8", "replace")

    def health_status(self) -> int | None:
        try:
            return self.http_get("/health", timeout=1.0)[0]
        except OSError:
            return None


def _server_for(tmp: Path, **kw) -> ParleyServer:
    return ParleyServer(tmp / "data", tmp / "server.log", **kw)


@pytest.fixture(scope="module")
def server(tmp_path_factory):
    """One server per test module; fails the module's teardown if it crashed meanwhile."""
    tmp = tmp_path_factory.mktemp("parley")
    srv = _server_for(tmp).start()
    yield srv
    crashed = not srv.alive()
    code = srv.proc.returncode if srv.proc else None
    tail = srv.log_tail()
    srv.stop()
    if crashed:
        pytest.fail(f"parley died during the module (exit {code}):\n{tail}", pytrace=False)


@pytest.fixture
def server_factory(tmp_path):
    """Function-scoped servers on their own data dir, for restart/durability tests."""
    made: list[ParleyServer] = []

    def make(**kw) -> ParleyServer:
        srv = _server_for(tmp_path / f"s{len(made)}", **kw)
        made.append(srv)
        return srv

    yield make
    for srv in made:
        srv.stop()


# --------------------------------------------------------------------------
# WebSocket client
# --------------------------------------------------------------------------

_CLOSED = object()


class WSClient:
    """A JSON-frame client. Frames not consumed by recv_type/req wait in a backlog."""

    def __init__(self, ws, label: str = "ws"):
        self.ws = ws
        self.label = label
        self.queue: asyncio.Queue = asyncio.Queue()
        self.backlog: list[dict] = []
        self.close_reason: Any = None
        self._rid = 0
        self._task = asyncio.get_running_loop().create_task(self._reader())

    async def _reader(self):
        try:
            async for msg in self.ws:
                self.queue.put_nowait(msg)
        except ConnectionClosed as e:
            self.close_reason = e
        except Exception as e:  # pragma: no cover - diagnostics only
            self.close_reason = e
        finally:
            self.queue.put_nowait(_CLOSED)

    # -- sending -------------------------------------------------------------

    async def send(self, obj: Any) -> None:
        await self.ws.send(obj if isinstance(obj, (str, bytes)) else json.dumps(obj))

    async def send_raw(self, data: str | bytes) -> None:
        await self.ws.send(data)

    def next_request_id(self) -> str:
        self._rid += 1
        return f"{self.label}-r{self._rid}"

    # -- receiving -----------------------------------------------------------

    async def _get(self, timeout: float) -> dict:
        try:
            item = await asyncio.wait_for(self.queue.get(), timeout)
        except asyncio.TimeoutError:
            raise AssertionError(
                f"{self.label}: no frame within {timeout:.1f}s (unconsumed: {self.backlog[-8:]})") from None
        if item is _CLOSED:
            self.queue.put_nowait(_CLOSED)
            raise AssertionError(f"{self.label}: connection closed by server ({self.close_reason!r})")
        if isinstance(item, bytes):
            raise AssertionError(f"{self.label}: server sent a binary frame: {item[:80]!r}")
        try:
            frame = json.loads(item)
        except ValueError:
            raise AssertionError(f"{self.label}: server sent non-JSON text: {item[:200]!r}") from None
        assert isinstance(frame, dict), f"{self.label}: server sent non-object JSON: {item[:200]!r}"
        return frame

    async def recv(self, timeout: float = DEFAULT_TIMEOUT) -> dict:
        if self.backlog:
            return self.backlog.pop(0)
        return await self._get(timeout)

    async def recv_match(self, pred, timeout: float = DEFAULT_TIMEOUT, what: str = "frame") -> dict:
        for i, f in enumerate(self.backlog):
            if pred(f):
                return self.backlog.pop(i)
        loop = asyncio.get_running_loop()
        deadline = loop.time() + timeout
        while True:
            remaining = deadline - loop.time()
            if remaining <= 0:
                raise AssertionError(
                    f"{self.label}: no {what} within {timeout:.1f}s; other frames: {self.backlog[-8:]}")
            try:
                f = await self._get(remaining)
            except AssertionError as e:
                if "no frame within" in str(e):
                    continue  # loop re-checks the deadline and reports `what`
                raise
            if pred(f):
                return f
            self.backlog.append(f)

    async def recv_type(self, types: str | Iterable[str], timeout: float = DEFAULT_TIMEOUT, **fields) -> dict:
        """First frame whose type is in `types` (and whose given fields match); others are kept."""
        ts = {types} if isinstance(types, str) else set(types)

        def pred(f):
            return f.get("type") in ts and all(f.get(k) == v for k, v in fields.items())

        return await self.recv_match(pred, timeout, what=f"{sorted(ts)} {fields or ''}")

    async def expect_nothing(self, timeout: float = 0.5, ignore: Iterable[str] = ("presence",)) -> None:
        ign = set(ignore)
        bad = [f for f in self.backlog if f.get("type") not in ign]
        assert not bad, f"{self.label}: unexpected frames {bad}"
        loop = asyncio.get_running_loop()
        deadline = loop.time() + timeout
        while (remaining := deadline - loop.time()) > 0:
            try:
                item = await asyncio.wait_for(self.queue.get(), remaining)
            except asyncio.TimeoutError:
                return
            if item is _CLOSED:
                self.queue.put_nowait(_CLOSED)
                raise AssertionError(f"{self.label}: connection closed by server ({self.close_reason!r})")
            frame = json.loads(item) if isinstance(item, str) else {"binary": item[:80]}
            assert isinstance(frame, dict) and frame.get("type") in ign, f"{self.label}: unexpected frame {frame}"

    def clear(self) -> None:
        self.backlog.clear()

    # -- request/response ------------------------------------------------------

    async def req(self, obj: dict, timeout: float = DEFAULT_TIMEOUT) -> dict:
        """Send with a fresh request_id; return the first frame echoing it."""
        obj = dict(obj)
        rid = obj.setdefault("request_id", self.next_request_id())
        await self.send(obj)
        return await self.recv_match(lambda f: f.get("request_id") == rid, timeout,
                                     what=f"response to {obj.get('type')} (request_id {rid})")

    async def call(self, obj: dict, expect: str, timeout: float = DEFAULT_TIMEOUT) -> dict:
        f = await self.req(obj, timeout)
        assert f.get("type") == expect, f"{obj.get('type')}: expected {expect}, got {f}"
        return f

    async def call_err(self, obj: dict, code: str, timeout: float = DEFAULT_TIMEOUT) -> dict:
        f = await self.req(obj, timeout)
        assert f.get("type") == "error" and f.get("code") == code, f"{obj.get('type')}: expected error {code}, got {f}"
        assert isinstance(f.get("reason"), str), f
        return f

    @property
    def is_closed(self) -> bool:
        return self._task.done()

    async def close(self) -> None:
        try:
            await asyncio.wait_for(self.ws.close(), 2)
        except Exception:
            pass
        try:
            await asyncio.wait_for(self._task, 2)
        except Exception:
            pass


async def open_ws(srv: ParleyServer, label: str = "ws", *, path: str = "/ws", headers: dict | None = None) -> WSClient:
    ws = await ws_connect(f"ws://127.0.0.1:{srv.http_port}{path}", additional_headers=headers,
                          max_size=None, ping_interval=None, compression=None,
                          open_timeout=5, close_timeout=2)
    return WSClient(ws, label)


async def register(ws: WSClient, user: str, pw: str = PASSWORD, display_name: str | None = None) -> dict:
    msg = {"type": "register", "username": user, "password": pw}
    if display_name is not None:
        msg["display_name"] = display_name
    return await ws.call(msg, "registration_response")


async def login(ws: WSClient, user: str, pw: str = PASSWORD) -> dict:
    return await ws.call({"type": "login", "username": user, "password": pw}, "login_response")


async def login_token(ws: WSClient, token: str) -> dict:
    return await ws.call({"type": "login", "token": token}, "login_response")


def new_username(prefix: str = "u") -> str:
    name = f"{prefix}{uuid.uuid4().hex[:14]}".lower()
    assert len(name) <= 32
    return name


@pytest.fixture
def uname():
    """Factory of unique, valid, lower-case usernames (also fine as group names)."""
    return new_username


class User:
    def __init__(self, h: "Harness", name: str, pw: str, display_name: str):
        self.h = h
        self.name = name
        self.pw = pw
        self.display_name = display_name
        self.token: str | None = None
        self.ws: WSClient | None = None  # first logged-in connection
        self.last_login: dict | None = None

    async def connect(self, label: str | None = None) -> WSClient:
        """A new connection logged in with the password (asserts success)."""
        ws = await self.h.open(label or self.name)
        resp = await login(ws, self.name, self.pw)
        assert resp.get("status") == "login_success", resp
        self.token = resp["token"]
        self.last_login = resp
        if self.ws is None or self.ws.is_closed:
            self.ws = ws
        return ws


class Harness:
    """Tracks connections of one test and closes them at the end."""

    def __init__(self, srv: ParleyServer):
        self.srv = srv
        self.clients: list[WSClient] = []

    async def open(self, label: str = "ws", **kw) -> WSClient:
        c = await open_ws(self.srv, label, **kw)
        self.clients.append(c)
        return c

    async def user(self, prefix: str = "u", *, online: bool = True, display_name: str | None = None) -> User:
        """Register a fresh user (on a throwaway connection); log in once if `online`."""
        name = new_username(prefix)
        dn = display_name or f"User {name}"
        reg = await self.open(f"reg-{name}")
        r = await register(reg, name, PASSWORD, dn)
        assert r.get("status") == "register_success", r
        await reg.close()
        u = User(self, name, PASSWORD, dn)
        if online:
            await u.connect()
        return u

    async def close_all(self) -> None:
        await asyncio.gather(*(c.close() for c in self.clients), return_exceptions=True)
        self.clients.clear()


@pytest.fixture
async def h(server):
    harness = Harness(server)
    yield harness
    await harness.close_all()


# --------------------------------------------------------------------------
# Common flows
# --------------------------------------------------------------------------

async def send_dm(ws: WSClient, to: str, content: str, **extra) -> dict:
    return await ws.call({"type": "send_message", "recipient": to, "content": content, **extra}, "message_sent")


async def create_group(ws: WSClient, name: str | None = None) -> tuple[str, str]:
    name = name or new_username("g")
    r = await ws.call({"type": "create_group", "group_name": name}, "create_group_response")
    assert r.get("status") == "create_group_success", r
    assert isinstance(r.get("group_id"), str) and r["group_id"], r
    return r["group_id"], name


async def join_group(ws: WSClient, gid: str) -> None:
    r = await ws.call({"type": "join_group", "group_id": gid}, "join_group_response")
    assert r.get("status") == "join_group_success", r


async def fetch_history(ws: WSClient, **sel) -> dict:
    return await ws.call({"type": "fetch_history", **sel}, "history")


async def full_history(ws: WSClient, **sel) -> list[dict]:
    """Every message of a conversation, oldest first, paging with before_id."""
    out: list[dict] = []
    before = None
    for _ in range(100):
        q = dict(sel, limit=500)
        if before:
            q["before_id"] = before
        r = await fetch_history(ws, **q)
        msgs = r["messages"]
        out = msgs + out
        if not r.get("has_more") or not msgs:
            return out
        before = msgs[0]["message_id"]
    raise AssertionError("history paging did not terminate")


# --------------------------------------------------------------------------
# Line protocol
# --------------------------------------------------------------------------

class LineClient:
    def __init__(self, srv: ParleyServer, timeout: float = DEFAULT_TIMEOUT):
        self.sock = socket.create_connection(("127.0.0.1", srv.line_port), timeout=timeout)
        self.timeout = timeout
        self.buf = b""

    def send(self, line: str | bytes) -> None:
        data = line if isinstance(line, bytes) else line.encode("utf-8")
        if not data.endswith(b"\n"):
            data += b"\n"
        self.sock.sendall(data)

    def readline(self, timeout: float | None = None) -> str:
        deadline = time.monotonic() + (timeout if timeout is not None else self.timeout)
        while b"\n" not in self.buf:
            remaining = deadline - time.monotonic()
            if remaining <= 0:
                raise AssertionError(f"line: no line within timeout (partial: {self.buf[:200]!r})")
            self.sock.settimeout(remaining)
            try:
                chunk = self.sock.recv(65536)
            except socket.timeout:
                continue
            if not chunk:
                raise AssertionError(f"line: connection closed by server (partial: {self.buf[:200]!r})")
            self.buf += chunk
        line, self.buf = self.buf.split(b"\n", 1)
        return line.rstrip(b"\r").decode("utf-8")

    def cmd(self, line: str, timeout: float | None = None) -> str:
        self.send(line)
        return self.readline(timeout)

    def expect_nothing(self, timeout: float = 0.4) -> None:
        try:
            line = self.readline(timeout)
        except AssertionError as e:
            if "no line within" in str(e):
                return
            raise
        raise AssertionError(f"line: unexpected line {line!r}")

    def close(self) -> None:
        try:
            self.sock.close()
        except OSError:
            pass


@pytest.fixture
def line_client(server):
    made: list[LineClient] = []

    def make() -> LineClient:
        c = LineClient(server)
        made.append(c)
        return c

    yield make
    for c in made:
        c.close()


def raw_http(srv: ParleyServer, request: bytes, timeout: float = 3.0) -> bytes:
    """Send raw bytes to the HTTP port; return whatever comes back before close/timeout."""
    s = socket.create_connection(("127.0.0.1", srv.http_port), timeout=timeout)
    try:
        s.sendall(request)
        data = b""
        deadline = time.monotonic() + timeout
        while time.monotonic() < deadline:
            try:
                chunk = s.recv(65536)
            except socket.timeout:
                break
            except OSError:
                break
            if not chunk:
                break
            data += chunk
            if b"\r\n\r\n" in data and request.startswith(b"GET /ws"):
                break
        return data
    finally:
        s.close()


def upgrade_status(srv: ParleyServer, path: str = "/ws", headers: dict | None = None) -> int:
    """Status code of a raw WebSocket upgrade request."""
    lines = [f"GET {path} HTTP/1.1", f"Host: 127.0.0.1:{srv.http_port}", "Upgrade: websocket",
             "Connection: Upgrade", "Sec-WebSocket-Key: dGhlIHNhbXBsZSBub25jZQ==", "Sec-WebSocket-Version: 13"]
    for k, v in (headers or {}).items():
        lines.append(f"{k}: {v}")
    data = raw_http(srv, ("\r\n".join(lines) + "\r\n\r\n").encode())
    first = data.split(b"\r\n", 1)[0].decode("latin-1")
    m = re.match(r"HTTP/1\.[01] (\d{3})", first)
    assert m, f"no HTTP status line in upgrade response: {data[:200]!r}"
    return int(m.group(1))


def metric_value(text: str, name: str, labels: str | None = None) -> float | None:
    """Value of a Prometheus sample `name{labels}` (labels given as e.g. 'code="bad_json"')."""
    for line in text.splitlines():
        if line.startswith("#") or not line.startswith(name):
            continue
        m = re.match(r'^([a-zA-Z_:][a-zA-Z0-9_:]*)(\{[^}]*\})?\s+(\S+)', line)
        if not m or m.group(1) != name:
            continue
        if labels is not None and (m.group(2) is None or labels not in m.group(2)):
            continue
        return float(m.group(3))
    return None
