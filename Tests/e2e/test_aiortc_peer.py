"""Real-peer check: aiortc against ``parley-echo-peer`` over loopback.

aiortc offers VP8 video and Opus audio (sendrecv, one BUNDLE transport), the
sample answers as an ICE-lite DTLS-SRTP endpoint and echoes every RTP packet
it decrypts. The test checks both halves: the sample decrypted aiortc's media
(its stats lines), and aiortc decoded the echoed frames.

Loopback only: aioice skips 127.0.0.1 when it gathers host addresses, so the
test patches that enumeration to return just 127.0.0.1, and gives aiortc no
STUN/TURN servers; every candidate on both sides is asserted to be loopback.
"""

from __future__ import annotations

import asyncio
import json
import os
import signal
import time
from pathlib import Path

import pytest

import aioice.ice  # noqa: E402
from aiortc import (  # noqa: E402
    RTCConfiguration,
    RTCPeerConnection,
    RTCRtpSender,
    RTCSessionDescription,
)
from media_tracks import FrameCounter, Pattern, Tone  # noqa: E402

HERE = Path(__file__).resolve().parent
DEFAULT_BIN = (HERE / ".." / ".." / ".build" / "debug" / "parley").resolve()
PARLEY_BIN = Path(os.environ.get("PARLEY_BIN", str(DEFAULT_BIN)))
ECHO_PEER = PARLEY_BIN.parent / "parley-echo-peer"

DEADLINE = 15.0
# Keep media flowing past aioice's first consent check (every 5 s, RFC 7675)
# so the sample's ICE-lite consent tracking sees real refreshes.
MIN_DURATION = 6.0
MIN_RTP_PER_KIND = 30
MIN_VIDEO_FRAMES = 10
MIN_AUDIO_FRAMES = 20


class EchoPeerProcess:
    """The sample as a subprocess speaking JSON lines; always cleaned up."""

    def __init__(self, proc: asyncio.subprocess.Process):
        self.proc = proc
        self.lines: asyncio.Queue[dict] = asyncio.Queue()
        self.stats: list[dict] = []
        self.reader = asyncio.ensure_future(self._read())

    async def _read(self):
        assert self.proc.stdout is not None
        while True:
            raw = await self.proc.stdout.readline()
            if not raw:
                return
            message = json.loads(raw)
            if message.get("type") == "stats":
                self.stats.append(message)
            else:
                await self.lines.put(message)

    async def expect(self, kind: str, timeout: float = 10.0) -> dict:
        message = await asyncio.wait_for(self.lines.get(), timeout)
        assert message.get("type") == kind, message
        return message

    async def send(self, message: dict):
        assert self.proc.stdin is not None
        self.proc.stdin.write((json.dumps(message) + "\n").encode())
        await self.proc.stdin.drain()

    async def close_stdin_and_wait(self, timeout: float = 10.0) -> int:
        assert self.proc.stdin is not None
        self.proc.stdin.close()
        code = await asyncio.wait_for(self.proc.wait(), timeout)
        await asyncio.wait_for(self.reader, timeout)
        return code

    async def kill(self):
        if self.proc.returncode is None:
            try:
                self.proc.send_signal(signal.SIGTERM)
                await asyncio.wait_for(self.proc.wait(), 5)
            except (ProcessLookupError, asyncio.TimeoutError):
                self.proc.kill()
                await self.proc.wait()
        self.reader.cancel()


@pytest.fixture
async def echo_peer():
    if not ECHO_PEER.exists():
        pytest.fail(f"sample binary not found at {ECHO_PEER} (build parley-echo-peer; set PARLEY_BIN)", pytrace=False)
    proc = await asyncio.create_subprocess_exec(
        str(ECHO_PEER), "--host", "127.0.0.1", "--port", "0",
        stdin=asyncio.subprocess.PIPE, stdout=asyncio.subprocess.PIPE, stderr=None,
    )
    peer = EchoPeerProcess(proc)
    try:
        yield peer
    finally:
        await peer.kill()


@pytest.fixture
def loopback_only(monkeypatch):
    """aioice gathers from get_host_addresses, which leaves out 127.0.0.1."""
    monkeypatch.setattr(aioice.ice, "get_host_addresses", lambda use_ipv4=True, use_ipv6=True: ["127.0.0.1"])


def _candidate_addresses(sdp: str) -> list[str]:
    return [line.split()[4] for line in sdp.splitlines() if line.startswith("a=candidate:")]


