"""Call recording (`--record-dir`, docs/PROTOCOL.md "Recording").

A 1:1 aiortc call (both sides publish camera and microphone) on a server
with `--record-dir`: each track is written to
`<dir>/<call_id>/<user>-<source>-<track_id>.ivf|.ogg`, closed when the call
ends (or recording stops). ffprobe must see VP8 in IVF and Opus in Ogg with
the media time the publisher sent, and ffmpeg must decode every file without
an error.

Expected media time: the span of presentation times of the frames the
publisher handed to its encoder (`media_checks.LoggedTrack`), from its first
frame to the last one sent before the call ended. That is what a recording
written from the RTP timestamps covers, and it does not depend on the
machine's load: a starved aiortc sends fewer frames late, its pts (and RTP
timestamps) still advance by one frame each, whereas the wall time from
`call_accept` to `call_end` would also count ICE, DTLS and any stall. The
publisher's first frame is a keyframe, and the call is recorded from its
start, so nothing before the first keyframe is missing. A frame or two sent
while `call_end` was on its way may or may not be in the file: 33 ms
against a 10 % tolerance.
"""

from __future__ import annotations

import json
import re
import subprocess
import time
from pathlib import Path

import pytest

from call_peers import loopback_only
from conftest import Harness, require_tools
from media_checks import MediaPeer, start_one_to_one, wait_until

MEDIA_SECONDS = 5.0


class MidCallVideoMissing(AssertionError):
    """The mid-call recording has no video (the SFU asked for no keyframe)."""


@pytest.fixture(autouse=True)
def _loopback():
    loopback_only()


@pytest.fixture
def recording_server(server_factory, tmp_path):
    require_tools("ffprobe", "ffmpeg")
    rec = tmp_path / "recordings"
    srv = server_factory(extra_args=["--record-dir", str(rec)]).start()
    srv.record_dir = rec
    return srv


def probe(path: Path) -> dict:
    out = subprocess.run(["ffprobe", "-v", "error", "-show_entries",
                          "stream=codec_name,codec_type,duration,nb_frames,width,height,sample_rate:format=duration,"
                          "format_name", "-of", "json", str(path)],
                         capture_output=True, text=True, timeout=30)
    assert out.returncode == 0, f"ffprobe {path.name}: {out.stderr}"
    return json.loads(out.stdout)


def decode_errors(path: Path) -> str:
    out = subprocess.run(["ffmpeg", "-nostdin", "-v", "error", "-i", str(path), "-f", "null", "-"],
                         capture_output=True, text=True, timeout=60)
    return (out.stderr.strip() + (f" (exit {out.returncode})" if out.returncode else "")).strip()


def duration(info: dict) -> float:
    stream = info["streams"][0]
    d = stream.get("duration") or info["format"].get("duration")
    assert d not in (None, "N/A"), info
    return float(d)


async def closed_files(srv, call_id: str, count: int, timeout: float = 20.0) -> dict[str, str]:
    """Waits for `count` "recording closed" log lines of the call; returns file name -> line."""
    found: dict[str, str] = {}

    def scan() -> bool:
        for line in srv.log_text().splitlines():
            if "recording closed" in line and f"call={call_id} " in line + " ":
                m = re.search(r"file=(\S+)", line)
                if m:
                    found[Path(m.group(1)).name] = line
        return len(found) >= count

    await wait_until(scan, timeout, f"{count} recordings of {call_id} closed",
                     detail=lambda: f"closed {sorted(found)}; log tail:\n{srv.log_tail(20)}")
    return found


def expected_names(peer: MediaPeer, other: str) -> dict[str, tuple[str, str]]:
    """File name -> (user, source) of `other`'s tracks, as `peer` sees them in `tracks`."""
    out = {}
    for t in peer.tracks:
        if t["user"] == other:
            ext = "ivf" if t["kind"] == "video" else "ogg"
            out[f"{other}-{t['source']}-{t['track_id']}.{ext}"] = (other, t["source"])
    return out


