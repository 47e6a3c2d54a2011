"""The UDP impairment proxy (udp_proxy.py) against local UDP sinks and echo
servers on 127.0.0.1 -- no Parley server involved.

Packets carry a sequence number and the sender's time.monotonic(); the sink
records its own arrival time, so one-way delays are measured on one clock.
Senders pace themselves with sleep() in 1 ms bursts so that neither the
kernel buffers nor the GIL (the proxy thread shares this process) distort
the numbers.  Statistical tolerances are explained where they are asserted;
every proxy is seeded, so a given run is also reproducible.
"""

from __future__ import annotations

import asyncio
import inspect
import json
import os
import select
import signal
import socket
import statistics
import struct
import subprocess
import sys
import threading
import time
from pathlib import Path
from typing import Callable

import pytest

from udp_proxy import DROP_REASONS, Impairment, ImpairmentProxy

HERE = Path(__file__).resolve().parent
HDR = struct.Struct("!Id")           # sequence number, sender's monotonic time
LOCAL = "127.0.0.1"
# Upper bounds on real arrival times allow this much scheduling slack:
# threads are woken late on a busy machine (measured: up to ~24 ms with both
# CPUs oversubscribed by a compiler and busy loops).  Lower bounds get none --
# the proxy never releases early -- and the schedule the proxy computed is
# checked exactly from its trace.
SLACK_MS = 25.0


# --------------------------------------------------------------------------
# Helpers
# --------------------------------------------------------------------------

class Peer:
    """A UDP socket on 127.0.0.1 with a receive thread that records
    (arrival time, data, source); with ``echo`` it also sends each datagram
    back to its source (``reply(data, src)`` may change the answer)."""

    def __init__(self, echo: bool = False, reply: Callable[[bytes, tuple], bytes] | None = None) -> None:
        self.sock = socket.socket(socket.AF_INET, socket.SOCK_DGRAM)
        self.sock.setsockopt(socket.SOL_SOCKET, socket.SO_RCVBUF, 4 << 20)
        self.sock.bind((LOCAL, 0))
        self.sock.setblocking(False)
        self.addr = self.sock.getsockname()
        self.echo = echo
        self.reply = reply
        self.received: list[tuple[float, bytes, tuple]] = []
        self._wake_r, self._wake_w = socket.socketpair()
        self._thread = threading.Thread(target=self._run, name=f"test-peer:{self.addr[1]}", daemon=True)
        self._thread.start()

    def _run(self) -> None:
        while True:
            ready = select.select([self.sock, self._wake_r], [], [])[0]
            if self._wake_r in ready:
                return
            while True:
                try:
                    data, src = self.sock.recvfrom(65535)
                except BlockingIOError:
                    break
                self.received.append((time.monotonic(), data, src))
                if self.echo:
                    self.sock.sendto(self.reply(data, src) if self.reply else data, src)

    def sendto(self, data: bytes, dest: tuple) -> None:
        self.sock.sendto(data, dest)

    def seqs(self) -> list[int]:
        return [HDR.unpack_from(d)[0] for _, d, _ in list(self.received)]

    def one_way_ms(self) -> list[float]:
        return [(t - HDR.unpack_from(d)[1]) * 1000.0 for t, d, _ in list(self.received)]

    def close(self) -> None:
        self._wake_w.send(b"x")
        self._thread.join(5)
        assert not self._thread.is_alive()
        for s in (self.sock, self._wake_r, self._wake_w):
            s.close()


def send_paced(peer: Peer, dest: tuple, n: int, pps: float, size: int = 1200, first_seq: int = 0) -> None:
    """n datagrams of `size` bytes at `pps`, in bursts of about 1 ms, sleeping
    in between (a busy sender would hold the GIL the proxy thread needs)."""
    pad = b"\0" * (size - HDR.size)
    burst = max(1, round(pps / 1000))
    start = time.monotonic()
    for i in range(n):
        if i % burst == 0:
            delay = start + i / pps - time.monotonic()
            if delay > 0:
                time.sleep(delay)
        peer.sendto(HDR.pack(first_seq + i, time.monotonic()) + pad, dest)


