#!/usr/bin/env python3
"""A userspace UDP impairment proxy for the end-to-end tests.

This machine's kernel has no netem, so tests that need a bad network put this
proxy between one WebRTC peer (aiortc or Chromium) and the server's single UDP
media port.  The peer is told to use the proxy's listening address instead of
the server's; ICE/STUN, DTLS, RTP and RTCP all share the flow and the proxy
never parses them.

Flows
    One listening socket.  Each distinct client source address seen on it gets
    its own upstream socket (bound to ``upstream_bind``:0, connected to the
    server), so the server sees one distinct 5-tuple per client flow.  What the
    server sends to that upstream socket goes back to that client from the
    listening socket.  Flows live until ``stop()``.

Directions
    ``proxy.to_server`` (client -> server) and ``proxy.to_client`` (server ->
    client) are independent :class:`Impairment` objects; change them at any
    time from any thread, e.g. ``proxy.to_client.set(loss=0.2)``.  New settings
    apply to packets that arrive afterwards (packets already in flight keep
    their schedule), except the black hole, which also swallows packets that
    are still in flight when it is switched on (the cable is cut).

Pipeline per direction, in this order
    1. black hole                      -> dropped["blackhole"]
    2. random loss ``loss``            -> dropped["random"]
    3. Gilbert-Elliott burst loss      -> dropped["burst"]   (see below)
    4. bottleneck: ``rate`` kbit/s (1 kbit = 1000 bit) with a drop-tail queue of
       ``queue_limit`` bytes (default: 100 ms of the rate, at least 20 000 B);
       each packet occupies the link for (len + ``overhead``) * 8 / rate and
       leaves when its serialization ends    -> dropped["queue"]
    5. propagation delay ``delay`` ms plus jitter ``jitter`` ms:
       ``jitter_dist="uniform"`` (default) draws uniformly in [-jitter, +jitter];
       ``"normal"`` draws from N(0, jitter^2) clipped to [-3*jitter, +3*jitter].
       The total delay is clipped at 0.  Without reordering the direction is
       FIFO: a packet is never released before the one in front of it (like a
       real link, and like netem with a rate), so with packets spaced closer
       than the jitter the observed delays bunch towards ``delay + jitter``;
       they always stay inside [delay - jitter, delay + jitter] (uniform).
    6. reordering: with probability ``reorder`` a packet is held back an extra
       ``reorder_delay`` ms (default 20) and leaves the FIFO, so later packets
       overtake it.  Plain jitter never reorders.

Gilbert-Elliott
    ``ge_p`` = P(good -> bad), ``ge_r`` = P(bad -> good), evaluated once per
    packet after its fate is drawn; a packet is lost with probability
    ``ge_loss_bad`` (default 1.0) in the bad state and ``ge_loss_good``
    (default 0.0) in the good state.  The model is on when ``ge_p > 0``.
    Stationary P(bad) = p / (p + r); mean bad run = 1 / r packets.

Timing
    One thread runs a select() loop over all sockets plus a heap of release
    times; select() takes a microsecond timeout, so the scheduler has
    sub-millisecond resolution (no sleep per packet).  With nothing set a packet
    is forwarded as soon as the batch it was read in (at most 64) is read.
    Measured on loopback: ~0.13 ms added per traversal at 3000 packets/s of
    1200 B in each direction, no loss up to ~20 000 packets/s per direction.
    The thread shares the GIL with its host process: a host thread that keeps
    the CPU busy in Python code can hold the proxy up by up to the interpreter's
    switch interval (5 ms).  ``release_late_ms`` in the stats shows whether that
    happened; for strict timing run the CLI as its own process.

Tracing
    ``trace=N`` keeps the last N packets' arrival, scheduled and actual send
    times and fate (``proxy.trace()``), to check the model exactly or to see
    what became of a given packet.

Counters (``proxy.stats()``), per direction: packets/bytes in and forwarded,
dropped by reason, reordered, current/peak queue bytes, packets in flight, and
how late the proxy sent packets against their schedule (``release_late_ms``:
its own latency, or a sign that it was starved of CPU/GIL).
Invariant: packets_in == packets_forwarded + dropped_total + in_flight.

Determinism: with ``seed`` each direction draws from its own
``random.Random(f"{seed}:{direction}")``, so the same packet sequence meets
the same losses/delays on every run.

Usable from synchronous code and from asyncio (the loop is its own thread)::

    with ImpairmentProxy(upstream=("127.0.0.1", media_port), seed=1) as proxy:
        proxy.to_client.set(loss=0.05, delay=40, jitter=5)
        peer_uses(("127.0.0.1", proxy.port))

CLI::

    python Tests/e2e/udp_proxy.py --upstream 127.0.0.1:50000 [--listen 127.0.0.1:0]
        [--loss 0.1] [--delay 50 --jitter 10] [--rate 500] [--to-client-loss 0.2] ...

prints ``listening HOST:PORT``, runs until SIGINT/SIGTERM and prints
``stats {json}`` at exit.  Every setting has a both-directions flag and
``--to-server-*`` / ``--to-client-*`` variants that override it.

Standard library only; written for these tests.
"""

