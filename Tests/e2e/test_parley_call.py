"""`parley-call` (the headless Swift call client) and an aiortc peer in one
call through Parley's SFU.

Both directions: parley-call calls the aiortc user (and shares its screen),
then the aiortc user calls parley-call, which answers. Each side decodes the
other's media: frame counts come from parley-call's `--json` report and from
aiortc's decoders. The call ends cleanly: by parley-call's `--duration`
(`call_end`, the aiortc side gets `call_ended {reason:"hangup"}`) or by the
aiortc side hanging up (parley-call reports `end_reason: "hangup"`), and
parley-call exits 0 because it received media.
"""

from __future__ import annotations

import asyncio
import json
import os
import time
from pathlib import Path

import pytest

from call_peers import CallPeer, loopback_only
from conftest import PARLEY_BIN, PASSWORD, new_username

PARLEY_CALL = Path(os.environ.get("PARLEY_BIN", str(PARLEY_BIN))).parent / "parley-call"


@pytest.fixture(autouse=True)
def _loopback():
    loopback_only()


@pytest.fixture
def parley_call_bin() -> Path:
    if not PARLEY_CALL.exists():
        pytest.fail(f"parley-call not found at {PARLEY_CALL}: `swift build --product parley-call`", pytrace=False)
    return PARLEY_CALL


class ParleyCallProcess:
    """parley-call as a subprocess: stdout is its JSON report, stderr (logs
    and the progress line) goes to a file for failure messages."""

    def __init__(self, proc: asyncio.subprocess.Process, log: Path):
        self.proc = proc
        self.log = log

    @classmethod
    async def start(cls, binary: Path, server, log: Path, *args: str) -> "ParleyCallProcess":
        err = open(log, "wb")
        proc = await asyncio.create_subprocess_exec(
            str(binary), "--url", server.ws_url, *args, "--json",
            stdin=asyncio.subprocess.DEVNULL, stdout=asyncio.subprocess.PIPE, stderr=err)
        err.close()
        return cls(proc, log)

    def log_text(self) -> str:
        """The end of its stderr, progress updates as separate lines."""
        text = self.log.read_text(errors="replace").replace("\r", "\n")
        return "\n".join(l for l in text.splitlines() if l.strip())[-8000:]

    async def report(self, timeout: float) -> tuple[int, dict]:
        """Waits for the exit; returns the exit status and the JSON report."""
        try:
            out, _ = await asyncio.wait_for(self.proc.communicate(), timeout)
        except asyncio.TimeoutError:
            self.proc.kill()
            await self.proc.wait()
            raise AssertionError(f"parley-call did not exit within {timeout}s\n{self.log_text()}") from None
        text = out.decode(errors="replace").strip()
        try:
            return self.proc.returncode, json.loads(text.splitlines()[-1])
        except (ValueError, IndexError):
            raise AssertionError(f"parley-call printed no JSON report (exit {self.proc.returncode}): "
                                 f"{text[:500]!r}\n{self.log_text()}") from None

    async def kill(self) -> None:
        if self.proc.returncode is None:
            self.proc.kill()
            await self.proc.wait()


def received(report: dict, user: str, source: str) -> dict:
    t = next((t for t in report["received"] if t.get("user") == user and t.get("source") == source), None)
    assert t, f"no received {user}/{source} track in {[(x.get('user'), x.get('source')) for x in report['received']]}"
    return t


def sent(report: dict, source: str) -> dict:
    return next(s for s in report["sent"] if s["source"] == source)


async def answer_until(peer: CallPeer, user: str, sources: list[str], timeout: float = 15.0) -> None:
    """Answers subscribe offers until every (user, source) track is listed."""
    deadline = time.monotonic() + timeout
    while not all(peer.track(user, s) for s in sources):
        assert time.monotonic() < deadline, f"{peer.name}: tracks {peer.tracks}, wanted {user} {sources}"
        await peer.answer_subscribe_offer(timeout=max(0.5, deadline - time.monotonic()))


