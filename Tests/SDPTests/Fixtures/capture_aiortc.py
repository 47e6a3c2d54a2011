"""Capture an aiortc (PyPI `aiortc`, needs `numpy`) offer with one audio and one video track.

Usage: python capture_aiortc.py   # writes aiortc_audio_video.sdp next to this file
aiortc gathers host candidates during setLocalDescription, so the offer carries them.
"""
import asyncio, pathlib
import aiortc
from aiortc import RTCPeerConnection
from aiortc.mediastreams import AudioStreamTrack, VideoStreamTrack

HERE = pathlib.Path(__file__).resolve().parent


async def main():
    pc = RTCPeerConnection()
    pc.addTrack(AudioStreamTrack())
    pc.addTrack(VideoStreamTrack())
    await pc.setLocalDescription(await pc.createOffer())
    sdp = pc.localDescription.sdp
    path = HERE / "aiortc_audio_video.sdp"
    path.write_bytes(sdp.encode())
    print("aiortc", aiortc.__version__, "wrote", path, len(sdp), "bytes")
    await pc.close()

asyncio.run(main())