async def test_aiortc_sends_vp8_and_opus_through_echo_peer(echo_peer, loopback_only):
    ready = await echo_peer.expect("ready")
    assert isinstance(ready["port"], int) and ready["port"] > 0

    # No STUN/TURN servers (aiortc would otherwise default to a public STUN
    # server). The default bundle policy on purpose: the sample writes its
    # candidates only in the BUNDLE-tagged m-section (RFC 8843 §7.1.3), and
    # aiortc 1.16 with max-bundle takes a shared transport's candidates from
    # the last m-section; with "balanced" it reads them from the tagged one
    # and drops the other transport once the answer accepts BUNDLE.
    pc = RTCPeerConnection(RTCConfiguration(iceServers=[]))
    counter = FrameCounter(pc)
    frames = counter.frames
    try:
        video = pc.addTransceiver(Pattern(), direction="sendrecv")
        audio = pc.addTransceiver(Tone(), direction="sendrecv")
        video.setCodecPreferences(
            [c for c in RTCRtpSender.getCapabilities("video").codecs if c.mimeType == "video/VP8"])
        audio.setCodecPreferences(
            [c for c in RTCRtpSender.getCapabilities("audio").codecs if c.mimeType == "audio/opus"])

        await pc.setLocalDescription(await pc.createOffer())
        offer = pc.localDescription.sdp
        offered = _candidate_addresses(offer)
        assert offered and all(a == "127.0.0.1" for a in offered), offered

        t0 = time.monotonic()
        await echo_peer.send({"type": "offer", "sdp": offer})
        answer = (await echo_peer.expect("answer"))["sdp"]
        assert "a=ice-lite" in answer
        assert _candidate_addresses(answer) == ["127.0.0.1"]
        assert f" {ready['port']} typ host" in answer
        await pc.setRemoteDescription(RTCSessionDescription(sdp=answer, type="answer"))

        connected_after = None
        end = t0 + DEADLINE
        while time.monotonic() < end:
            if connected_after is None and pc.connectionState == "connected":
                connected_after = time.monotonic() - t0
            last = echo_peer.stats[-1] if echo_peer.stats else {}
            if (time.monotonic() - t0 >= MIN_DURATION
                    and frames["video"] > MIN_VIDEO_FRAMES and frames["audio"] > MIN_AUDIO_FRAMES
                    and last.get("rtp_in_audio", 0) > MIN_RTP_PER_KIND
                    and last.get("rtp_in_video", 0) > MIN_RTP_PER_KIND):
                break
            assert pc.connectionState != "failed", "aiortc reports the connection failed"
            await asyncio.sleep(0.1)
        elapsed = time.monotonic() - t0
    finally:
        await pc.close()
        counter.cancel()

    code = await echo_peer.close_stdin_and_wait()
    assert code == 0
    assert echo_peer.stats, "no stats line from the sample"
    final = echo_peer.stats[-1]
    summary = (f"connected after {connected_after}s (sample: ICE {final.get('ice_connected_ms')} ms, "
               f"DTLS-SRTP {final.get('connected_ms')} ms, {final.get('profile')}); after {elapsed:.1f}s: "
               f"sample rtp_in={final['rtp_in']} (audio {final['rtp_in_audio']}, video {final['rtp_in_video']}) "
               f"rtp_out={final['rtp_out']} rtcp_in={final['rtcp_in']} srtp_errors={final['srtp_errors']}; "
               f"aiortc decoded video={frames['video']} audio={frames['audio']}")
    print(summary)

    assert connected_after is not None, summary
    assert any(s["state"] == "connected" for s in echo_peer.stats), summary
    assert final["rtp_in_audio"] > MIN_RTP_PER_KIND, summary
    assert final["rtp_in_video"] > MIN_RTP_PER_KIND, summary
    assert final["rtp_out"] > 0 and final["rtcp_in"] > 0, summary
    assert final["srtp_errors"] == 0, summary
    assert final["unvalidated_drops"] == 0, summary
    assert frames["video"] > MIN_VIDEO_FRAMES, summary
    assert frames["audio"] > MIN_AUDIO_FRAMES, summary


async def test_echo_peer_exits_cleanly_on_sigterm(echo_peer):
    await echo_peer.expect("ready")
    echo_peer.proc.send_signal(signal.SIGTERM)
    code = await asyncio.wait_for(echo_peer.proc.wait(), 10)
    await asyncio.wait_for(echo_peer.reader, 10)
    assert code == 0
    assert echo_peer.stats and echo_peer.stats[-1]["state"] == "waiting"