def wait_for(cond: Callable[[], bool], timeout: float = 5.0, what: str = "condition") -> None:
    deadline = time.monotonic() + timeout
    while not cond():
        if time.monotonic() > deadline:
            raise AssertionError(f"timed out waiting for {what}")
        time.sleep(0.005)


def settle(proxy: ImpairmentProxy, to_server_in: int, receivers: list[tuple[Peer, str, int]]) -> dict:
    """Wait until the proxy has read `to_server_in` client packets, nothing is
    in flight any more, and each (peer, direction, base) has received exactly
    base + what that direction forwarded.  Returns the final stats."""
    def st() -> dict:
        return proxy.stats()

    wait_for(lambda: st()["to_server"]["packets_in"] == to_server_in, what="proxy to read every client packet")

    def quiet() -> bool:
        s = st()
        if s["to_server"]["in_flight"] or s["to_client"]["in_flight"]:
            return False
        # Every packet the echo server answered must have come back in too.
        return all(len(peer.received) == base + s[d]["packets_forwarded"] for peer, d, base in receivers)

    wait_for(quiet, what="in-flight packets to drain")
    time.sleep(0.02)   # and nothing else trickles in
    s = st()
    assert quiet(), s
    for d in ("to_server", "to_client"):
        x = s[d]
        assert x["packets_in"] == x["packets_forwarded"] + x["dropped_total"] + x["in_flight"], x
        assert x["dropped"]["send_error"] == 0, x
    return s


def loss_runs(seqs: list[int], n: int) -> list[int]:
    """Lengths of the runs of consecutive missing sequence numbers in 0..n-1."""
    got = set(seqs)
    runs, cur = [], 0
    for i in range(n):
        if i in got:
            if cur:
                runs.append(cur)
            cur = 0
        else:
            cur += 1
    if cur:
        runs.append(cur)
    return runs


def late_arrivals(seqs: list[int]) -> int:
    """Packets that arrived after a packet with a higher sequence number."""
    late, top = 0, -1
    for s in seqs:
        if s < top:
            late += 1
        top = max(top, s)
    return late


def quantile(values: list[float], q: float) -> float:
    v = sorted(values)
    return v[min(len(v) - 1, int(q * len(v)))]


def _socket_fds() -> int | None:
    try:
        names = os.listdir("/proc/self/fd")
    except OSError:
        return None
    count = 0
    for name in names:
        try:
            if os.readlink(f"/proc/self/fd/{name}").startswith("socket:"):
                count += 1
        except OSError:
            pass
    return count


@pytest.fixture(autouse=True)
def no_leaks(request):
    """Every socket and thread a test starts must be gone when it ends."""
    threads = set(threading.enumerate())
    socks = _socket_fds()
    yield
    extra = [t for t in threading.enumerate() if t not in threads and t.is_alive()]
    assert not extra, f"threads left running: {extra}"
    # pytest-asyncio's event loop (its self-pipe) outlives an async test's body.
    if socks is not None and not inspect.iscoroutinefunction(request.function):
        assert _socket_fds() == socks, "sockets left open"


@pytest.fixture
def peers():
    made: list[Peer] = []

    def make(**kw) -> Peer:
        p = Peer(**kw)
        made.append(p)
        return p

    yield make
    for p in made:
        p.close()


@pytest.fixture
def proxies():
    made: list[ImpairmentProxy] = []

    def make(upstream: Peer, **kw) -> ImpairmentProxy:
        kw.setdefault("seed", 1)
        px = ImpairmentProxy(upstream=upstream.addr, **kw)
        px.start()
        made.append(px)
        return px

    make.adopt = made.append  # type: ignore[attr-defined]
    yield make
    for px in made:
        px.stop()
        assert not px.running and (px._thread is None or not px._thread.is_alive())


def at(proxy: ImpairmentProxy) -> tuple[str, int]:
    return (LOCAL, proxy.port)


# --------------------------------------------------------------------------
# Tests
# --------------------------------------------------------------------------