def check_files(call_dir: Path, names: dict[str, tuple[str, str]], peers: dict[str, MediaPeer], until: float,
                since: float | None = None) -> list[str]:
    """ffprobe / ffmpeg every expected file; returns printable lines; asserts codec and duration."""
    lines, problems = [], []
    for name, (user, source) in sorted(names.items()):
        path = call_dir / name
        assert path.exists(), f"{name} missing; {sorted(p.name for p in call_dir.iterdir())}"
        info = probe(path)
        stream = info["streams"][0]
        sent = peers[user].sent[source]
        if since is not None:
            frames = [f for f in sent.log if since <= f[0] <= until]
            expected = float((frames[-1][1] - frames[0][1]) * frames[0][2]) if len(frames) >= 2 else 0.0
        else:
            expected = sent.media_seconds(until=until)
        got = duration(info)
        errors = decode_errors(path)
        lines.append(f"{name}: {stream['codec_name']} {info['format']['format_name']}, {got:.3f} s vs {expected:.3f} s "
                     f"sent ({(got - expected) / expected * 100:+.1f} %), {path.stat().st_size} bytes"
                     + (f", {stream.get('nb_frames')} frames" if stream.get("nb_frames") else "")
                     + (f"; ffmpeg: {errors[:200]}" if errors else ""))
        want = "vp8" if name.endswith(".ivf") else "opus"
        if stream["codec_name"] != want:
            problems.append(f"{name}: codec {stream['codec_name']}, want {want}")
        if abs(got - expected) > 0.1 * expected:
            problems.append(f"{name}: {got:.3f} s, expected {expected:.3f} s ± 10 %")
        if errors:
            problems.append(f"{name}: ffmpeg reports: {errors[:500]}")
    print("\n" + "\n".join(lines))
    assert not problems, "\n".join(problems + lines)
    return lines


async def media_for(peers: list[MediaPeer], seconds: float, since: float | None = None, timeout: float = 30) -> None:
    """Until every peer's published tracks have sent `seconds` of media (since `since`)."""
    def enough() -> bool:
        for p in peers:
            for t in p.sent.values():
                frames = [f for f in t.log if since is None or f[0] >= since]
                if len(frames) < 2 or float((frames[-1][1] - frames[0][1]) * frames[0][2]) < seconds:
                    return False
        return True

    await wait_until(enough, timeout, f"{seconds} s of media sent")


async def test_call_recorded_from_the_start(recording_server):
    srv = recording_server
    h = Harness(srv)
    a, b = await h.user("reca"), await h.user("recb")
    pa, pb = MediaPeer(a.ws, "a"), MediaPeer(b.ws, "b")
    try:
        call_id = await start_one_to_one(a.ws, b.ws, b.name, record=True)
        await pa.publish(call_id)
        await pb.publish(call_id)
        await pb.subscribe_until([(a.name, "camera"), (a.name, "microphone")])
        await pa.subscribe_until([(b.name, "camera"), (b.name, "microphone")])
        await media_for([pa, pb], MEDIA_SECONDS)
        await pb.wait_frames({(a.name, "camera"): 30}, timeout=20)
        until = time.monotonic()
        ended = await a.ws.call({"type": "call_end", "call_id": call_id}, "call_ended")
        assert ended["reason"] == "hangup"
        await b.ws.recv_type("call_ended", call_id=call_id)

        names = {**expected_names(pb, a.name), **expected_names(pa, b.name)}
        assert len(names) == 4, names
        closed = await closed_files(srv, call_id, 4)
        assert set(closed) == set(names), (closed, names)
        call_dir = srv.record_dir / call_id
        assert sorted(p.name for p in call_dir.iterdir()) == sorted(names)
        check_files(call_dir, names, {a.name: pa, b.name: pb}, until)

        hist = await a.ws.call({"type": "call_history", "limit": 5}, "call_history")
        entry = next(c for c in hist["calls"] if c["call_id"] == call_id)
        assert entry.get("recorded") is True, entry
    finally:
        await pa.close()
        await pb.close()
        await h.close_all()