from __future__ import annotations

import argparse
import collections
import dataclasses
import heapq
import json
import math
import random
import select
import signal
import socket
import sys
import threading
import time
from typing import Any, Callable

__all__ = ["Impairment", "ImpairmentProxy", "DROP_REASONS", "main"]

DROP_REASONS = ("random", "burst", "queue", "blackhole", "send_error")
MAX_DATAGRAM = 65535
SOCKET_BUFFER = 4 << 20          # 4 MiB kernel buffers (capped by net.core.*mem_max): ride out stalls
READ_BATCH = 64                  # datagrams read from one socket before running the timers
MIN_QUEUE_LIMIT = 20_000         # bytes
QUEUE_LIMIT_SECONDS = 0.100      # default queue: 100 ms worth of the rate
FD_SETSIZE_SAFE = 1000           # above this fd number fall back from select() to poll()


# --------------------------------------------------------------------------
# Settings
# --------------------------------------------------------------------------

@dataclasses.dataclass(frozen=True)
class _Settings:
    loss: float = 0.0
    ge_p: float = 0.0
    ge_r: float = 1.0
    ge_loss_bad: float = 1.0
    ge_loss_good: float = 0.0
    delay: float = 0.0               # ms
    jitter: float = 0.0              # ms
    jitter_dist: str = "uniform"     # "uniform" | "normal"
    reorder: float = 0.0
    reorder_delay: float = 20.0      # ms
    rate: float | None = None        # kbit/s; None/0 = unlimited
    queue_limit: int | None = None   # bytes; None = default for the rate
    overhead: int = 0                # bytes added to each packet by the rate limiter
    blackhole: bool = False

    def validated(self) -> "_Settings":
        for name in ("loss", "ge_p", "ge_r", "ge_loss_bad", "ge_loss_good", "reorder"):
            v = getattr(self, name)
            if not (isinstance(v, (int, float)) and 0.0 <= v <= 1.0):
                raise ValueError(f"{name} must be a probability in [0, 1], got {v!r}")
        for name in ("delay", "jitter", "reorder_delay"):
            v = getattr(self, name)
            if not (isinstance(v, (int, float)) and v >= 0 and math.isfinite(v)):
                raise ValueError(f"{name} must be a non-negative number of ms, got {v!r}")
        if self.jitter_dist not in ("uniform", "normal"):
            raise ValueError(f"jitter_dist must be 'uniform' or 'normal', got {self.jitter_dist!r}")
        if self.rate is not None and not (self.rate >= 0 and math.isfinite(self.rate)):
            raise ValueError(f"rate must be a non-negative kbit/s or None, got {self.rate!r}")
        if self.queue_limit is not None and not (int(self.queue_limit) == self.queue_limit and self.queue_limit > 0):
            raise ValueError(f"queue_limit must be a positive number of bytes or None, got {self.queue_limit!r}")
        if not (int(self.overhead) == self.overhead and self.overhead >= 0):
            raise ValueError(f"overhead must be a non-negative number of bytes, got {self.overhead!r}")
        return self

    @property
    def rate_bytes_per_s(self) -> float:
        return (self.rate or 0.0) * 1000.0 / 8.0

    @property
    def effective_queue_limit(self) -> int | None:
        if not self.rate:
            return None
        if self.queue_limit is not None:
            return int(self.queue_limit)
        return max(MIN_QUEUE_LIMIT, int(self.rate_bytes_per_s * QUEUE_LIMIT_SECONDS))