# The load generator for the latency test runs in its own process: there the
# only thread of this process that works is the proxy's, so the numbers show
# the proxy's own latency rather than GIL hand-offs between test threads.  It
# runs an echo thread and a paced client; for each proxy port read from stdin
# it measures the same load directly (the baseline) and through the proxy,
# and prints one JSON line.  Timestamps are CLOCK_MONOTONIC on both sides.
LOADGEN = r"""
import json, socket, struct, sys, threading, time
HDR = struct.Struct("!Id")
N, PPS, SIZE = int(sys.argv[1]), float(sys.argv[2]), int(sys.argv[3])

def sock():
    s = socket.socket(socket.AF_INET, socket.SOCK_DGRAM)
    s.setsockopt(socket.SOL_SOCKET, socket.SO_RCVBUF, 4 << 20)
    s.bind(("127.0.0.1", 0))
    return s

echo = sock()
one_way = []
def serve():
    while True:
        try:
            d, a = echo.recvfrom(65535)
        except OSError:
            return
        one_way.append((time.monotonic() - HDR.unpack_from(d)[1], HDR.unpack_from(d)[0]))
        echo.sendto(d, a)
threading.Thread(target=serve, daemon=True).start()
print(echo.getsockname()[1], flush=True)

def q(v, p):
    v = sorted(v)
    return v[min(len(v) - 1, int(p * len(v)))] * 1000 if v else None

def run(dest, n):
    del one_way[:]
    c = sock()
    c.settimeout(2.0)
    rtt = []
    def rx():
        while len(rtt) < n:
            try:
                d = c.recv(65535)
            except socket.timeout:
                return
            rtt.append((time.monotonic() - HDR.unpack_from(d)[1], HDR.unpack_from(d)[0]))
    t = threading.Thread(target=rx)
    t.start()
    pad = b"\0" * (SIZE - HDR.size)
    burst = max(1, round(PPS / 1000))
    start = time.monotonic()
    for i in range(n):
        if i % burst == 0:
            dt = start + i / PPS - time.monotonic()
            if dt > 0:
                time.sleep(dt)
        c.sendto(HDR.pack(i, time.monotonic()) + pad, dest)
    elapsed = time.monotonic() - start
    t.join()
    c.close()
    ow = [x for x, _ in one_way]
    rt = [x for x, _ in rtt]
    return {"sent": n, "send_seconds": elapsed,
            "echo_seqs_in_order": [s for _, s in one_way] == list(range(n)),
            "client_seqs_in_order": [s for _, s in rtt] == list(range(n)),
            "received": len(rt),
            "one_way_ms": {k: q(ow, p) for k, p in (("p50", .5), ("p90", .9), ("p99", .99))},
            "rtt_ms": {k: q(rt, p) for k, p in (("p50", .5), ("p90", .9), ("p99", .99))}}

for line in sys.stdin:
    direct = run(echo.getsockname(), N // 2)
    proxied = run(("127.0.0.1", int(line)), N)
    print(json.dumps({"direct": direct, "proxied": proxied}), flush=True)
"""


def test_passthrough_3000pps_each_way_in_order_low_latency(proxies):
    """No impairment: 3000 datagrams of 1200 B in 1 s to an echo server and
    back through the proxy (3000 packets/s in each direction): all delivered,
    in order, and the proxy adds well under 1 ms per traversal (median,
    against a direct run of the same load just before).  Delivery and order
    must hold on every run; the latency bound on the best of up to three, so
    that a compiler hogging both CPUs for a second does not fail the test
    while a proxy that is really slow still does."""
    n, pps, size = 3000, 3000, 1200
    proc = subprocess.Popen([sys.executable, "-c", LOADGEN, str(n), str(pps), str(size)],
                            stdin=subprocess.PIPE, stdout=subprocess.PIPE, stderr=subprocess.PIPE, text=True)
    runs = []
    try:
        echo_port = int(proc.stdout.readline())
        proxy = ImpairmentProxy(upstream=(LOCAL, echo_port), seed=1)
        proxies.adopt(proxy)
        proxy.start()
        for _ in range(3):
            proc.stdin.write(f"{proxy.port}\n")
            proc.stdin.flush()
            res = json.loads(proc.stdout.readline())
            direct, via = res["direct"], res["proxied"]
            assert via["received"] == n and via["echo_seqs_in_order"] and via["client_seqs_in_order"], via
            assert via["send_seconds"] < 1.5, via                 # really offered ~3000/s
            runs.append((via["one_way_ms"]["p50"] - direct["one_way_ms"]["p50"],
                         via["rtt_ms"]["p50"] - direct["rtt_ms"]["p50"], via["one_way_ms"]["p90"], res))
            if runs[-1][0] < 1.0 and runs[-1][1] < 2.0 and runs[-1][2] < 5.0:
                break
        proc.stdin.close()
        assert proc.wait(10) == 0, proc.stderr.read()
    finally:
        if proc.poll() is None:
            proc.kill()
            proc.wait()
        for f in (proc.stdin, proc.stdout, proc.stderr):
            f.close()
    s = proxy.stats()
    for d in ("to_server", "to_client"):
        assert s[d]["packets_forwarded"] == n * len(runs) and s[d]["bytes_forwarded"] == n * size * len(runs), s[d]
        assert s[d]["dropped_total"] == 0
    added_one_way, added_rtt, p90, res = min(runs, key=lambda r: r[0])
    assert added_one_way < 1.0, (runs, s)     # one traversal
    assert added_rtt < 2.0, (runs, s)         # two traversals
    assert p90 < 5.0, (runs, s)


