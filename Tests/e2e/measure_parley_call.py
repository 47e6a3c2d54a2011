"""Measures calls between two `parley-call`s through Parley's SFU (not a
test: run by hand).

    .venv/bin/python Tests/e2e/measure_parley_call.py [--bin .build/release/parley] [--calls 5] [--seconds 8]

Starts `parley serve` on free loopback ports and, `--calls` times, one
`parley-call --answer` and one `parley-call --call` for `--seconds`. Each
prints its `--json` report; from both sides of every call this takes the
time from the call's start (`call_start` for the caller, `call_accept` for
the callee) to the first decoded video and audio frame, the decoded video
fps, the received video bitrate and the packets lost, and prints each call
and the medians. `parley-call` is looked for next to `--bin`.
"""

from __future__ import annotations

import argparse
import json
import shutil
import statistics
import subprocess
import sys
import tempfile
import time
from pathlib import Path

HERE = Path(__file__).resolve().parent
sys.path.insert(0, str(HERE))

import conftest  # noqa: E402
from conftest import PASSWORD, ParleyServer  # noqa: E402


def report(proc: subprocess.Popen, timeout: float) -> dict:
    out, _ = proc.communicate(timeout=timeout)
    lines = out.strip().splitlines()
    if proc.returncode != 0 or not lines:
        raise SystemExit(f"parley-call exited {proc.returncode} without a report")
    return json.loads(lines[-1])


def side(r: dict) -> dict:
    video = [t for t in r["received"] if t["kind"] == "video"]
    audio = [t for t in r["received"] if t["kind"] == "audio"]
    if not video or not audio:
        raise SystemExit(f"{r['user']} received no {'video' if not video else 'audio'}")
    return {
        "video_ms": r["time_to_first_video_frame_ms"],
        "audio_ms": r["time_to_first_audio_frame_ms"],
        "fps": video[0]["fps"],
        "kbps": video[0]["bitrate_kbps"],
        "lost": sum(t["packets_lost"] for t in r["received"]),
    }


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--bin", default=str(HERE / ".." / ".." / ".build" / "release" / "parley"))
    parser.add_argument("--calls", type=int, default=5)
    parser.add_argument("--seconds", type=float, default=8)
    args = parser.parse_args()
    conftest.PARLEY_BIN = Path(args.bin).resolve()
    client = conftest.PARLEY_BIN.parent / "parley-call"
    if not client.exists():
        raise SystemExit(f"{client} not found: swift build -c release --product parley-call")
    tmp = Path(tempfile.mkdtemp(prefix="parley-calls-"))
    server = ParleyServer(tmp / "data", tmp / "server.log").start()
    sides: list[dict] = []
    try:
        for n in range(args.calls):
            tag = f"{int(time.time() * 1000) % 10**8}{n}"
            common = ["--url", server.ws_url, "--password", PASSWORD, "--register", "--json", "--log-level", "warning"]
            callee = subprocess.Popen([str(client), *common, "--user", f"mc{tag}", "--answer", "--duration", "0"],
                                      stdout=subprocess.PIPE, stderr=subprocess.DEVNULL, text=True)
            time.sleep(0.7)  # logged in and waiting
            caller = subprocess.Popen([str(client), *common, "--user", f"mr{tag}", "--call", f"mc{tag}",
                                       "--duration", str(args.seconds)],
                                      stdout=subprocess.PIPE, stderr=subprocess.DEVNULL, text=True)
            pair = [side(report(caller, args.seconds + 30)), side(report(callee, 30))]
            sides += pair
            print(f"call {n + 1}: " + "; ".join(
                f"{who} first video {s['video_ms']:.0f} ms, audio {s['audio_ms']:.0f} ms, {s['fps']:.1f} fps, "
                f"{s['kbps']:.0f} kbit/s, {s['lost']} lost" for who, s in zip(("caller", "callee"), pair)))
    finally:
        server.stop()
        shutil.rmtree(tmp, ignore_errors=True)
    med = {k: statistics.median(s[k] for s in sides) for k in ("video_ms", "audio_ms", "fps", "kbps")}
    print(f"median of {len(sides)} sides: first video frame {med['video_ms']:.0f} ms "
          f"(range {min(s['video_ms'] for s in sides):.0f}-{max(s['video_ms'] for s in sides):.0f}), "
          f"first audio frame {med['audio_ms']:.0f} ms, {med['fps']:.1f} fps, {med['kbps']:.0f} kbit/s, "
          f"{sum(s['lost'] for s in sides)} packets lost in all")


if __name__ == "__main__":
    main()
