"""A call between two real Chromiums on Parley's call page (`/call`).

Two headless Chromium instances (two WebDriver sessions, fake camera,
microphone and screen) open the page the server serves, log in through its
form, and A calls B through the SFU; B accepts. Both pages must decode the
other's video (framesDecoded rising) and receive its audio
(totalSamplesReceived rising), read from the page's `window.parleyCall`
test hook. A's mute and camera toggles must reach B as `muted` in `tracks`.
Then A shares its screen and B must get a track labelled `screen` (from the
server's `tracks` frame) whose frames are decoded; stopping the share must
leave no dead tile; then A hangs up and B sees the call end. Neither page
may get an `error` frame or log a console error (CSP violations included).
Screenshots of both pages go to Tests/e2e/output/ (made at run time).
"""

from __future__ import annotations

import asyncio
import time
from concurrent.futures import ThreadPoolExecutor
from pathlib import Path

from browser import CallPage, require_browser, wait_for
from conftest import PASSWORD, Harness

OUTPUT = Path(__file__).resolve().parent / "output"


async def _register(server, n: int) -> list[str]:
    h = Harness(server)
    try:
        return [(await h.user(f"br{i}", online=False)).name for i in range(n)]
    finally:
        await h.close_all()


def _track(state: dict, user: str, source: str) -> dict | None:
    return next((t for t in state["tracks"] if t["user"] == user and t["source"] == source), None)


def wait_rising(checks: list[tuple[CallPage, str, str, str]], timeout: float = 30.0) -> dict:
    """Reads each (page, user, source, field) twice, at least a second apart, and wants every one to grow.

    Returns {(page name, user, source, field): (first, second)}."""
    def values() -> dict:
        states = {p.name: p.state() for p, *_ in checks}
        out = {}
        for p, user, source, field in checks:
            t = _track(states[p.name], user, source)
            out[p.name, user, source, field] = t[field] if t else 0
        return out

    def describe(what: str, got: dict) -> str:
        return f"{what}: {got}\n" + "\n".join(p.diagnostics() for p in {c[0] for c in checks})

    box: dict = {}

    def first() -> bool:
        box["v0"] = values()
        return all(v > 0 for v in box["v0"].values())

    wait_for(first, timeout, "every track's first frames/samples",
             describe=lambda: describe("values", box.get("v0")))
    v0, t0 = box["v0"], time.monotonic()

    def rising() -> bool:
        box["v1"] = values()
        return time.monotonic() - t0 >= 1.0 and all(box["v1"][k] > v0[k] for k in v0)

    wait_for(rising, timeout, "every track's counters rising",
             describe=lambda: describe(f"first read {v0}, now", box.get("v1")))
    return {k: (v0[k], box["v1"][k]) for k in v0}


def _in_parallel(*calls) -> list:
    """Runs the calls on threads (one per browser) and returns their results; re-raises the first error."""
    with ThreadPoolExecutor(len(calls)) as pool:
        futures = [pool.submit(c) for c in calls]
    errors = [f.exception() for f in futures if f.exception()]
    if errors:
        raise errors[0]
    return [f.result() for f in futures]


