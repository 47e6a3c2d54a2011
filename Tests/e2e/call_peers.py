"""aiortc call participants for the end-to-end call tests.

A `CallPeer` is one logged-in WebSocket connection in a call, with the two
peer connections PROTOCOL.md asks for: one publishing (it offers, the SFU
answers) and one subscribing (the SFU offers on `subscribe_offer`, the peer
answers). Received tracks are decoded and counted per mid of the subscribe
connection; `tracks` frames say which user and source each mid carries.
"""

from __future__ import annotations

import asyncio
import time
from dataclasses import dataclass, field

import aioice.ice
from aiortc import RTCBundlePolicy, RTCConfiguration, RTCPeerConnection, RTCRtpSender, RTCSessionDescription

from media_tracks import Pattern, Tone


def loopback_only() -> None:
    """aioice gathers from get_host_addresses, which leaves out 127.0.0.1."""
    aioice.ice.get_host_addresses = lambda use_ipv4=True, use_ipv6=True: ["127.0.0.1"]


def new_pc() -> RTCPeerConnection:
    """No STUN/TURN servers (aiortc would default to a public one), one
    transport for everything. aiortc 1.16's "balanced" policy loses every
    second track of a kind when the answer bundles (it stays on a transport
    that is then stopped), so calls with two videos need max-bundle."""
    return RTCPeerConnection(RTCConfiguration(iceServers=[], bundlePolicy=RTCBundlePolicy.MAX_BUNDLE))


def spread_candidates(sdp: str) -> str:
    """The SFU writes its candidates only in the BUNDLE-tagged (first)
    m-section, as RFC 8843 §7 and JSEP want; aiortc 1.16 with max-bundle
    takes a shared transport's candidates from the *last* m-section it
    parses. Copy them into every m-section for aiortc's sake (the SFU's SDP
    is otherwise untouched)."""
    lines = [l for l in sdp.split("\r\n") if l]
    candidates = [l for l in lines if l.startswith("a=candidate:")]
    sections: list[list[str]] = [[]]
    for line in lines:
        if line.startswith("m="):
            sections.append([])
        sections[-1].append(line)
    out = sections[0]
    for section in sections[1:]:
        if not any(l.startswith("a=candidate:") for l in section):
            section = section + candidates + ["a=end-of-candidates"]
        out += section
    return "\r\n".join(out) + "\r\n"


def prefer(transceiver, kind: str, rtx: bool = False) -> None:
    """VP8 (with RTX when asked) or Opus only."""
    wanted = {"video/VP8"} if kind == "video" else {"audio/opus"}
    if rtx and kind == "video":
        wanted.add("video/rtx")
    transceiver.setCodecPreferences([c for c in RTCRtpSender.getCapabilities(kind).codecs if c.mimeType in wanted])


@dataclass
class TrackStats:
    kind: str
    frames: int = 0
    nonblank: int = 0
    first_at: float | None = None
    sizes: set = field(default_factory=set)