def test_passthrough_in_process_keeps_order(peers, proxies):
    """The same from threads of this process (how tests use it): all 2000
    datagrams in order both ways.  (Latency is measured above: here it would
    mostly measure GIL hand-offs between this test's own threads.)"""
    echo = peers(echo=True)
    client = peers()
    proxy = proxies(echo)
    n = 2000
    send_paced(client, at(proxy), n, pps=4000, size=1200)
    s = settle(proxy, n, [(echo, "to_server", 0), (client, "to_client", 0)])
    assert echo.seqs() == list(range(n))
    assert client.seqs() == list(range(n))
    assert s["to_server"]["dropped_total"] == s["to_client"]["dropped_total"] == 0


@pytest.mark.parametrize("loss,direction", [(0.10, "to_server"), (0.20, "to_client")])
def test_random_loss_rate(peers, proxies, loss, direction):
    """n = 3000: the loss fraction is Binomial(n, p)/n with sd
    sqrt(p(1-p)/n) <= 0.0073 for p <= 0.2, so +-0.03 is beyond 4 sd."""
    echo = peers(echo=True)
    client = peers()
    proxy = proxies(echo)
    getattr(proxy, direction).set(loss=loss)
    n = 3000
    send_paced(client, at(proxy), n, pps=10000, size=200)
    s = settle(proxy, n, [(echo, "to_server", 0), (client, "to_client", 0)])
    lane, other = s[direction], s["to_client" if direction == "to_server" else "to_server"]
    assert lane["packets_in"] == n
    observed = lane["dropped"]["random"] / n
    assert abs(observed - loss) < 0.03, observed
    assert lane["dropped_total"] == lane["dropped"]["random"]
    assert other["dropped_total"] == 0
    # What the proxy counts is what the endpoints see.
    assert len(client.received) == n - lane["dropped"]["random"]


def test_gilbert_elliott_gives_longer_loss_runs(peers, proxies):
    """Same average loss (10 %): random loss vs Gilbert-Elliott with
    p = 0.02, r = 0.18 (P(bad) = p/(p+r) = 0.1, mean bad run 1/r = 5.6).
    Random loss runs are geometric with mean 1/(1-0.1) = 1.11 (about 360 runs
    in 4000 packets: sd of the mean ~0.02).  GE gives about 72 runs of mean
    5.6 (sd of the mean ~0.6), and its loss fraction has sd ~0.014 (the
    correlation 1-p-r = 0.8 inflates the binomial variance 9-fold)."""
    n = 4000
    results = {}
    for name, settings in (("random", {"loss": 0.10}), ("ge", {"ge_p": 0.02, "ge_r": 0.18})):
        sink = peers()
        client = peers()
        proxy = proxies(sink, seed=7)
        proxy.to_server.set(**settings)
        send_paced(client, at(proxy), n, pps=10000, size=100)
        s = settle(proxy, n, [(sink, "to_server", 0)])
        runs = loss_runs(sink.seqs(), n)
        assert sum(runs) == s["to_server"]["dropped_total"]
        results[name] = (sum(runs) / n, statistics.mean(runs), max(runs), s["to_server"]["dropped"])
    (r_loss, r_mean, r_max, r_drop), (g_loss, g_mean, g_max, g_drop) = results["random"], results["ge"]
    assert r_drop["burst"] == 0 and g_drop["random"] == 0
    assert abs(r_loss - 0.10) < 0.03, r_loss
    assert abs(g_loss - 0.10) < 0.05, g_loss
    assert r_mean < 1.25, r_mean
    assert g_mean > 3.0, g_mean
    assert g_mean > 2.5 * r_mean and g_max > r_max, results