_FIELDS = tuple(f.name for f in dataclasses.fields(_Settings))


class Impairment:
    """Impairment settings of one direction; thread-safe, changeable any time.

    Keywords (all optional, defaults = no impairment):
      loss          random loss probability
      ge_p, ge_r    Gilbert-Elliott P(good->bad), P(bad->good); on when ge_p > 0
      ge_loss_bad, ge_loss_good   loss probability in the bad / good state (1.0 / 0.0)
      delay, jitter ms; jitter_dist "uniform" (+-jitter) or "normal" (sigma=jitter, clipped at 3 sigma)
      reorder       probability of an extra ``reorder_delay`` ms (default 20) that lets later packets overtake
      rate          bandwidth cap in kbit/s (None or 0 = none)
      queue_limit   drop-tail limit of the bottleneck queue in bytes (default max(20000, 100 ms of rate))
      overhead      bytes the rate limiter adds to each datagram (e.g. 28 for IPv4+UDP); default 0
      blackhole     True drops everything, including packets already in flight
    """

    def __init__(self, **settings: Any) -> None:
        self._lock = threading.Lock()
        self._cfg = _Settings()
        self.set(**settings)

    def set(self, **settings: Any) -> "Impairment":
        """Change the given settings, keep the others.  Returns self."""
        unknown = set(settings) - set(_FIELDS)
        if unknown:
            raise TypeError(f"unknown impairment setting(s): {', '.join(sorted(unknown))}")
        if "rate" in settings and not settings["rate"]:
            settings["rate"] = None
        with self._lock:
            # One reference swap: the proxy thread reads self._cfg without locking.
            self._cfg = dataclasses.replace(self._cfg, **settings).validated()
        return self

    def clear(self) -> "Impairment":
        """Back to no impairment at all (also restores a black hole)."""
        with self._lock:
            self._cfg = _Settings()
        return self

    def blackhole(self) -> "Impairment":
        """Cut the cable: drop everything in this direction until restore()."""
        return self.set(blackhole=True)

    def restore(self) -> "Impairment":
        """Undo blackhole(); the other settings stay as they were."""
        return self.set(blackhole=False)

    @property
    def settings(self) -> dict[str, Any]:
        return dataclasses.asdict(self._cfg)

    @property
    def queue_limit_bytes(self) -> int | None:
        """The drop-tail limit in force (None without a rate)."""
        return self._cfg.effective_queue_limit

    def __repr__(self) -> str:
        default = _Settings()
        changed = {k: v for k, v in dataclasses.asdict(self._cfg).items() if getattr(default, k) != v}
        return f"Impairment({', '.join(f'{k}={v!r}' for k, v in changed.items())})"


# --------------------------------------------------------------------------
# Runtime state
# --------------------------------------------------------------------------

class _Lane:
    """Per-direction runtime state and counters (touched under the proxy lock)."""

    def __init__(self, name: str, imp: Impairment, seed: Any) -> None:
        self.name = name
        self.imp = imp
        self.rng = random.Random(f"{seed}:{name}") if seed is not None else random.Random()
        self.ge_bad = False
        self.link_free_at = 0.0                      # when the bottleneck finishes its backlog
        self.queue: collections.deque[tuple[float, int]] = collections.deque()  # (leaves at, bytes)
        self.queue_bytes = 0
        self.queue_peak = 0
        self.last_release = 0.0                      # FIFO floor for non-reordered packets
        self.packets_in = self.bytes_in = 0
        self.packets_fwd = self.bytes_fwd = 0
        self.dropped = dict.fromkeys(DROP_REASONS, 0)
        self.reordered = 0
        self.in_flight = 0
        self.late_max = 0.0                          # release lateness (s): actual send - scheduled
        self.late_sum = 0.0

    def prune(self, now: float) -> None:
        q = self.queue
        while q and q[0][0] <= now:
            self.queue_bytes -= q.popleft()[1]

    def stats(self, now: float) -> dict[str, Any]:
        self.prune(now)
        return {
            "packets_in": self.packets_in,
            "bytes_in": self.bytes_in,
            "packets_forwarded": self.packets_fwd,
            "bytes_forwarded": self.bytes_fwd,
            "dropped": dict(self.dropped),
            "dropped_total": sum(self.dropped.values()),
            "reordered": self.reordered,
            "in_flight": self.in_flight,
            # How late the proxy itself sent packets against their schedule
            # (starved of CPU or of the GIL); with no impairment, its own latency.
            "release_late_ms": {"max": round(self.late_max * 1000, 3),
                                "mean": round(self.late_sum * 1000 / self.packets_fwd, 3) if self.packets_fwd else 0.0},
            "queue_bytes": self.queue_bytes,
            "queue_packets": len(self.queue),
            "queue_peak_bytes": self.queue_peak,
            "queue_limit": self.imp.queue_limit_bytes,
            "gilbert_state": "bad" if self.ge_bad else "good",
        }