async def test_recording_started_mid_call_by_a_participant(recording_server):
    srv = recording_server
    h = Harness(srv)
    a, b = await h.user("mida"), await h.user("midb")
    pa, pb = MediaPeer(a.ws, "a"), MediaPeer(b.ws, "b")
    try:
        call_id = await start_one_to_one(a.ws, b.ws, b.name)
        await pa.publish(call_id)
        await pb.publish(call_id)
        await pb.subscribe_until([(a.name, "camera"), (a.name, "microphone")])
        await pa.subscribe_until([(b.name, "camera"), (b.name, "microphone")])
        await pb.wait_frames({(a.name, "camera"): 30}, timeout=20)
        await pa.wait_frames({(b.name, "camera"): 30}, timeout=20)
        assert not (srv.record_dir / call_id).exists()

        since = time.monotonic()
        # No reply on success; every participant (B too) is told.
        await b.ws.send({"type": "record_call", "call_id": call_id, "enabled": True, "request_id": "rec-on"})
        for ws in (a.ws, b.ws):
            told = await ws.recv_type("call_recording", call_id=call_id, timeout=10)
            assert told["enabled"] is True and told["by"] == b.name, told
        await media_for([pa, pb], 3.0, since=since)
        until = time.monotonic()
        await a.ws.send({"type": "record_call", "call_id": call_id, "enabled": False})
        for ws in (a.ws, b.ws):
            told = await ws.recv_type("call_recording", call_id=call_id, timeout=10)
            assert told["enabled"] is False and told["by"] == a.name, told
        errors = [f for f in a.ws.backlog + b.ws.backlog if f.get("type") == "error"]
        assert not errors, errors

        names = {**expected_names(pb, a.name), **expected_names(pa, b.name)}
        assert len(names) == 4, names
        closed = await closed_files(srv, call_id, 4)
        assert set(closed) == set(names), (closed, names)
        call_dir = srv.record_dir / call_id
        # The call goes on after the recording stopped.
        await pb.wait_frames({(a.name, "camera"): pb.frames(a.name, "camera") + 20}, timeout=20)
        await a.ws.call({"type": "call_end", "call_id": call_id}, "call_ended")

        # Audio: the recorded window (from record_call on to off), ± 10 %.
        audio = {n: v for n, v in names.items() if n.endswith(".ogg")}
        check_files(call_dir, audio, {a.name: pa, b.name: pb}, until, since=since)
        # Video: the same window, less the wait for a keyframe, which the
        # SFU should ask for when recording starts (RFC 4585 §6.3.1 PLI).
        video = {n: v for n, v in names.items() if n.endswith(".ivf")}
        try:
            check_files(call_dir, video, {a.name: pa, b.name: pb}, until, since=since)
        except AssertionError as e:
            print("recording log lines:\n" + "\n".join(closed.values()))
            raise MidCallVideoMissing(str(e)) from None
    finally:
        await pa.close()
        await pb.close()
        await h.close_all()


async def test_everyone_is_told_a_call_is_recorded_from_the_start(recording_server):
    """docs/PROTOCOL.md, Recording: "every participant is told with
    `call_recording {call_id, enabled, by}`" — the callee above all, who
    did not ask for it and joins a call that is being recorded."""
    srv = recording_server
    h = Harness(srv)
    try:
        a, b = await h.user("tella"), await h.user("tellb")
        started = await a.ws.call({"type": "call_start", "callee": b.name, "record": True}, "call_started")
        call_id = started["call_id"]
        incoming = await b.ws.recv_type("call_incoming", call_id=call_id, timeout=10)
        await b.ws.call({"type": "call_accept", "call_id": call_id}, "call_accepted", timeout=10)
        told = {}
        for who, ws in (("caller", a.ws), ("callee", b.ws)):
            try:
                told[who] = await ws.recv_type("call_recording", call_id=call_id, timeout=2)
            except AssertionError:
                told[who] = None
        print(f"\ncall_incoming {incoming}; call_recording: {told}")
        assert incoming.get("record") is True or told["callee"] is not None, \
            f"the callee was not told: call_incoming {incoming}, no call_recording"
        assert told["callee"] is not None and told["callee"]["enabled"] is True and told["callee"]["by"] == a.name
        assert told["caller"] is not None
    finally:
        await h.close_all()