def test_gilbert_elliott_partial_loss_in_states(peers, proxies):
    """ge_loss_bad < 1 and ge_loss_good > 0: stationary loss is
    P(bad)*0.5 + P(good)*0.01 = 0.5*0.5 + 0.5*0.01 = 0.255 with p = r = 0.1.
    With n = 3000 and correlation 0.8 the sd is about 0.024; allow 0.08."""
    sink = peers()
    client = peers()
    proxy = proxies(sink, seed=3)
    proxy.to_server.set(ge_p=0.1, ge_r=0.1, ge_loss_bad=0.5, ge_loss_good=0.01)
    n = 3000
    send_paced(client, at(proxy), n, pps=10000, size=100)
    s = settle(proxy, n, [(sink, "to_server", 0)])
    assert abs(s["to_server"]["dropped"]["burst"] / n - 0.255) < 0.08, s["to_server"]


@pytest.mark.parametrize("dist", ["uniform", "normal"])
def test_delay_jitter_bounds_and_fifo(peers, proxies, dist):
    """delay 30 ms, jitter 10 ms.  Uniform: every one-way delay lies in
    [20, 40] ms (+ a few ms of scheduling slack on top, none below: the proxy
    never releases early).  Normal: sigma 10 clipped at 3 sigma -> [0, 60].
    Without reordering, arrival order equals sending order."""
    sink = peers()
    client = peers()
    proxy = proxies(sink, seed=11, trace=1000)
    proxy.to_server.set(delay=30, jitter=10, jitter_dist=dist)
    n = 200
    send_paced(client, at(proxy), n, pps=400, size=300)
    s = settle(proxy, n, [(sink, "to_server", 0)])
    assert s["to_server"]["dropped_total"] == 0 and s["to_server"]["reordered"] == 0
    assert sink.seqs() == list(range(n)), "jitter without reordering must keep FIFO order"
    lo, hi = (20.0, 40.0) if dist == "uniform" else (0.0, 60.0)
    # The model, exactly: the schedule the proxy computed.
    trace = proxy.trace()
    assert len(trace) == n and all(r["fate"] == "forwarded" for r in trace)
    planned = [(r["scheduled"] - r["arrived"]) * 1000 for r in trace]
    assert lo - 1e-6 <= min(planned) and max(planned) <= hi + 1e-6, (min(planned), max(planned))
    assert all(a["scheduled"] <= b["scheduled"] for a, b in zip(trace, trace[1:])), "FIFO schedule"
    assert max(planned) - min(planned) > 5.0, "jitter had no visible effect"
    # What really happened, on the sink's clock: never early, late by at most the slack.
    d = sink.one_way_ms()
    assert min(d) >= lo - 0.05, min(d)
    assert max(d) <= hi + SLACK_MS, (max(d), s["to_server"]["release_late_ms"])
    assert lo < statistics.median(d) < hi + SLACK_MS, statistics.median(d)


def test_reordering_makes_packets_overtake(peers, proxies):
    """reorder 0.1 with a 10 ms hold-back at 4000 packets/s: each held packet
    is overtaken by ~40 later ones.  The number held is Binomial(1000, 0.1):
    mean 100, sd 9.5, so 60..140 is beyond 4 sd."""
    sink = peers()
    client = peers()
    proxy = proxies(sink, seed=5)
    proxy.to_server.set(delay=2, reorder=0.1, reorder_delay=10)
    n = 1000
    send_paced(client, at(proxy), n, pps=4000, size=200)
    s = settle(proxy, n, [(sink, "to_server", 0)])
    held = s["to_server"]["reordered"]
    assert 60 <= held <= 140, held
    seqs = sink.seqs()
    assert sorted(seqs) == list(range(n)), "reordering must not lose packets"
    late = late_arrivals(seqs)
    # Only a packet held near the very end may find nobody to overtake it.
    assert held - 10 <= late <= held, (late, held)