class _Flow:
    __slots__ = ("client", "sock", "fd", "local", "created", "last_seen")

    def __init__(self, client: tuple, sock: socket.socket, now: float) -> None:
        self.client = client
        self.sock = sock
        self.fd = sock.fileno()
        self.local = sock.getsockname()
        self.created = now
        self.last_seen = now


def _family_for(host: str) -> int:
    return socket.AF_INET6 if ":" in host else socket.AF_INET


def _resolve(addr: tuple[str, int], family: int) -> tuple:
    info = socket.getaddrinfo(addr[0], addr[1], family, socket.SOCK_DGRAM)
    return info[0][4]


def _tune(sock: socket.socket) -> None:
    for opt in (socket.SO_RCVBUF, socket.SO_SNDBUF):
        try:
            sock.setsockopt(socket.SOL_SOCKET, opt, SOCKET_BUFFER)
        except OSError:
            pass
    sock.setblocking(False)


# --------------------------------------------------------------------------
# The proxy
# --------------------------------------------------------------------------

class ImpairmentProxy:
    """UDP proxy between WebRTC peers and one upstream UDP port, with impairments.

    ImpairmentProxy(upstream=("127.0.0.1", port), listen=("127.0.0.1", 0),
                    to_server=None, to_client=None, seed=None, upstream_bind="127.0.0.1",
                    trace=0)

    ``start()`` binds and returns the listening port; ``stop()`` closes every
    socket and joins the thread.  Also a (sync or async) context manager.
    ``trace=N`` keeps a record of the last N packets (see ``trace()``).
    """

    def __init__(self, upstream: tuple[str, int], listen: tuple[str, int] = ("127.0.0.1", 0), *,
                 to_server: Impairment | None = None, to_client: Impairment | None = None,
                 seed: Any = None, upstream_bind: str | None = None, trace: int = 0) -> None:
        self.listen_request = (listen[0], int(listen[1]))
        self.family = _family_for(self.listen_request[0])
        self.upstream = _resolve((upstream[0], int(upstream[1])), self.family)
        self.upstream_bind = upstream_bind or ("::1" if self.family == socket.AF_INET6 else "127.0.0.1")
        self.seed = seed
        self.to_server = to_server or Impairment()
        self.to_client = to_client or Impairment()
        self._up = _Lane("to_server", self.to_server, seed)
        self._down = _Lane("to_client", self.to_client, seed)
        self._lock = threading.Lock()
        self._heap: list[tuple] = []
        self._seq = 0
        # Last `trace` packets: [direction, size, arrived, fate, scheduled, sent, held back].
        self._trace: collections.deque[list] | None = collections.deque(maxlen=trace) if trace else None
        self._flows: dict[tuple, _Flow] = {}
        self._by_fd: dict[int, _Flow] = {}
        self._listen: socket.socket | None = None
        self._wake_r: socket.socket | None = None
        self._wake_w: socket.socket | None = None
        self._thread: threading.Thread | None = None
        self._stopping = False
        self._started = False
        self._stopped = False
        self.flow_errors = 0
        self.error: BaseException | None = None
        self.address: tuple | None = None

    # ---------------------------------------------------------------- lifecycle

    def start(self) -> int:
        """Bind the listening socket, start the thread, return the listening port."""
        if self._started:
            raise RuntimeError("ImpairmentProxy.start() called twice (a stopped proxy cannot restart)")
        self._started = True
        listen = socket.socket(self.family, socket.SOCK_DGRAM)
        try:
            listen.bind(self.listen_request)
            _tune(listen)
            self._wake_r, self._wake_w = socket.socketpair()
            self._wake_r.setblocking(False)
        except BaseException:
            listen.close()
            raise
        self._listen = listen
        self.address = listen.getsockname()
        self._thread = threading.Thread(target=self._run, name=f"udp-proxy:{self.port}", daemon=True)
        self._thread.start()
        return self.port

    def stop(self, timeout: float = 5.0) -> None:
        """Stop the thread and close every socket (idempotent).  Packets still
        in flight are discarded.  Re-raises an error that killed the loop."""
        if not self._started or self._stopped:
            return
        self._stopped = True
        self._stopping = True
        if self._wake_w is not None:
            try:
                self._wake_w.send(b"x")
            except OSError:
                pass
        if self._thread is not None:
            self._thread.join(timeout)
            alive = self._thread.is_alive()
        else:
            alive = False
        for flow in list(self._flows.values()):
            flow.sock.close()
        for s in (self._listen, self._wake_r, self._wake_w):
            if s is not None:
                s.close()
        if alive:
            raise RuntimeError("udp proxy thread did not stop")
        if self.error is not None:
            raise RuntimeError(f"udp proxy loop failed: {self.error!r}") from self.error

    @property
    def port(self) -> int:
        if self.address is None:
            raise RuntimeError("proxy not started")
        return self.address[1]

    @property
    def running(self) -> bool:
        return self._thread is not None and self._thread.is_alive() and not self._stopping

    def __enter__(self) -> "ImpairmentProxy":
        self.start()
        return self

    def __exit__(self, *exc: Any) -> None:
        self.stop()

    async def __aenter__(self) -> "ImpairmentProxy":
        self.start()
        return self

    async def __aexit__(self, *exc: Any) -> None:
        self.stop()

    # ---------------------------------------------------------------- convenience

    def set(self, **settings: Any) -> "ImpairmentProxy":
        """Apply the same settings to both directions."""
        self.to_server.set(**settings)
        self.to_client.set(**settings)
        return self

    def clear(self) -> "ImpairmentProxy":
        self.to_server.clear()
        self.to_client.clear()
        return self

    def flows(self) -> list[dict[str, Any]]:
        """Client address -> upstream local address of every flow seen so far."""
        with self._lock:
            return [{"client": f.client, "upstream_local": f.local, "created": f.created, "last_seen": f.last_seen}
                    for f in self._flows.values()]

    def trace(self) -> list[dict[str, Any]]:
        """The last packets seen (needs ``trace=N``), oldest first: direction,
        size, arrived / scheduled / sent (time.monotonic() seconds; scheduled
        is None for a packet dropped before the delay line, sent is None
        unless forwarded), fate ("forwarded", "in_flight" or a drop reason),
        held (held back for reordering)."""
        with self._lock:
            if self._trace is None:
                return []
            keys = ("direction", "size", "arrived", "fate", "scheduled", "sent", "held")
            return [dict(zip(keys, r)) for r in self._trace]

    def stats(self) -> dict[str, Any]:
        with self._lock:
            now = time.monotonic()
            return {
                "listen": f"{self.address[0]}:{self.address[1]}" if self.address else None,
                "upstream": f"{self.upstream[0]}:{self.upstream[1]}",
                "flows": len(self._flows),
                "flow_errors": self.flow_errors,
                "to_server": self._up.stats(now),
                "to_client": self._down.stats(now),
            }

    # ---------------------------------------------------------------- the loop

    def _run(self) -> None:
        try:
            self._loop()
        except BaseException as e:  # surfaced by stop()
            self.error = e

    def _loop(self) -> None:
        listen = self._listen
        assert listen is not None and self._wake_r is not None
        listen_fd = listen.fileno()
        wake_fd = self._wake_r.fileno()
        heap = self._heap
        lock = self._lock
        monotonic = time.monotonic
        fds: list[int] = []
        poller: Any = None
        fd_version = -1

        while not self._stopping:
            # (Re)build the fd set when flows were added.
            if fd_version != len(self._by_fd):
                fd_version = len(self._by_fd)
                fds = [wake_fd, listen_fd, *self._by_fd]
                if max(fds) >= FD_SETSIZE_SAFE:
                    poller = select.poll()
                    for fd in fds:
                        poller.register(fd, select.POLLIN)
                else:
                    poller = None
            if heap:
                timeout: float | None = max(0.0, heap[0][0] - monotonic())
            else:
                timeout = None
            if poller is None:
                ready = select.select(fds, [], [], timeout)[0]
            else:  # millisecond resolution, rounded up
                ms = None if timeout is None else math.ceil(timeout * 1000)
                ready = [fd for fd, _ in poller.poll(ms)]
            with lock:
                for fd in ready:
                    if fd == wake_fd:
                        try:
                            self._wake_r.recv(64)
                        except OSError:
                            pass
                    elif fd == listen_fd:
                        self._read_clients(listen)
                    else:
                        flow = self._by_fd.get(fd)
                        if flow is not None:
                            self._read_server(flow)
                    if heap:
                        self._release(monotonic())
                if heap:
                    self._release(monotonic())

    def _read_clients(self, listen: socket.socket) -> None:
        lane = self._up
        flows = self._flows
        monotonic = time.monotonic
        for _ in range(READ_BATCH):
            try:
                data, addr = listen.recvfrom(MAX_DATAGRAM)
            except (BlockingIOError, InterruptedError):
                return
            except OSError:
                continue
            now = monotonic()
            flow = flows.get(addr)
            if flow is None:
                flow = self._new_flow(addr, now)
                if flow is None:
                    lane.packets_in += 1
                    lane.bytes_in += len(data)
                    lane.dropped["send_error"] += 1
                    continue
            flow.last_seen = now
            self._ingress(lane, data, flow.sock, None, now)

    def _read_server(self, flow: _Flow) -> None:
        lane = self._down
        listen = self._listen
        client = flow.client
        sock = flow.sock
        monotonic = time.monotonic
        for _ in range(READ_BATCH):
            try:
                data = sock.recv(MAX_DATAGRAM)
            except (BlockingIOError, InterruptedError):
                return
            except OSError:      # e.g. ECONNREFUSED from an ICMP error: the server is not there
                continue
            self._ingress(lane, data, listen, client, monotonic())

    def _new_flow(self, client: tuple, now: float) -> _Flow | None:
        sock = socket.socket(self.family, socket.SOCK_DGRAM)
        try:
            sock.bind((self.upstream_bind, 0))
            sock.connect(self.upstream)
            _tune(sock)
        except OSError:
            sock.close()
            self.flow_errors += 1
            return None
        flow = _Flow(client, sock, now)
        self._flows[client] = flow
        self._by_fd[flow.fd] = flow
        return flow

    def _ingress(self, lane: _Lane, data: bytes, sock: socket.socket, dest: tuple | None, now: float) -> None:
        n = len(data)
        lane.packets_in += 1
        lane.bytes_in += n
        fate, t, held = self._schedule(lane, n, now)
        rec = None
        if self._trace is not None:
            rec = [lane.name, n, now, fate or "in_flight", t, None, held]
            self._trace.append(rec)
        if fate is not None:
            lane.dropped[fate] += 1
            return
        self._seq += 1
        lane.in_flight += 1
        heapq.heappush(self._heap, (t, self._seq, lane, sock, dest, data, rec))

    def _schedule(self, lane: _Lane, n: int, now: float) -> tuple[str | None, float | None, bool]:
        """The pipeline: (drop reason or None, release time, held back for reordering)."""
        cfg = lane.imp._cfg
        if cfg.blackhole:
            return "blackhole", None, False
        rng = lane.rng
        if cfg.loss and rng.random() < cfg.loss:
            return "random", None, False
        if cfg.ge_p > 0.0:
            bad = lane.ge_bad
            p_loss = cfg.ge_loss_bad if bad else cfg.ge_loss_good
            lost = p_loss > 0.0 and rng.random() < p_loss
            if bad:
                if rng.random() < cfg.ge_r:
                    lane.ge_bad = False
            elif rng.random() < cfg.ge_p:
                lane.ge_bad = True
            if lost:
                return "burst", None, False
        else:
            lane.ge_bad = False
        t = now
        if cfg.rate:
            lane.prune(now)
            size = n + cfg.overhead
            if lane.queue_bytes + size > cfg.effective_queue_limit:
                return "queue", None, False
            start = lane.link_free_at if lane.link_free_at > now else now
            t = start + size / cfg.rate_bytes_per_s
            lane.link_free_at = t
            lane.queue.append((t, size))
            lane.queue_bytes += size
            if lane.queue_bytes > lane.queue_peak:
                lane.queue_peak = lane.queue_bytes
        if cfg.delay or cfg.jitter:
            d = cfg.delay
            j = cfg.jitter
            if j:
                if cfg.jitter_dist == "uniform":
                    d += rng.uniform(-j, j)
                else:
                    d += max(-3.0 * j, min(3.0 * j, rng.gauss(0.0, j)))
            if d > 0.0:
                t += d / 1000.0
        if lane.last_release > t:
            t = lane.last_release
        if cfg.reorder and rng.random() < cfg.reorder:
            # Held back and out of the FIFO: later packets overtake it.
            lane.reordered += 1
            return None, t + cfg.reorder_delay / 1000.0, True
        lane.last_release = t
        return None, t, False

    def _release(self, now: float) -> None:
        heap = self._heap
        pop = heapq.heappop
        monotonic = time.monotonic
        while heap and heap[0][0] <= now:
            due, _, lane, sock, dest, data, rec = pop(heap)
            lane.in_flight -= 1
            if lane.imp._cfg.blackhole:
                lane.dropped["blackhole"] += 1
                if rec is not None:
                    rec[3] = "blackhole"
                continue
            try:
                if dest is None:
                    sock.send(data)
                else:
                    sock.sendto(data, dest)
            except OSError:
                lane.dropped["send_error"] += 1
                if rec is not None:
                    rec[3] = "send_error"
                continue
            sent = monotonic()
            lane.packets_fwd += 1
            lane.bytes_fwd += len(data)
            late = sent - due
            lane.late_sum += late
            if late > lane.late_max:
                lane.late_max = late
            if rec is not None:
                rec[3] = "forwarded"
                rec[5] = sent