class CallPeer:
    """`rtx`: offer RTX on the publish connection (as browsers do).
    `pub_rewrite` / `sub_rewrite`: applied to every SDP the SFU sends before
    this peer applies it (e.g. to reach the SFU through a proxy).
    Subclasses may wrap the tracks they send (`wrap`) and watch every
    decoded frame (`on_frame`)."""

    def __init__(self, ws, name: str, *, rtx: bool = False, pub_rewrite=None, sub_rewrite=None):
        self.ws = ws
        self.name = name
        self.rtx = rtx
        self.pub_rewrite = pub_rewrite or (lambda sdp: sdp)
        self.sub_rewrite = sub_rewrite or (lambda sdp: sdp)
        self.call_id: str | None = None
        self.pub: RTCPeerConnection | None = None
        self.sub: RTCPeerConnection | None = None
        self.stats: dict[str, TrackStats] = {}
        self.tracks: list[dict] = []
        self.offers = 0
        self.published_mids: dict[str, str] = {}
        self.publish_answer_sdp: str | None = None
        self._readers: list[asyncio.Task] = []
        self.t0 = time.monotonic()

    def wrap(self, source: str, track):
        """The track to send for `source` (a hook: this one sends it as is)."""
        return track

    def on_frame(self, mid: str, kind: str, frame, now: float) -> None:
        """Called with every decoded frame (a hook)."""

    # -- publishing ------------------------------------------------------------

    async def publish(self, call_id: str, *, audio: bool = True, video: bool = True, screen: bool = False,
                      size: tuple[int, int] = (320, 240), timeout: float = 10.0) -> str:
        self.call_id = call_id
        pc = new_pc()
        self.pub = pc
        transceivers = []
        for source, kind, wanted, make in (("microphone", "audio", audio, Tone), ("camera", "video", video,
                                                                                  lambda: Pattern(*size)),
                                           ("screen", "video", screen, lambda: Pattern(640, 360))):
            if wanted:
                t = pc.addTransceiver(self.wrap(source, make()), direction="sendonly")
                prefer(t, kind, self.rtx)
                transceivers.append((source, t))
        await pc.setLocalDescription(await pc.createOffer())
        for source, t in transceivers:
            self.published_mids[source] = t.mid
        if screen:
            # Labelled before the offer, so subscribers see it as a screen from the start.
            await self.ws.send({"type": "publish_track", "call_id": call_id, "mid": self.published_mids["screen"],
                                "source": "screen"})
        answer = await self.ws.call({"type": "publish_offer", "call_id": call_id, "sdp": pc.localDescription.sdp},
                                    "publish_answer", timeout=timeout)
        assert answer["call_id"] == call_id
        assert "a=ice-lite" in answer["sdp"], answer["sdp"]
        self.publish_answer_sdp = answer["sdp"]
        sdp = spread_candidates(self.pub_rewrite(answer["sdp"]))
        await pc.setRemoteDescription(RTCSessionDescription(sdp=sdp, type="answer"))
        return answer["sdp"]

    # -- subscribing -----------------------------------------------------------

    async def answer_subscribe_offer(self, timeout: float = 10.0) -> str:
        """Waits for the next `subscribe_offer` (and its `tracks`) and answers it."""
        offer = await self.ws.recv_type("subscribe_offer", timeout=timeout)
        tracks = await self.ws.recv_type("tracks", timeout=timeout)
        assert offer["call_id"] == tracks["call_id"]
        self.call_id = offer["call_id"]
        self.tracks = tracks["tracks"]
        if self.sub is None:
            self.sub = new_pc()
            self.sub.on("track", self._on_track)
        sdp = spread_candidates(self.sub_rewrite(offer["sdp"]))
        await self.sub.setRemoteDescription(RTCSessionDescription(sdp=sdp, type="offer"))
        await self.sub.setLocalDescription(await self.sub.createAnswer())
        await self.ws.send({"type": "subscribe_answer", "call_id": self.call_id, "sdp": self.sub.localDescription.sdp})
        self.offers += 1
        return offer["sdp"]

    async def subscribe_until(self, wanted: list[tuple[str, str]], timeout: float = 20.0) -> None:
        """Answers offers until every (user, source) is in `tracks`."""
        deadline = time.monotonic() + timeout
        while not all(self.track(u, s) for u, s in wanted):
            remaining = deadline - time.monotonic()
            assert remaining > 0, f"{self.name}: tracks {self.tracks}, wanted {wanted}"
            await self.answer_subscribe_offer(timeout=remaining)

    def _on_track(self, track) -> None:
        mid = None
        for t in self.sub.getTransceivers():
            if t.receiver.track is track:
                mid = t.mid
        self._readers.append(asyncio.ensure_future(self._read(track, mid or "?")))

    async def _read(self, track, mid: str) -> None:
        s = self.stats.setdefault(mid, TrackStats(track.kind))
        while True:
            try:
                frame = await track.recv()
            except Exception:
                return
            now = time.monotonic()
            s.frames += 1
            if s.first_at is None:
                s.first_at = now
            self.on_frame(mid, track.kind, frame, now)
            if track.kind == "video":
                s.sizes.add((frame.width, frame.height))
                if s.frames % 5 == 1:
                    gray = frame.to_ndarray(format="gray")
                    if gray.std() > 5:
                        s.nonblank += 1
            else:
                if s.frames % 10 == 1:
                    samples = frame.to_ndarray()
                    if abs(samples).max() > 100:
                        s.nonblank += 1

    def track(self, user: str, source: str) -> dict | None:
        return next((t for t in self.tracks if t["user"] == user and t["source"] == source), None)

    def frames(self, user: str, source: str) -> int:
        t = self.track(user, source)
        return self.stats[t["mid"]].frames if t and t["mid"] in self.stats else 0

    def nonblank(self, user: str, source: str) -> int:
        t = self.track(user, source)
        return self.stats[t["mid"]].nonblank if t and t["mid"] in self.stats else 0

    async def wait_frames(self, wanted: dict[tuple[str, str], int], timeout: float = 20.0) -> None:
        """Until every (user, source) has decoded at least that many frames."""
        end = time.monotonic() + timeout
        while time.monotonic() < end:
            if all(self.frames(u, s) >= n for (u, s), n in wanted.items()):
                return
            await asyncio.sleep(0.1)
        got = {f"{u}/{s}": self.frames(u, s) for (u, s) in wanted}
        raise AssertionError(f"{self.name}: frames {got}, wanted {wanted}; tracks {self.tracks}; stats {self.stats}")

    async def close(self) -> None:
        for r in self._readers:
            r.cancel()
        for pc in (self.pub, self.sub):
            if pc is not None:
                await pc.close()