def test_rate_cap_limits_throughput_and_queue_drops(peers, proxies):
    """500 kbit/s (62 500 B/s) offered 1000 kbit/s of 1200-byte datagrams for
    0.8 s: the link stays busy, so arrivals are spaced by the serialization
    time and throughput is within 10 % of the cap; the 20 000-byte default
    queue (100 ms of 500 kbit/s is less than the 20 KB floor) drops the rest."""
    sink = peers()
    client = peers()
    proxy = proxies(sink)
    proxy.to_server.set(rate=500)
    assert proxy.to_server.queue_limit_bytes == 20_000
    n, size = 83, 1200
    t0 = time.monotonic()
    send_paced(client, at(proxy), n, pps=1_000_000 / 8 / size, size=size)
    send_time = time.monotonic() - t0
    s = settle(proxy, n, [(sink, "to_server", 0)])
    up = s["to_server"]
    times = [t for t, _, _ in sink.received]
    got = len(times)
    kbps = (got - 1) * size * 8 / 1000 / (times[-1] - times[0])
    assert abs(kbps - 500) < 50, f"{kbps:.1f} kbit/s"
    assert up["dropped"]["queue"] > 0 and up["dropped_total"] == up["dropped"]["queue"]
    assert got == n - up["dropped"]["queue"]
    assert up["queue_peak_bytes"] <= 20_000
    # Delivered at most what the link could carry while we sent, plus one full queue.
    assert got * size <= 62_500 * send_time + 20_000 + size, (got, send_time)
    assert up["queue_bytes"] == 0 and up["queue_packets"] == 0   # drained


def test_queue_limit_is_drop_tail(peers, proxies):
    """A burst of 20 x 1200 B into a 6000-byte queue at 500 kbit/s (19.2 ms per
    packet): the first 5 fit (the one in service counts), 15 are dropped,
    and the k-th leaves k serialization times after the burst."""
    sink = peers()
    client = peers()
    proxy = proxies(sink, trace=100)
    proxy.to_server.set(rate=500, queue_limit=6000)
    pad = b"\0" * (1200 - HDR.size)
    t0 = time.monotonic()
    for i in range(20):
        client.sendto(HDR.pack(i, time.monotonic()) + pad, at(proxy))
    s = settle(proxy, 20, [(sink, "to_server", 0)])
    assert s["to_server"]["dropped"]["queue"] == 15
    assert sink.seqs() == [0, 1, 2, 3, 4]
    assert s["to_server"]["queue_peak_bytes"] == 6000
    # Scheduled departures: one serialization time apart, exactly.
    leave = [r["scheduled"] for r in proxy.trace() if r["fate"] == "forwarded"]
    assert len(leave) == 5
    assert all(abs((b - a) * 1000 - 19.2) < 1e-6 for a, b in zip(leave, leave[1:])), leave
    # On the sink's clock: packet k finished serializing (k + 1) * 19.2 ms
    # after its first byte could start, i.e. after t0 -- never earlier.
    after = [(t - t0) * 1000 for t, _, _ in sink.received]
    for k, a in enumerate(after):
        assert (k + 1) * 19.2 - 0.1 <= a <= (k + 1) * 19.2 + SLACK_MS, (after, s["to_server"]["release_late_ms"])


