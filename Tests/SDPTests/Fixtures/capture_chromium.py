"""Capture real Chromium SDP offers for the SDP tests, and check Swift-made answers in Chromium.

Usage (root, Debian `chromium` + `chromium-driver`, PyPI `selenium` in a venv):
  python capture_chromium.py capture          # writes chromium_*.sdp next to this file
  python capture_chromium.py verify PKGDIR    # fresh offers -> `swift test` in PKGDIR makes answers
                                              # -> setRemoteDescription in Chromium; prints results

The page is served from 127.0.0.1 on an ephemeral port (a secure context, so
getUserMedia works with the fake devices).
"""
import http.server, json, os, pathlib, subprocess, sys, tempfile, threading
from selenium import webdriver
from selenium.webdriver.chrome.service import Service

HERE = pathlib.Path(__file__).resolve().parent

PAGE = r"""<!doctype html><html><body><script>
window.pcs = {};
function gathered(pc) {
  return new Promise(resolve => {
    if (pc.iceGatheringState === 'complete') return resolve();
    const t = setTimeout(resolve, 4000);
    pc.addEventListener('icegatheringstatechange', () => {
      if (pc.iceGatheringState === 'complete') { clearTimeout(t); resolve(); }
    });
  });
}
const scenarios = {
  // (1) one audio and one video track from getUserMedia
  async audio_video(pc) {
    const s = await navigator.mediaDevices.getUserMedia({audio: true, video: {width: 640, height: 480}});
    s.getTracks().forEach(t => pc.addTrack(t, s));
  },
  // (2) video simulcast with three rids
  async simulcast(pc) {
    const s = await navigator.mediaDevices.getUserMedia({video: {width: 1280, height: 720}});
    pc.addTransceiver(s.getVideoTracks()[0], {direction: 'sendonly', streams: [s], sendEncodings: [
      {rid: 'q', scaleResolutionDownBy: 4.0}, {rid: 'h', scaleResolutionDownBy: 2.0}, {rid: 'f'}]});
  },
  // (3) a datachannel plus audio
  async datachannel_audio(pc) {
    const s = await navigator.mediaDevices.getUserMedia({audio: true});
    s.getTracks().forEach(t => pc.addTrack(t, s));
    pc.createDataChannel('chat');
  },
  // (4) receive-only (a viewer of a screen share): recvonly video + audio
  async recvonly(pc) {
    pc.addTransceiver('video', {direction: 'recvonly'});
    pc.addTransceiver('audio', {direction: 'recvonly'});
  },
};
window.makeOffer = async function(name) {
  const pc = new RTCPeerConnection();
  await scenarios[name](pc);
  await pc.setLocalDescription(await pc.createOffer());
  await gathered(pc);
  window.pcs[name] = pc;
  return pc.localDescription.sdp;
};
window.answerSubscriberOffer = async function(sdp) {
  const pc = new RTCPeerConnection();
  try {
    await pc.setRemoteDescription({type: 'offer', sdp});
    await pc.setLocalDescription(await pc.createAnswer());
    window.pcs.subscriber = pc;
    return {ok: true, sdp: pc.localDescription.sdp,
            transceivers: pc.getTransceivers().map(t => ({mid: t.mid, direction: t.direction, currentDirection: t.currentDirection,
              kind: t.receiver.track.kind}))};
  } catch (e) { return {ok: false, error: String(e)}; }
};
window.applyAnswer = async function(name, sdp) {
  const pc = window.pcs[name];
  try {
    await pc.setRemoteDescription({type: 'answer', sdp});
    return {ok: true, signalingState: pc.signalingState,
            transceivers: pc.getTransceivers().map(t => ({mid: t.mid, currentDirection: t.currentDirection,
              // negotiated codecs: the sender's for sending m-sections, else the receiver's
              codecs: ((t.currentDirection === 'recvonly' ? t.receiver : t.sender).getParameters().codecs || []).map(c => c.mimeType + '/' + c.payloadType),
              rids: (t.sender.getParameters().encodings || []).map(e => e.rid).filter(r => r)})),
            sctp: pc.sctp ? pc.sctp.state : null};
  } catch (e) { return {ok: false, error: String(e)}; }
};
</script></body></html>"""