async def test_parley_call_calls_aiortc_with_screen_share(h, server, parley_call_bin, tmp_path):
    callee = await h.user("ac")
    caller = new_username("pc")
    peer = CallPeer(callee.ws, "aiortc")
    t0 = time.monotonic()
    pc = await ParleyCallProcess.start(
        parley_call_bin, server, tmp_path / "parley-call.log",
        "--user", caller, "--password", PASSWORD, "--register", "--call", callee.name, "--duration", "7", "--screen")
    try:
        incoming = await callee.ws.recv_type("call_incoming", timeout=15)
        assert incoming["caller"] == caller and incoming["media"] == ["audio", "video"], incoming
        call_id = incoming["call_id"]
        await callee.ws.call({"type": "call_accept", "call_id": call_id}, "call_accepted")
        await peer.publish(call_id)
        await answer_until(peer, caller, ["camera", "microphone", "screen"])
        assert peer.track(caller, "screen")["kind"] == "video"
        try:
            await peer.wait_frames({(caller, "camera"): 30, (caller, "screen"): 8, (caller, "microphone"): 50},
                                   timeout=15)
        except AssertionError as e:
            raise AssertionError(f"{e}\n--- parley-call ---\n{pc.log_text()}\n--- server ---\n{server.log_tail()}") from None
        first = min(s.first_at for s in peer.stats.values() if s.kind == "video" and s.first_at)
        print(f"\naiortc: first parley-call video frame {(first - t0) * 1000:.0f} ms after parley-call started")

        # parley-call hangs up when its duration is over.
        ended = await callee.ws.recv_type("call_ended", call_id=call_id, timeout=20)
        assert ended["reason"] == "hangup", ended
        status, report = await pc.report(timeout=15)
        print(f"parley-call report: {json.dumps(report, sort_keys=True)}")
        assert status == 0, f"exit {status}\n{pc.log_text()}"
        assert report["call_id"] == call_id and report["end_reason"] == "duration", report

        cam = received(report, callee.name, "camera")
        mic = received(report, callee.name, "microphone")
        assert cam["kind"] == "video" and (cam["width"], cam["height"]) == (320, 240), cam
        assert cam["frames_decoded"] >= 30 and cam["nonblank_frames"] > 0, cam
        assert mic["frames_decoded"] >= 50, mic
        assert cam["decode_errors"] <= 2, cam
        assert report["time_to_first_video_frame_ms"] is not None
        assert report["rtt_ms"] is not None and report["rtt_ms"] < 500
        for source in ("microphone", "camera", "screen"):
            assert sent(report, source)["packets_sent"] > 0, report["sent"]
        assert sent(report, "camera")["keyframes_encoded"] >= 1
        # aiortc saw what parley-call says it sent: the screen at its size.
        assert (960, 540) in peer.stats[peer.track(caller, "screen")["mid"]].sizes
        assert peer.nonblank(caller, "camera") > 0 and peer.nonblank(caller, "microphone") > 0
        print(f"parley-call: first frame {report['time_to_first_frame_ms']:.0f} ms, camera {cam['fps']:.1f} fps "
              f"{cam['bitrate_kbps']:.0f} kbit/s, rtt {report['rtt_ms']:.2f} ms")

        hist = await callee.ws.call({"type": "call_history", "limit": 5}, "call_history")
        entry = next(c for c in hist["calls"] if c["call_id"] == call_id)
        assert entry["status"] == "completed" and set(entry["participants"]) == {caller, callee.name}, entry
    finally:
        await pc.kill()
        await peer.close()


async def test_aiortc_calls_parley_call_and_hangs_up(h, server, parley_call_bin, tmp_path):
    caller = await h.user("ar")
    callee = new_username("pa")
    # The callee must exist before the call: register it through parley-call.
    pc = await ParleyCallProcess.start(
        parley_call_bin, server, tmp_path / "parley-call.log",
        "--user", callee, "--password", PASSWORD, "--register", "--answer", "--duration", "0", "--ring-timeout", "20")
    peer = CallPeer(caller.ws, "aiortc")
    try:
        deadline = time.monotonic() + 10
        while True:
            r = await caller.ws.req({"type": "call_start", "callee": callee, "media": ["audio", "video"]})
            if r.get("type") == "call_started":
                break
            # not_found until parley-call has registered.
            assert r.get("code") == "not_found" and time.monotonic() < deadline, r
            await asyncio.sleep(0.2)
        call_id = r["call_id"]
        joined = await caller.ws.recv_type("call_joined", call_id=call_id, timeout=15)
        assert joined["user"] == callee
        await peer.publish(call_id)
        await answer_until(peer, callee, ["camera", "microphone"])
        try:
            await peer.wait_frames({(callee, "camera"): 30, (callee, "microphone"): 50}, timeout=15)
        except AssertionError as e:
            raise AssertionError(f"{e}\n--- parley-call ---\n{pc.log_text()}\n--- server ---\n{server.log_tail()}") from None
        # Long enough for parley-call to have decoded a good part of ours too.
        await asyncio.sleep(1.0)
        ended = await caller.ws.call({"type": "call_end", "call_id": call_id}, "call_ended")
        assert ended["reason"] == "hangup"

        status, report = await pc.report(timeout=15)
        print(f"\nparley-call report: {json.dumps(report, sort_keys=True)}")
        assert status == 0, f"exit {status}\n{pc.log_text()}"
        assert report["call_id"] == call_id and report["end_reason"] == "hangup", report
        cam = received(report, caller.name, "camera")
        mic = received(report, caller.name, "microphone")
        assert cam["frames_decoded"] >= 20 and (cam["width"], cam["height"]) == (320, 240), cam
        assert mic["frames_decoded"] >= 30, mic
        assert cam["packets_lost"] <= 5, cam
        assert sent(report, "camera")["frames_encoded"] >= 30
        assert peer.nonblank(callee, "camera") > 0
        print(f"parley-call: first frame {report['time_to_first_frame_ms']:.0f} ms after call_accept, "
              f"camera {cam['fps']:.1f} fps {cam['bitrate_kbps']:.0f} kbit/s; "
              f"aiortc decoded {peer.frames(callee, 'camera')} camera frames")
    finally:
        await pc.kill()
        await peer.close()
