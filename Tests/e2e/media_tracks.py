"""Synthetic aiortc media tracks shared by the end-to-end WebRTC tests."""

from __future__ import annotations

import asyncio
import fractions
import time

import numpy as np
from aiortc import VideoStreamTrack
from aiortc.mediastreams import AudioStreamTrack
from av import AudioFrame, VideoFrame


class Pattern(VideoStreamTrack):
    """A moving gradient (default 320x240) at 30 fps."""

    def __init__(self, width: int = 320, height: int = 240):
        super().__init__()
        self.width, self.height = width, height
        self.n = 0

    async def recv(self):
        pts, time_base = await self.next_timestamp()
        img = np.zeros((self.height, self.width, 3), np.uint8)
        img[:, :, 0] = (np.arange(self.width)[None, :] + self.n * 4) % 256
        img[:, :, 1] = (np.arange(self.height)[:, None]) % 256
        self.n += 1
        frame = VideoFrame.from_ndarray(img, format="bgr24")
        frame.pts, frame.time_base = pts, time_base
        return frame


class Tone(AudioStreamTrack):
    """440 Hz tone in 20 ms frames, 48 kHz stereo, paced in real time
    (aiortc's default audio track is 8 kHz mono)."""

    def __init__(self):
        super().__init__()
        self.t = 0
        self.start = None

    async def recv(self):
        if self.start is None:
            self.start = time.time()
        else:
            await asyncio.sleep(max(0, self.start + self.t / 48000 - time.time()))
        n = 960
        s = (8000 * np.sin(2 * np.pi * 440 * (np.arange(n) + self.t) / 48000)).astype(np.int16)
        frame = AudioFrame.from_ndarray(np.repeat(s, 2).reshape(1, -1), format="s16", layout="stereo")
        frame.sample_rate = 48000
        frame.pts = self.t
        frame.time_base = fractions.Fraction(1, 48000)
        self.t += n
        return frame


class FrameCounter:
    """Decodes every track a peer connection receives and counts frames by
    kind (`frames["video"]`, `frames["audio"]`); `cancel()` stops the readers."""

    def __init__(self, pc) -> None:
        self.frames = {"video": 0, "audio": 0}
        self._readers: list[asyncio.Future] = []
        pc.on("track", lambda track: self._readers.append(asyncio.ensure_future(self._read(track))))

    async def _read(self, track) -> None:
        while True:
            try:
                await track.recv()
            except Exception:
                return
            self.frames[track.kind] += 1

    def cancel(self) -> None:
        for reader in self._readers:
            reader.cancel()