def test_two_chromiums_call_share_screen_and_hang_up(server):
    require_browser()
    t_begin = time.monotonic()
    phases: list[tuple[str, float]] = []

    def phase(name: str) -> None:
        phases.append((name, time.monotonic() - t_begin))
    a_name, b_name = asyncio.run(_register(server, 2))
    pages: list[CallPage] = []
    try:
        # Two separate browsers, started side by side.
        with ThreadPoolExecutor(2) as pool:
            futures = [pool.submit(CallPage, label, server.base_url) for label in ("A", "B")]
        errors = [f.exception() for f in futures if f.exception()]
        pages += [f.result() for f in futures if not f.exception()]   # quit in `finally` even if one failed
        if errors:
            raise errors[0]
        a, b = pages
        phase("browsers started")
        def enter(page: CallPage, name: str):
            page.open()
            return page.login(name, PASSWORD)

        _in_parallel(lambda: enter(a, a_name), lambda: enter(b, b_name))

        phase("logged in")
        # A calls B; B accepts.
        a.type("target", b_name)
        a.click("call-btn")
        ringing = b.wait(lambda s: s["callState"] == "incoming", "call_incoming")
        assert ringing["incoming"]["caller"] == a_name, ringing
        b.click("accept-btn")
        sa = a.wait(lambda s: s["callState"] == "active", "call active (call_joined)")
        call_id = sa["callId"]
        sb = b.wait(lambda s: s["callState"] == "active" and s["callId"] == call_id, "call active (call_accepted)")
        assert set(sb["peers"]) == {a_name, b_name}, sb

        phase("call active")
        # Both sides decode the other's camera and play its microphone.
        media = wait_rising([(a, b_name, "camera", "framesDecoded"), (a, b_name, "microphone", "totalSamplesReceived"),
                             (b, a_name, "camera", "framesDecoded"), (b, a_name, "microphone", "totalSamplesReceived")])
        for page, other in ((a, b_name), (b, a_name)):
            s = page.state()
            cam = _track(s, other, "camera")
            assert cam["kind"] == "video" and cam["frameWidth"] > 0 and cam["frameHeight"] > 0, cam
            assert _track(s, other, "microphone")["kind"] == "audio", s["tracks"]
        # The caller's first decoded remote frame, measured on its page.
        sa = a.state()
        assert sa["firstFrameAt"] and sa["callStartedAt"], sa
        first_frame_ms = sa["firstFrameAt"] - sa["callStartedAt"]
        accepted_ms = sa["firstFrameAt"] - sa["acceptedAt"] if sa.get("acceptedAt") else None
        sb = b.state()
        callee_ms = sb["firstFrameAt"] - sb["callStartedAt"]
        paths = {p.name: p.state()["subscribePath"] for p in pages}
        shots = [a.screenshot(OUTPUT / "call-a.png"), b.screenshot(OUTPUT / "call-b.png")]

        phase("media flowing")
        # Mute and camera toggles reach B as `tracks` updates (publish_track {muted}).
        for button, source in (("mute-btn", "microphone"), ("camera-btn", "camera")):
            a.click(button)
            b.wait(lambda s: (_track(s, a_name, source) or {}).get("muted") is True, f"{source} muted")
            a.click(button)
            b.wait(lambda s: (_track(s, a_name, source) or {}).get("muted") is False, f"{source} unmuted")

        phase("toggles")
        # A shares its screen: B gets a `screen` track and decodes it.
        a.click("screen-btn")
        a.wait(lambda s: s["sharing"], "screen sharing on")
        # The camera keeps flowing next to the screen.
        sharing = wait_rising([(b, a_name, "screen", "framesDecoded"), (b, a_name, "camera", "framesDecoded")])
        screen = _track(b.state(), a_name, "screen")
        assert screen["kind"] == "video" and screen["frameWidth"] > 0, screen
        shots += [a.screenshot(OUTPUT / "screen-a.png"), b.screenshot(OUTPUT / "screen-b.png")]

        phase("screen decoded")
        # A stops the share: B's screen tile goes away (its m-section turns inactive).
        a.click("screen-btn")
        sb = b.wait(lambda s: _track(s, a_name, "screen") is None, "screen tile gone after the share stopped")
        assert sorted((t["user"], t["source"]) for t in sb["tracks"]) == [(a_name, "camera"), (a_name, "microphone")], \
            sb["tracks"]

        phase("share stopped")
        # A hangs up; B sees the call end.
        a.click("hangup-btn")
        eb = b.wait(lambda s: s["callState"] == "ended", "call_ended")
        assert eb["endReason"] == "hangup" and eb["callId"] == call_id, eb
        ea = a.wait(lambda s: s["callState"] == "ended", "own call_ended")
        assert ea["endReason"] == "hangup", ea
        assert eb["tracks"] == [] and ea["tracks"] == [], (ea, eb)

        phase("ended")
        # Call setup without anyone clicking: B accepts as soon as it rings.
        b.driver.execute_script("window.parleyCall.autoAccept = true")
        a.click("call-btn")
        a.wait(lambda s: s["callState"] == "active" and s["firstFrameAt"], "first frame of the auto-accepted call")
        st = a.state()
        auto_ms = st["firstFrameAt"] - st["callStartedAt"]
        timelines = {"caller": st["timeline"], "callee": b.state()["timeline"]}
        a.click("hangup-btn")
        b.wait(lambda s: s["callState"] == "ended", "second call ended")
        a.wait(lambda s: s["callState"] == "ended", "own second call ended")
        # No error frame reached either page, and its console has no errors (none from the CSP either).
        for page, st in ((a, ea), (b, eb)):
            assert st["lastError"] is None, (page.name, st["lastError"], page.diagnostics(st))
            severe = [m["message"] for m in page.logs() if m.get("level") == "SEVERE"]
            assert not severe, (page.name, severe)

        print(f"\nchromium call_start -> first decoded frame: {auto_ms:.0f} ms (callee accepting at once); "
              f"{first_frame_ms:.0f} ms with Selenium clicking Accept")
        if accepted_ms is not None:
            print(f"chromium caller: call_joined -> first decoded frame: {accepted_ms:.0f} ms")
        print(f"chromium callee: call_accept -> first decoded frame: {callee_ms:.0f} ms")
        print("media, first and second read (page: user/source field): "
              + ", ".join(f"{p}: {u[:6]}…/{src} {fld} {v}" for (p, u, src, fld), v in media.items())
              + "; during the share: "
              + ", ".join(f"{p}: {u[:6]}…/{src} {fld} {v}" for (p, u, src, fld), v in sharing.items())
              + f", screen at {screen['frameWidth']}x{screen['frameHeight']}")
        print(f"subscribe ICE paths: {paths}")
        print(f"auto-accepted call setup (ms since each side's start): {timelines}")
        print("screenshots: " + " ".join(str(p) for p in shots))
        print("phases (s since start): " + ", ".join(f"{n} {t:.1f}" for n, t in phases))
        print(f"browser test took {time.monotonic() - t_begin:.1f} s")
    except Exception:
        print("\n".join(p.diagnostics() for p in pages))
        print("server log tail:\n" + server.log_tail(40))
        raise
    finally:
        for page in pages:
            try:
                page.quit()
            except Exception:
                pass