NAMES = ["audio_video", "simulcast", "datachannel_audio", "recvonly"]


def serve(directory):
    handler = lambda *a, **k: http.server.SimpleHTTPRequestHandler(*a, directory=directory, **k)
    srv = http.server.ThreadingHTTPServer(("127.0.0.1", 0), handler)
    threading.Thread(target=srv.serve_forever, daemon=True).start()
    return srv


def browser():
    opts = webdriver.ChromeOptions()
    opts.binary_location = "/usr/bin/chromium"
    for a in ["--headless=new", "--no-sandbox", "--disable-dev-shm-usage", "--disable-gpu",
              "--use-fake-ui-for-media-stream", "--use-fake-device-for-media-stream"]:
        opts.add_argument(a)
    # Explicit driver path: Selenium Manager must never try to download one (no internet here).
    d = webdriver.Chrome(service=Service("/usr/bin/chromedriver"), options=opts)
    d.set_script_timeout(30)
    return d


def call(d, fn, *args):
    js = "const cb = arguments[arguments.length - 1]; window[%s](...Array.from(arguments).slice(0, -1)).then(cb, e => cb({ok:false,error:String(e)}));" % json.dumps(fn)
    return d.execute_async_script(js, *args)


def main():
    mode = sys.argv[1] if len(sys.argv) > 1 else "capture"
    tmp = tempfile.TemporaryDirectory()
    www = tmp.name
    pathlib.Path(www, "page.html").write_text(PAGE)
    srv = serve(www)
    d = browser()
    ok_all = True
    try:
        d.get("http://127.0.0.1:%d/page.html" % srv.server_address[1])
        print("browser", d.capabilities.get("browserVersion"))
        offers = {n: call(d, "makeOffer", n) for n in NAMES}
        if mode == "capture":
            for n, sdp in offers.items():
                path = HERE / ("chromium_%s.sdp" % n)
                path.write_bytes(sdp.encode())
                print("wrote", path, len(sdp), "bytes")
        elif mode == "verify":
            pkg = sys.argv[2]
            live = pathlib.Path(pkg, "live"); live.mkdir(exist_ok=True)
            for n, sdp in offers.items():
                (live / ("offer-%s.sdp" % n)).write_bytes(sdp.encode())
                ans = live / ("answer-%s.sdp" % n)
                if ans.exists(): ans.unlink()
            for stale in ("subscriber-offer.sdp", "subscriber-answer.sdp", "subscriber-read.txt"):
                if (live / stale).exists(): (live / stale).unlink()
            env = dict(os.environ, SDP_LIVE_DIR=str(live))
            r = subprocess.run(["swift", "test", "--filter", "LiveBrowserAnswer"], cwd=pkg, env=env,
                               capture_output=True, text=True)
            print(r.stdout[-1500:], r.stderr[-1500:])
            sub = call(d, "answerSubscriberOffer", (live / "subscriber-offer.sdp").read_text())
            print("subscriber offer -> chromium answer:", json.dumps({k: v for k, v in sub.items() if k != "sdp"}))
            ok_all = ok_all and sub.get("ok", False)
            if sub.get("ok"):
                (live / "subscriber-answer.sdp").write_bytes(sub["sdp"].encode())
                r = subprocess.run(["swift", "test", "--filter", "LiveBrowserAnswer"], cwd=pkg, env=env,
                                   capture_output=True, text=True)
                read = live / "subscriber-read.txt"
                print("swift readSubscriberAnswer:", read.read_text().strip() if read.exists() else "FAILED\n" + r.stdout[-1500:])
                ok_all = ok_all and read.exists() and r.returncode == 0
            for n in NAMES:
                ans = live / ("answer-%s.sdp" % n)
                if not ans.exists():
                    print(n, "NO ANSWER"); ok_all = False; continue
                res = call(d, "applyAnswer", n, ans.read_text())
                print(n, json.dumps(res))
                ok_all = ok_all and res.get("ok", False)
            print("CHROMIUM ACCEPTED ALL ANSWERS" if ok_all else "CHROMIUM REJECTED AN ANSWER")
    finally:
        d.quit(); srv.shutdown(); tmp.cleanup()
    return 0 if ok_all else 1


if __name__ == "__main__":
    sys.exit(main())
