"""Smoke test of `parley bench stun` (issue 5 benchmark): a short run against
coturn and against Parley's own TURN server must end with the summary line in
its documented format. Fails when coturn is missing (`make deps` installs it)."""

from __future__ import annotations

import re
import subprocess

from conftest import PARLEY_BIN, require_tools

require_tools("turnserver")

STUN_LINE = re.compile(r"^stun: (parley \d+ resp/s, )?coturn (\d+) resp/s(, ratio (\d+\.\d\d|n/a))?$")


def run_bench(*args: str, timeout: float = 30) -> list[str]:
    proc = subprocess.run([str(PARLEY_BIN), "bench", *args], capture_output=True, text=True, timeout=timeout)
    assert proc.returncode == 0, f"exit {proc.returncode}\nstdout:\n{proc.stdout}\nstderr:\n{proc.stderr}"
    return proc.stdout.strip().splitlines()


def test_bench_stun_coturn_summary_line():
    lines = run_bench("stun", "--target", "coturn", "--duration", "2", "--sockets", "8", "--window", "4")
    summary = lines[-1]
    m = STUN_LINE.match(summary)
    assert m, f"unexpected summary line: {summary!r}"
    assert "parley" not in summary and "ratio" not in summary
    assert int(m.group(2)) > 0, summary
    # One progress line per measured second, and the per-server detail line.
    assert sum(1 for l in lines if l.startswith("t=") and " coturn stun: " in l) == 2
    detail = [l for l in lines if l.startswith("coturn stun: ")]
    assert detail and " invalid 0 " in detail[0], lines


def test_bench_stun_parley_summary_line():
    summary = run_bench("stun", "--target", "parley", "--duration", "2", "--sockets", "8", "--window", "4")[-1]
    assert re.match(r"^stun: parley \d+ resp/s$", summary), summary


def test_bench_stun_rejects_unknown_target():
    proc = subprocess.run([str(PARLEY_BIN), "bench", "stun", "--target", "pion"], capture_output=True, text=True, timeout=10)
    assert proc.returncode != 0
    assert "--target must be parley, coturn or both" in proc.stderr


TURN_LINE = re.compile(r"^turn 1200B: parley (\d+) msg/s loss (\d+\.\d\d)%$")


def test_bench_turn_parley_relays_a_low_rate_without_loss():
    """Two relay pairs at 2000 then 4000 msg/s: lossless on any machine, so
    the summary carries a real rate; the allocation-weighing line too."""
    lines = run_bench("turn", "--target", "parley", "--pairs", "2", "--allocations", "20", "--step", "0.5",
                      "--max-steps", "2", "--start-rate", "2000", "--quiet", timeout=60)
    turn = [l for l in lines if l.startswith("turn 1200B: ")]
    assert turn, lines
    m = TURN_LINE.match(turn[0])
    assert m, turn[0]
    assert int(m.group(1)) >= 2000 and m.group(2) == "0.00", turn[0]
    assert any(l.startswith("turn rss/allocation: parley ") for l in lines), lines


def test_bench_stun_parley_without_gso():
    lines = run_bench("stun", "--target", "parley", "--duration", "1", "--sockets", "4", "--window", "4",
                      "--parley-no-gso")
    assert any("with --no-turn-gso" in l for l in lines), lines
    assert re.match(r"^stun: parley \d+ resp/s$", lines[-1]), lines[-1]
