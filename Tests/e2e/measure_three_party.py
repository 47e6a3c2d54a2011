"""Measures a three-party call through Parley's SFU (not a test: run by hand).

    .venv/bin/python Tests/e2e/measure_three_party.py [--bin .build/release/parley] [--seconds 20] [--mallocs]

Starts `parley serve` on free loopback ports, puts three aiortc participants
in one group call (each publishes camera + microphone and receives the other
two), waits until everyone decodes everyone, then measures over a window of
`--seconds`: RTP packets the SFU forwarded per second (from /metrics, the
window's delta), the server's CPU (user + system from /proc/PID/stat over the
same window, as a fraction of one core), CPU microseconds per forwarded
packet, and with `--mallocs` the mallocs the server made in the window
(`perf stat -e probe_libc:malloc -p PID`, the probe made with
`perf probe -x <libc> malloc`), per forwarded packet. The aiortc peers run in
this process and use most of the machine; the figures are the server's.
"""

from __future__ import annotations

import argparse
import asyncio
import os
import re
import shutil
import subprocess
import sys
import tempfile
import time
from pathlib import Path

HERE = Path(__file__).resolve().parent
sys.path.insert(0, str(HERE))

import conftest  # noqa: E402
from call_peers import CallPeer, loopback_only  # noqa: E402
from conftest import Harness, ParleyServer, metric_value  # noqa: E402


def cpu_seconds(pid: int) -> float:
    fields = Path(f"/proc/{pid}/stat").read_text().rsplit(")", 1)[1].split()
    ticks = os.sysconf("SC_CLK_TCK")
    return (int(fields[11]) + int(fields[12])) / ticks


def forwarded(server: ParleyServer) -> float:
    return metric_value(server.http_get("/metrics")[1], "parley_sfu_rtp_forwarded_total") or 0.0


async def run(args) -> None:
    loopback_only()
    tmp = Path(tempfile.mkdtemp(prefix="parley-3party-"))
    conftest.PARLEY_BIN = Path(args.bin).resolve()
    server = ParleyServer(tmp / "data", tmp / "server.log").start()
    h = Harness(server)
    peers: list[CallPeer] = []
    try:
        users = [await h.user(p) for p in ("pa", "pb", "pc")]
        a = users[0]
        g = await a.ws.call({"type": "create_group", "group_name": f"m{a.name[-10:]}"}, "create_group_response")
        for u in users[1:]:
            await a.ws.call({"type": "invite", "group_id": g["group_id"], "username": u.name}, "invite_response")
        t0 = time.monotonic()
        started = await a.ws.call({"type": "call_start", "groupname": g["group_name"]}, "call_started")
        call_id = started["call_id"]
        for u in users[1:]:
            await u.ws.recv_type("call_incoming", call_id=call_id)
            await u.ws.call({"type": "call_accept", "call_id": call_id}, "call_accepted")
        peers = [CallPeer(u.ws, u.name) for u in users]
        for p in peers:
            await p.publish(call_id, size=(640, 360))
        for i, p in enumerate(peers):
            others = [u.name for j, u in enumerate(users) if j != i]
            while not all(p.track(o, "camera") and p.track(o, "microphone") for o in others):
                await p.answer_subscribe_offer(timeout=20)
        for i, p in enumerate(peers):
            others = [u.name for j, u in enumerate(users) if j != i]
            await p.wait_frames({(o, "camera"): 10 for o in others}, timeout=60)
        print(f"everyone decodes everyone {time.monotonic() - t0:.1f} s after call_start")
        await asyncio.sleep(2)

        pid = server.proc.pid
        perf = None
        if os.environ.get("PARLEY_PERF_RECORD"):
            subprocess.run([os.environ["PARLEY_PERF_RECORD"], "3"])
        if args.mallocs and shutil.which("perf"):
            perf = subprocess.Popen(["perf", "stat", "-e", "probe_libc:malloc", "-p", str(pid), "--", "sleep",
                                     str(args.seconds)], stderr=subprocess.PIPE, text=True)
        f0, c0, w0 = forwarded(server), cpu_seconds(pid), time.monotonic()
        await asyncio.sleep(args.seconds)
        f1, c1, w1 = forwarded(server), cpu_seconds(pid), time.monotonic()
        wall = w1 - w0
        packets = f1 - f0
        print(f"three-party call: forwarded {packets / wall:.0f} packets/s, server CPU {(c1 - c0) / wall * 100:.1f} % "
              f"of a core, {(c1 - c0) / max(packets, 1) * 1e6:.1f} us CPU per forwarded packet ({wall:.1f} s window)")
        if perf is not None:
            _, err = perf.communicate(timeout=args.seconds + 30)
            m = re.search(r"([\d,]+)\s+probe_libc:malloc", err)
            if m:
                mallocs = int(m.group(1).replace(",", ""))
                print(f"server mallocs in the window: {mallocs} ({mallocs / max(packets, 1):.3f} per forwarded packet)")
            else:
                print("perf: " + err.strip().splitlines()[-1] if err.strip() else "perf gave no output")
        received = {p.name: {k: v.frames for k, v in p.stats.items()} for p in peers}
        print(f"frames decoded per participant and mid: {received}")
    finally:
        for p in peers:
            await p.close()
        await h.close_all()
        server.stop()
        shutil.rmtree(tmp, ignore_errors=True)


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--bin", default=str(HERE / ".." / ".." / ".build" / "release" / "parley"))
    parser.add_argument("--seconds", type=float, default=20)
    parser.add_argument("--mallocs", action="store_true", help="count the server's mallocs with perf (needs the probe)")
    asyncio.run(run(parser.parse_args()))


if __name__ == "__main__":
    main()
