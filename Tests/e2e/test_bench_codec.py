"""`parley bench codec` smoke: a short VP8 + Opus run against the real tools.

Checks the scriptable summary lines (docs in README, "Codec benchmark") and
that vpxenc/vpxdec/opusenc/opusdec really ran: their figures and the ratios
are present and positive.
"""

from __future__ import annotations

import csv
import re
import subprocess
import time

import pytest

from conftest import PARLEY_BIN, require_tools

NUM = r"(\d+\.\d)"
VIDEO = re.compile(
    rf"^vp8 (encode|decode) 320x240@30 (\d+)kbps: parley {NUM} fps, (vpxenc|vpxdec) {NUM} fps, ratio (\d+\.\d{{3}})$"
)
AUDIO = re.compile(
    rf"^opus (encode|decode) 48000Hz stereo 64kbps: parley {NUM}x realtime, (opusenc|opusdec) {NUM}x realtime, ratio (\d+\.\d{{3}})$"
)

require_tools("vpxenc", "vpxdec", "opusenc", "opusdec")


def test_bench_codec_summary_lines(tmp_path):
    csv_path = tmp_path / "codec.csv"
    started = time.monotonic()
    proc = subprocess.run(
        [str(PARLEY_BIN), "bench", "codec", "--codec", "both", "--width", "320", "--height", "240",
         "--frames", "30", "--seconds", "2", "--repeat", "1", "--csv", str(csv_path)],
        capture_output=True, text=True, timeout=60,
    )
    elapsed = time.monotonic() - started
    assert proc.returncode == 0, proc.stderr
    assert elapsed < 30, f"took {elapsed:.1f}s"
    lines = proc.stdout.splitlines()

    video = [m for m in map(VIDEO.match, lines) if m]
    audio = [m for m in map(AUDIO.match, lines) if m]
    assert {(m.group(1), m.group(4)) for m in video} == {("encode", "vpxenc"), ("decode", "vpxdec")}, proc.stdout
    assert {(m.group(1), m.group(3)) for m in audio} == {("encode", "opusenc"), ("decode", "opusdec")}, proc.stdout
    for m in video:
        parley, tool, ratio = float(m.group(3)), float(m.group(5)), float(m.group(6))
        assert parley > 0 and tool > 0
        assert ratio == pytest.approx(parley / tool, rel=0.02, abs=0.002)
    for m in audio:
        parley, tool, ratio = float(m.group(2)), float(m.group(4)), float(m.group(5))
        assert parley > 0 and tool > 0
        assert ratio == pytest.approx(parley / tool, rel=0.02, abs=0.002)

    # Quality lines for both sides, with plausible values.
    q = [l for l in lines if l.startswith("vp8 quality ")]
    assert len(q) == 1 and "vpxenc PSNR-Y" in q[0], proc.stdout
    psnrs = [float(x) for x in re.findall(r"PSNR-Y (\d+\.\d+) dB", q[0])]
    assert len(psnrs) == 2 and all(20 < p < 100 for p in psnrs)
    aq = [l for l in lines if l.startswith("opus quality ")]
    assert len(aq) == 1 and "opusenc SNR" in aq[0], proc.stdout

    # No progress-bar escape codes in stdout.
    assert "\x1b" not in proc.stdout and "\r" not in proc.stdout

    rows = list(csv.DictReader(csv_path.open()))
    assert [r["codec"] for r in rows] == ["vp8", "opus"]
    assert float(rows[0]["vpxenc_process_cpu_fps"]) > 0
    assert float(rows[1]["opusenc_process_cpu_rt"]) > 0