# --------------------------------------------------------------------------
# CLI
# --------------------------------------------------------------------------

def _hostport(text: str) -> tuple[str, int]:
    host, sep, port = text.rpartition(":")
    if not sep or not port.isdigit():
        raise argparse.ArgumentTypeError(f"expected HOST:PORT, got {text!r}")
    host = host.strip("[]") or "127.0.0.1"
    return host, int(port)


# (setting, type, metavar, help)
_CLI_SETTINGS: list[tuple[str, Callable[[str], Any], str, str]] = [
    ("loss", float, "P", "random loss probability"),
    ("ge_p", float, "P", "Gilbert-Elliott P(good->bad); enables the model"),
    ("ge_r", float, "P", "Gilbert-Elliott P(bad->good)"),
    ("ge_loss_bad", float, "P", "loss probability in the bad state (default 1)"),
    ("ge_loss_good", float, "P", "loss probability in the good state (default 0)"),
    ("delay", float, "MS", "one-way delay"),
    ("jitter", float, "MS", "jitter amplitude (uniform +-MS, or sigma for normal)"),
    ("jitter_dist", str, "DIST", "uniform (default) or normal"),
    ("reorder", float, "P", "probability of holding a packet back so later ones overtake it"),
    ("reorder_delay", float, "MS", "extra delay of a reordered packet (default 20)"),
    ("rate", float, "KBPS", "bandwidth cap in kbit/s"),
    ("queue_limit", int, "BYTES", "drop-tail queue limit (default max(20000, 100 ms of rate))"),
    ("overhead", int, "BYTES", "per-packet bytes counted by the rate limiter"),
]