def test_settings_change_mid_run(peers, proxies):
    """Loss, black hole, restore and delay changed while the flow runs."""
    echo = peers(echo=True)
    client = peers()
    proxy = proxies(echo, trace=200)
    dest = at(proxy)
    sent = 0

    def phase(k: int) -> dict:
        nonlocal sent
        send_paced(client, dest, k, pps=2000, size=200, first_seq=sent)
        sent += k
        return settle(proxy, sent, [(echo, "to_server", 0), (client, "to_client", 0)])

    s = phase(200)
    assert len(client.received) == 200

    # 50 % loss towards the server: Binomial(200, 0.5) has sd 7, so 60..140 is > 5 sd.
    proxy.to_server.set(loss=0.5)
    s = phase(200)
    assert 60 <= s["to_server"]["dropped"]["random"] <= 140

    # Cut the cable towards the client: the echo still hears, the client does not.
    proxy.to_server.clear()
    proxy.to_client.blackhole()
    before = len(client.received), len(echo.received)
    s = phase(200)
    assert len(echo.received) == before[1] + 200
    assert len(client.received) == before[0]
    assert s["to_client"]["dropped"]["blackhole"] == 200

    # Restore: everything flows again.
    proxy.to_client.restore()
    before = len(client.received)
    phase(200)
    assert len(client.received) == before + 200

    # Add 40 ms towards the client: round trips jump by 40 ms.
    proxy.to_client.set(delay=40)
    before = len(client.received)
    phase(100)
    planned = [(r["scheduled"] - r["arrived"]) * 1000 for r in proxy.trace()[-200:] if r["direction"] == "to_client"]
    assert len(planned) == 100 and all(abs(p - 40.0) < 1e-6 for p in planned), planned[:5]
    rtts = client.one_way_ms()[before:]
    assert len(rtts) == 100 and min(rtts) >= 40.0 and max(rtts) < 40.0 + SLACK_MS, (min(rtts), max(rtts))

    # A black hole also swallows packets already in flight (40 ms of delay).
    before = len(client.received)
    base = proxy.stats()["to_client"]["packets_in"]
    send_paced(client, dest, 20, pps=2000, size=200, first_seq=sent)
    sent += 20
    wait_for(lambda: proxy.stats()["to_client"]["packets_in"] == base + 20,
             what="echoes to reach the proxy")
    proxy.to_client.blackhole()
    s = settle(proxy, sent, [(echo, "to_server", 0), (client, "to_client", 0)])
    assert len(client.received) == before
    assert s["to_client"]["dropped"]["blackhole"] == 220


def test_two_clients_get_distinct_flows(peers, proxies):
    """Each client source address gets its own upstream socket, and replies
    find their way back to the client they belong to."""
    echo = peers(echo=True, reply=lambda data, src: data + f"|{src[0]}:{src[1]}".encode())
    a, b = peers(), peers()
    proxy = proxies(echo)
    for i in range(20):
        a.sendto(b"A%02d" % i, at(proxy))
        b.sendto(b"B%02d" % i, at(proxy))
    s = settle(proxy, 40, [(echo, "to_server", 0)])
    wait_for(lambda: len(a.received) == 20 and len(b.received) == 20, what="both clients' replies")
    assert proxy.stats()["to_client"]["packets_forwarded"] == 40
    seen = {src for _, _, src in echo.received}
    assert len(seen) == 2, seen
    assert a.addr not in seen and b.addr not in seen and (LOCAL, proxy.port) not in seen
    flows = {f["client"]: f["upstream_local"] for f in proxy.flows()}
    assert set(flows) == {a.addr, b.addr}
    assert set(flows.values()) == seen
    for peer, tag in ((a, b"A"), (b, b"B")):
        upstream = flows[peer.addr]
        for _, data, src in peer.received:
            assert src == (LOCAL, proxy.port)            # replies come from the listening socket
            assert data.startswith(tag), data
            assert data.endswith(f"|{upstream[0]}:{upstream[1]}".encode()), data
    assert s["flows"] == 2


def test_stop_releases_ports_and_thread(peers):
    echo = peers(echo=True)
    client = peers()
    proxy = ImpairmentProxy(upstream=echo.addr, seed=1)
    with proxy:
        assert proxy.running
        client.sendto(b"x" * 20, at(proxy))
        wait_for(lambda: len(client.received) == 1, what="the echo")
        listen_port = proxy.port
        upstream_port = proxy.flows()[0]["upstream_local"][1]
        thread = proxy._thread
    assert thread is not None and not thread.is_alive()
    assert not proxy.running
    proxy.stop()                      # idempotent
    for port in (listen_port, upstream_port):
        s = socket.socket(socket.AF_INET, socket.SOCK_DGRAM)
        try:
            s.bind((LOCAL, port))     # would raise EADDRINUSE if the proxy still held it
        finally:
            s.close()
    assert proxy.stats()["to_server"]["packets_forwarded"] == 1
    with pytest.raises(RuntimeError):
        proxy.start()