def _parser() -> argparse.ArgumentParser:
    p = argparse.ArgumentParser(
        prog="udp_proxy.py",
        formatter_class=argparse.RawDescriptionHelpFormatter,
        description="UDP impairment proxy: listen, forward to --upstream, impair both directions.\n"
                    "Every setting below also exists as --to-server-SETTING (client->server) and\n"
                    "--to-client-SETTING (server->client), which override the both-directions flag.",
        epilog="examples:\n"
               "  udp_proxy.py --upstream 127.0.0.1:50000 --loss 0.05 --delay 40 --jitter 5\n"
               "  udp_proxy.py --upstream 127.0.0.1:50000 --to-client-rate 500 --to-server-ge-p 0.02 "
               "--to-server-ge-r 0.2\n"
               "  udp_proxy.py --upstream 127.0.0.1:50000 --to-client-blackhole\n"
               "prints 'listening HOST:PORT', runs until SIGINT/SIGTERM, then prints 'stats {json}'.")
    p.add_argument("--upstream", type=_hostport, required=True, metavar="HOST:PORT")
    p.add_argument("--listen", type=_hostport, default=("127.0.0.1", 0), metavar="HOST:PORT")
    p.add_argument("--seed", type=int, default=None)
    p.add_argument("--stats-interval", type=float, default=0.0, metavar="S",
                   help="also print stats every S seconds (0 = only at exit)")
    for prefix, where in (("", "both directions"), ("to-server-", "client->server"),
                          ("to-client-", "server->client")):
        g = p.add_argument_group(where)
        for name, typ, metavar, help_ in _CLI_SETTINGS:
            flag = "--" + prefix + name.replace("_", "-")
            extra = {"choices": ("uniform", "normal")} if name == "jitter_dist" else {}
            g.add_argument(flag, dest=(prefix.replace("-", "_") + name), type=typ, metavar=metavar,
                           default=None, help=help_ if not prefix else argparse.SUPPRESS, **extra)
        g.add_argument("--" + prefix + "blackhole", dest=prefix.replace("-", "_") + "blackhole",
                       action="store_true", default=None,
                       help="drop everything" if not prefix else argparse.SUPPRESS)
    return p


def _settings_from(args: argparse.Namespace, prefix: str) -> dict[str, Any]:
    out: dict[str, Any] = {}
    for name in [n for n, *_ in _CLI_SETTINGS] + ["blackhole"]:
        both = getattr(args, name)
        own = getattr(args, prefix + name)
        value = own if own is not None else both
        if value is not None:
            out[name] = value
    return out


def main(argv: list[str] | None = None) -> int:
    done = threading.Event()

    def on_signal(signum: int, frame: Any) -> None:
        done.set()

    # First thing, so that a signal sent right after launch is not lost.
    signal.signal(signal.SIGINT, on_signal)
    signal.signal(signal.SIGTERM, on_signal)
    args = _parser().parse_args(argv)
    try:
        proxy = ImpairmentProxy(upstream=args.upstream, listen=args.listen, seed=args.seed,
                                to_server=Impairment(**_settings_from(args, "to_server_")),
                                to_client=Impairment(**_settings_from(args, "to_client_")))
    except (ValueError, TypeError) as e:
        print(f"udp_proxy: {e}", file=sys.stderr)
        return 2
    proxy.start()
    print(f"listening {proxy.address[0]}:{proxy.port}", flush=True)
    print(f"upstream {proxy.upstream[0]}:{proxy.upstream[1]} to_server={proxy.to_server!r} "
          f"to_client={proxy.to_client!r}", file=sys.stderr, flush=True)
    interval = args.stats_interval if args.stats_interval and args.stats_interval > 0 else 0.5
    while not done.wait(interval):
        if args.stats_interval:
            print("stats " + json.dumps(proxy.stats()), flush=True)
        if not proxy.running:
            break
    final = proxy.stats()
    rc = 0
    try:
        proxy.stop()
    except RuntimeError as e:
        print(f"udp_proxy: {e}", file=sys.stderr)
        rc = 1
    print("stats " + json.dumps(final), flush=True)
    return rc


if __name__ == "__main__":
    sys.exit(main())