def test_seed_makes_runs_reproducible(peers, proxies):
    """Same seed and same packets -> the same packets lost; another seed differs."""
    outcomes = []
    for seed in (42, 42, 43):
        sink = peers()
        client = peers()
        proxy = proxies(sink, seed=seed)
        proxy.to_server.set(loss=0.3, ge_p=0.05, ge_r=0.3)
        send_paced(client, at(proxy), 300, pps=10000, size=64)
        settle(proxy, 300, [(sink, "to_server", 0)])
        outcomes.append(sink.seqs())
    assert outcomes[0] == outcomes[1]
    assert outcomes[0] != outcomes[2]


def test_settings_are_validated():
    imp = Impairment()
    with pytest.raises(ValueError):
        imp.set(loss=1.5)
    with pytest.raises(ValueError):
        imp.set(delay=-1)
    with pytest.raises(ValueError):
        imp.set(jitter_dist="pareto")
    with pytest.raises(TypeError):
        imp.set(lossy=0.1)
    assert imp.settings == Impairment().settings       # failed sets change nothing
    imp.set(rate=1000)
    assert imp.queue_limit_bytes == 20_000             # 100 ms of 1000 kbit/s = 12 500 < 20 KB floor
    imp.set(rate=8000)
    assert imp.queue_limit_bytes == 100_000            # 100 ms of 8 Mbit/s
    imp.set(rate=0)
    assert imp.queue_limit_bytes is None and imp.settings["rate"] is None
    assert set(DROP_REASONS) >= {"random", "burst", "queue", "blackhole"}


async def test_usable_from_asyncio(peers):
    """`async with` in an asyncio test, with an asyncio datagram endpoint as the client."""
    echo = peers(echo=True)
    loop = asyncio.get_running_loop()
    got: asyncio.Queue[bytes] = asyncio.Queue()

    class Client(asyncio.DatagramProtocol):
        def datagram_received(self, data, addr):
            got.put_nowait(data)

    async with ImpairmentProxy(upstream=echo.addr, seed=2) as proxy:
        proxy.to_client.set(delay=20)
        transport, _ = await loop.create_datagram_endpoint(Client, local_addr=(LOCAL, 0))
        try:
            t0 = time.monotonic()
            transport.sendto(b"ping", (LOCAL, proxy.port))
            assert await asyncio.wait_for(got.get(), 2) == b"ping"
            assert time.monotonic() - t0 >= 0.020
        finally:
            transport.close()
    assert not proxy.running
    assert proxy._listen is not None and proxy._listen.fileno() == -1          # closed
    assert all(f["upstream_local"] for f in proxy.flows()) and all(
        fl.sock.fileno() == -1 for fl in proxy._flows.values())


def test_cli(peers):
    """The command line: prints the listening address, forwards with the
    requested impairment, and prints stats on SIGTERM."""
    echo = peers(echo=True)
    client = peers()
    proc = subprocess.Popen(
        [sys.executable, str(HERE / "udp_proxy.py"), "--upstream", f"{LOCAL}:{echo.addr[1]}",
         "--listen", f"{LOCAL}:0", "--to-client-delay", "25", "--loss", "0", "--seed", "1"],
        stdout=subprocess.PIPE, stderr=subprocess.PIPE, text=True)
    try:
        line = proc.stdout.readline().strip()
        assert line.startswith(f"listening {LOCAL}:"), line
        port = int(line.rsplit(":", 1)[1])
        client.sendto(HDR.pack(0, time.monotonic()), (LOCAL, port))
        wait_for(lambda: len(client.received) == 1, what="the echo through the CLI proxy")
        assert client.one_way_ms()[0] >= 25.0
        proc.send_signal(signal.SIGTERM)
        out, err = proc.communicate(timeout=10)
    finally:
        if proc.poll() is None:
            proc.kill()
            proc.communicate()
    assert proc.returncode == 0, err
    stats_line = [ln for ln in out.splitlines() if ln.startswith("stats ")][-1]
    stats = json.loads(stats_line[len("stats "):])
    assert stats["to_server"]["packets_forwarded"] == 1
    assert stats["to_client"]["packets_forwarded"] == 1
