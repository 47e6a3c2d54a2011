// Parley call page: log in over /ws, call a user or a group through the SFU.
//
// Wire contract: PROTOCOL.md (Calls); this server's choices: docs/PROTOCOL.md.
// Each call uses two peer connections: `pub` (we offer, the SFU answers, our
// camera/microphone/screen go up) and `sub` (the SFU offers, we answer, the
// others' tracks come down). `tracks` frames name the user and source of each
// m-section (`mid`) of the subscribe connection.

const $ = (id) => document.getElementById(id);

const session = { ws: null, loggedIn: false, user: null, iceServers: [], nextId: 1, pending: new Map() };
let call = null;       // the call we are in (or ringing out), see newCall()
let incoming = null;   // {call_id, caller, media, groupname} while ringing in
let lastError = null;
let lastCall = { callId: null, state: "idle", endReason: null, firstFrameAt: null, callStartedAt: null };

// ---------------------------------------------------------------- signaling

function connect() {
  if (session.ws && session.ws.readyState <= WebSocket.OPEN) return session.ready;
  const proto = location.protocol === "https:" ? "wss" : "ws";
  const ws = new WebSocket(`${proto}://${location.host}/ws`);
  session.ws = ws;
  session.ready = new Promise((resolve, reject) => {
    ws.onopen = () => resolve();
    ws.onerror = () => reject(new Error("WebSocket failed"));
  });
  ws.onmessage = (ev) => {
    let frame;
    try { frame = JSON.parse(ev.data); } catch { return; }
    onFrame(frame);
  };
  ws.onclose = () => {
    for (const p of session.pending.values()) p.reject(new Error("connection closed"));
    session.pending.clear();
    if (call) endCall("disconnected");
    session.loggedIn = false;
    session.ws = null;
    showError("Connection to the server closed.");
    render();
  };
  return session.ready;
}

function send(obj) {
  const frame = { request_id: `r${session.nextId++}`, ...obj };
  session.ws.send(JSON.stringify(frame));
  return frame.request_id;
}

/** Sends a request; resolves with the first frame echoing its request_id (rejects on `error`). */
function request(obj) {
  return new Promise((resolve, reject) => {
    const rid = send(obj);
    session.pending.set(rid, { resolve, reject });
  });
}

function onFrame(f) {
  const waiter = f.request_id && session.pending.get(f.request_id);
  if (waiter) session.pending.delete(f.request_id);
  if (f.type === "error") {
    lastError = { code: f.code, reason: f.reason, request_id: f.request_id ?? null };
    showError(`${f.code}: ${f.reason}`);
    if (waiter) waiter.reject(Object.assign(new Error(f.reason), { code: f.code }));
    return;
  }
  if (waiter) waiter.resolve(f);
  const handler = handlers[f.type];
  if (handler) handler(f);
}

const handlers = {
  call_incoming(f) {
    if (call || incoming) { send({ type: "call_reject", call_id: f.call_id, reason: "busy" }); return; }
    incoming = f;
    lastCall = { ...lastCall, callId: f.call_id, state: "incoming", endReason: null };
    render();
    // Tests measure call setup without a person (or Selenium) clicking Accept.
    if (window.parleyCall.autoAccept) acceptCall();
  },
  call_accepted(f) {
    if (call && call.id === f.call_id) { call.state = "active"; call.peers = f.participants || []; render(); }
  },
  call_joined(f) {
    if (call && call.id === f.call_id) {
      call.state = "active";
      if (!call.peers.includes(f.user)) call.peers.push(f.user);
      call.acceptedAt ??= performance.now();
      setStatus(`${f.user} joined`);
      render();
    }
  },
  call_left(f) {
    if (call && call.id === f.call_id) {
      call.peers = call.peers.filter((u) => u !== f.user);
      setStatus(`${f.user} left`);
      render();
    }
  },
  call_ended(f) {
    if (incoming && incoming.call_id === f.call_id) {
      incoming = null;
      lastCall = { ...lastCall, state: "ended", endReason: f.reason };
    }
    if (call && call.id === f.call_id) endCall(f.reason);
    render();
  },
  subscribe_offer(f) {
    if (call && call.id === f.call_id) call.subChain = call.subChain.then(() => answerSubscribe(f.sdp)).catch(fail);
  },
  tracks(f) {
    if (!call || call.id !== f.call_id) return;
    call.remote = new Map(f.tracks.filter((t) => t.mid != null).map((t) => [String(t.mid), t]));
    renderTiles();
  },
};

// ---------------------------------------------------------------- accounts

async function login(register) {
  const username = $("username").value.trim().toLowerCase();
  const password = $("password").value;
  clearError();
  try {
    await connect();
    if (register) {
      const r = await request({ type: "register", username, password });
      if (r.status !== "register_success") { showError(`Registration failed: ${r.reason}`); return; }
    }
    const r = await request({ type: "login", username, password });
    if (r.status !== "login_success") { showError(`Login failed: ${r.reason}`); return; }
    session.loggedIn = true;
    session.user = r.user?.username ?? username;
    session.iceServers = r.ice_servers ?? [];
    render();
  } catch (e) { fail(e); }
}

// ---------------------------------------------------------------- calls

function newCall(target) {
  return {
    id: null, state: "calling", target, group: null, peers: [], pub: null, sub: null,
    pubChain: Promise.resolve(), subChain: Promise.resolve(),
    local: null, screen: null,                    // MediaStreams
    senders: {},                                  // source -> RTCRtpTransceiver on pub
    remote: new Map(),                            // mid -> tracks entry
    tiles: new Map(),                             // mid -> {el, media, track, stats}
    audioMuted: false, videoOff: false,
    callStartedAt: performance.now(), acceptedAt: null, firstFrameAt: null,
    statsTimer: null,
    timeline: [],                                 // [name, ms since callStartedAt], first time each
  };
}

/** Notes when a setup step first happened (shown to tests: where call setup time goes). */
function mark(c, name) {
  if (c && !c.timeline.some(([n]) => n === name)) c.timeline.push([name, Math.round(performance.now() - c.callStartedAt)]);
}

async function startCall() {
  if (call || !session.loggedIn) return;
  const kind = $("target-kind").value;
  const name = $("target").value.trim().toLowerCase();
  if (!name) return;
  clearError();
  const c = call = newCall(name);
  if (kind === "groupname") c.group = name;
  c.media = getLocalMedia(["audio", "video"]);
  render();
  let started;
  try {
    started = await request({ type: "call_start", [kind]: name, media: ["audio", "video"] });
  } catch (e) {
    if (call === c) endCall(e.code ?? "failed");
    setStatus(`Call failed: ${e.message}`);
    render();
    return;
  }
  if (call !== c) { send({ type: "call_end", call_id: started.call_id }); return; }   // hung up meanwhile
  c.id = started.call_id;
  if (c.state === "calling") c.state = "ringing";
  render();
  // The caller is in the call from call_started on: publish right away.
  await publish().catch(fail);
}

async function acceptCall() {
  if (!incoming) return;
  const f = incoming;
  incoming = null;
  call = newCall(f.groupname ?? f.caller);
  call.group = f.groupname ?? null;
  call.id = f.call_id;
  call.state = "connecting";
  call.media = getLocalMedia(f.media ?? ["audio", "video"]);
  render();
  try {
    await request({ type: "call_accept", call_id: f.call_id });
    call.acceptedAt = performance.now();
    await publish();
  } catch (e) { if (call) endCall(e.code ?? "failed"); fail(e); }
  render();
}

function rejectCall() {
  if (!incoming) return;
  send({ type: "call_reject", call_id: incoming.call_id });
}

function hangUp() {
  if (!call) return;
  if (call.id) send({ type: "call_end", call_id: call.id });
  else endCall("hangup");
  render();
}

function endCall(reason) {
  const c = call;
  if (!c) return;
  call = null;
  clearInterval(c.statsTimer);
  for (const pc of [c.pub, c.sub]) if (pc) pc.close();
  for (const s of [c.local, c.screen]) s?.getTracks().forEach((t) => t.stop());
  c.media?.then((s) => s?.getTracks().forEach((t) => t.stop()));
  for (const tile of c.tiles.values()) tile.el.remove();
  $("tiles").replaceChildren();
  lastCall = { callId: c.id, state: "ended", endReason: reason, firstFrameAt: c.firstFrameAt,
               callStartedAt: c.callStartedAt, acceptedAt: c.acceptedAt };
  setStatus(`Call ended: ${reason}`);
}

async function getLocalMedia(media) {
  const want = { audio: media.includes("audio"), video: media.includes("video") ? { width: { ideal: 640 }, height: { ideal: 480 } } : false };
  try {
    return await navigator.mediaDevices.getUserMedia(want);
  } catch (e) {
    showError(`Camera/microphone unavailable (${e.name}); trying the microphone alone.`);
    try { return await navigator.mediaDevices.getUserMedia({ audio: true }); } catch { return null; }
  }
}

function newPeerConnection() {
  return new RTCPeerConnection({ iceServers: session.iceServers, bundlePolicy: "max-bundle" });
}

/** Restricts a transceiver to VP8 (+RTX) or Opus, the codecs the SFU forwards. */
function preferCodecs(transceiver, kind) {
  const want = kind === "video" ? ["video/vp8", "video/rtx"] : ["audio/opus"];
  const caps = RTCRtpSender.getCapabilities(kind)?.codecs ?? [];
  const codecs = caps.filter((c) => want.includes(c.mimeType.toLowerCase()));
  try { if (codecs.length) transceiver.setCodecPreferences(codecs); } catch (e) { console.warn("setCodecPreferences", e); }
}

async function publish() {
  const c = call;
  if (!c || c.pub) return;
  const stream = await c.media;
  if (call !== c) { stream?.getTracks().forEach((t) => t.stop()); return; }
  mark(c, "local media");
  c.local = stream;
  const pc = c.pub = newPeerConnection();
  watchConnection(pc, "publish");
  if (stream) {
    for (const track of stream.getTracks()) {
      const t = pc.addTransceiver(track, { direction: "sendonly", streams: [stream] });
      preferCodecs(t, track.kind);
      c.senders[track.kind === "audio" ? "microphone" : "camera"] = t;
    }
    addLocalTile(c, "camera", stream);
  }
  if (!c.statsTimer) c.statsTimer = setInterval(() => refreshStats(c), 1000);
  if (pc.getTransceivers().length) await negotiatePublish(c);
  render();
}

/** One publish_offer at a time; `before(mid)` hooks run after the offer has mids, before it is sent. */
function negotiatePublish(c, before) {
  c.pubChain = c.pubChain.then(async () => {
    const pc = c.pub;
    if (call !== c || !pc) return;
    await pc.setLocalDescription(await pc.createOffer());
    before?.();
    const answer = await request({ type: "publish_offer", call_id: c.id, sdp: pc.localDescription.sdp });
    if (call !== c || pc.signalingState === "closed") return;
    mark(c, "publish answer");
    await pc.setRemoteDescription({ type: "answer", sdp: answer.sdp });
  });
  return c.pubChain;
}

async function answerSubscribe(sdp) {
  const c = call;
  if (!c) return;
  if (!c.sub) {
    c.sub = newPeerConnection();
    watchConnection(c.sub, "subscribe");
    c.sub.ontrack = () => renderTiles();
    if (!c.statsTimer) c.statsTimer = setInterval(() => refreshStats(c), 1000);
  }
  const pc = c.sub;
  mark(c, "subscribe offer");
  await pc.setRemoteDescription({ type: "offer", sdp });
  await pc.setLocalDescription(await pc.createAnswer());
  if (call !== c) return;
  send({ type: "subscribe_answer", call_id: c.id, sdp: pc.localDescription.sdp });
  renderTiles();
}

function watchConnection(pc, name) {
  pc.onconnectionstatechange = () => {
    const c = call;
    if (!c || (c.pub !== pc && c.sub !== pc)) return;
    if (pc.connectionState === "connected") mark(c, `${name} connected`);
    if (pc.connectionState === "failed") {
      setStatus(`${name} connection failed, restarting ICE`);
      if (name === "subscribe") send({ type: "ice_restart", call_id: c.id, pc: "subscribe" });
      else { pc.restartIce(); negotiatePublish(c).catch(fail); }
    }
    render();
  };
}

// ---------------------------------------------------------------- local controls

function toggleMute() {
  const c = call, t = c?.senders.microphone;
  if (!t?.sender.track) return;
  c.audioMuted = !c.audioMuted;
  t.sender.track.enabled = !c.audioMuted;
  if (t.mid) send({ type: "publish_track", call_id: c.id, mid: t.mid, source: "microphone", muted: c.audioMuted });
  render();
}

function toggleCamera() {
  const c = call, t = c?.senders.camera;
  if (!t?.sender.track) return;
  c.videoOff = !c.videoOff;
  t.sender.track.enabled = !c.videoOff;
  if (t.mid) send({ type: "publish_track", call_id: c.id, mid: t.mid, source: "camera", muted: c.videoOff });
  render();
}

async function toggleScreen() {
  const c = call;
  if (!c?.pub) return;
  if (c.screen) { stopScreen(c); return; }
  let stream;
  try {
    stream = await navigator.mediaDevices.getDisplayMedia({ video: true, audio: false });
  } catch (e) { showError(`Screen sharing refused (${e.name})`); return; }
  if (call !== c) { stream.getTracks().forEach((t) => t.stop()); return; }
  const track = stream.getVideoTracks()[0];
  c.screen = stream;
  track.addEventListener("ended", () => { if (call === c && c.screen === stream) stopScreen(c); });
  let t = c.senders.screen;
  if (t) {                                   // reuse the m-section of an earlier share
    await t.sender.replaceTrack(track);
    t.direction = "sendonly";
  } else {
    t = c.pub.addTransceiver(track, { direction: "sendonly", streams: [stream] });
    preferCodecs(t, "video");
    c.senders.screen = t;
  }
  addLocalTile(c, "screen", stream);
  render();
  // The mid exists once the offer is set locally; label it before the offer goes out.
  await negotiatePublish(c, () => send({ type: "publish_track", call_id: c.id, mid: t.mid, source: "screen" })).catch(fail);
}

function stopScreen(c) {
  const t = c.senders.screen;
  c.screen?.getTracks().forEach((tr) => tr.stop());
  c.screen = null;
  removeTile(c, "local-screen");
  if (t) {
    t.sender.replaceTrack(null);
    t.direction = "inactive";
    negotiatePublish(c).catch(fail);
  }
  render();
}

// ---------------------------------------------------------------- tiles and stats

function makeTile(key, kind, local) {
  const el = $("tile-template").content.firstElementChild.cloneNode(true);
  el.dataset.key = key;
  el.classList.add(kind, ...(local ? ["local"] : []));
  const media = document.createElement(kind === "video" ? "video" : "audio");
  media.autoplay = true;
  media.playsInline = true;
  if (kind === "video") media.muted = true;   // audio plays from the audio tiles
  el.querySelector(".media").append(media);
  if (kind === "audio") {
    const face = document.createElement("div");
    face.className = "face";
    face.setAttribute("aria-hidden", "true");
    const meter = document.createElement("meter");
    meter.min = 0; meter.max = 1; meter.value = 0;
    meter.setAttribute("aria-label", "audio level");
    el.querySelector(".media").append(face, meter);
  }
  // Order on the page (and for screen readers): own previews, remote videos, remote audio.
  const grid = $("tiles");
  const tiles = [...grid.children];
  const before = local ? tiles.find((t) => !t.classList.contains("local"))
    : kind === "video" ? tiles.find((t) => t.classList.contains("audio")) : null;
  grid.insertBefore(el, before ?? null);
  return { el, media, kind, track: null, stats: {}, firstFrameAt: null };
}

function addLocalTile(c, source, stream) {
  const key = `local-${source}`;
  removeTile(c, key);
  const tile = makeTile(key, "video", true);
  tile.media.srcObject = stream;
  tile.el.querySelector(".user").textContent = `You (${session.user})`;
  tile.el.querySelector(".source").textContent = source;
  tile.el.querySelector(".stats").textContent = "local preview";
  c.tiles.set(key, tile);
}

function removeTile(c, key) {
  const tile = c.tiles.get(key);
  if (tile) { tile.el.remove(); c.tiles.delete(key); }
}

/** Makes the remote tiles match the subscribe connection and the last `tracks` list. */
function renderTiles() {
  const c = call;
  if (!c) return;
  const live = new Map();
  for (const t of c.sub?.getTransceivers() ?? []) {
    const dir = t.currentDirection;
    if (t.mid == null || !c.remote.has(t.mid) || !(dir === "recvonly" || dir === "sendrecv")) continue;
    live.set(t.mid, t);
  }
  for (const [key, tile] of c.tiles) {
    if (!key.startsWith("local-") && !live.has(key)) removeTile(c, key);
  }
  for (const [mid, t] of live) {
    const info = c.remote.get(mid);
    let tile = c.tiles.get(mid);
    if (tile && tile.kind !== t.receiver.track.kind) { removeTile(c, mid); tile = null; }
    if (!tile) {
      tile = makeTile(mid, t.receiver.track.kind, false);
      c.tiles.set(mid, tile);
    }
    if (tile.track !== t.receiver.track) {
      tile.track = t.receiver.track;
      tile.media.srcObject = new MediaStream([tile.track]);
      tile.media.play().catch(() => {});
      if (tile.kind === "video") watchFirstFrame(c, tile);
    }
    tile.info = info;
    tile.el.querySelector(".user").textContent = info.user;
    tile.el.querySelector(".source").textContent = info.source;
    tile.el.querySelector(".flag").textContent = info.muted ? "(muted)" : "";
    tile.el.setAttribute("aria-label", `${info.user} ${info.source}`);
    if (tile.kind === "audio") tile.el.querySelector(".face").textContent = (info.user[0] ?? "?").toUpperCase();
  }
}

function watchFirstFrame(c, tile) {
  const v = tile.media;
  const seen = () => {
    const now = performance.now();
    tile.firstFrameAt ??= now;
    if (call === c) { c.firstFrameAt ??= now; mark(c, "first frame"); }
  };
  if ("requestVideoFrameCallback" in v) v.requestVideoFrameCallback(seen);
  else v.addEventListener("loadeddata", seen, { once: true });
}

async function refreshStats(c) {
  if (call !== c || !c.sub) return;
  let report;
  try { report = await c.sub.getStats(); } catch { return; }
  const byMid = new Map();
  report.forEach((s) => {
    if (s.type !== "inbound-rtp" || s.mid == null) return;
    const prev = byMid.get(s.mid);
    if (!prev || (s.lastPacketReceivedTimestamp ?? 0) >= (prev.lastPacketReceivedTimestamp ?? 0)) byMid.set(s.mid, s);
  });
  if (call !== c) return;
  c.subscribePath = selectedPath(report);
  for (const [key, tile] of c.tiles) {
    if (key.startsWith("local-")) continue;
    const s = byMid.get(key);
    if (!s) continue;
    tile.stats = {
      framesDecoded: s.framesDecoded ?? 0, frameWidth: s.frameWidth ?? 0, frameHeight: s.frameHeight ?? 0,
      framesPerSecond: s.framesPerSecond ?? 0, packetsLost: s.packetsLost ?? 0, jitter: s.jitter ?? 0,
      totalSamplesReceived: s.totalSamplesReceived ?? 0, audioLevel: s.audioLevel ?? 0,
    };
    const st = tile.stats;
    if (tile.kind === "video" && st.framesDecoded > 0) {
      tile.firstFrameAt ??= performance.now();   // if no frame callback fired
      c.firstFrameAt ??= tile.firstFrameAt;
    }
    const jitter = `jitter ${(st.jitter * 1000).toFixed(1)} ms`;
    tile.el.querySelector(".stats").textContent = tile.kind === "video"
      ? `${st.frameWidth}×${st.frameHeight} · ${Math.round(st.framesPerSecond)} fps · ${st.framesDecoded} frames decoded · lost ${st.packetsLost} · ${jitter}`
      : `${st.totalSamplesReceived} samples · lost ${st.packetsLost} · ${jitter}`;
    if (tile.kind === "audio") tile.el.querySelector("meter").value = Math.min(1, st.audioLevel * 4);
  }
}

/** "host udp 192.0.2.1 -> 127.0.0.1:50000": the candidate pair ICE selected, for diagnostics. */
function selectedPath(report) {
  let path = null;
  report.forEach((t) => {
    if (t.type !== "transport" || !t.selectedCandidatePairId) return;
    const pair = report.get(t.selectedCandidatePairId);
    const l = pair && report.get(pair.localCandidateId), r = pair && report.get(pair.remoteCandidateId);
    if (l && r) path = `${l.candidateType} ${l.protocol} ${l.address}:${l.port} -> ${r.address}:${r.port}`;
  });
  return path;
}

// ---------------------------------------------------------------- page state

function setStatus(text) { $("call-status").textContent = text; }
function showError(text) { const e = $("error"); e.textContent = text; e.hidden = false; }
function clearError() { $("error").hidden = true; $("error").textContent = ""; }
function fail(e) {
  console.error(e);
  lastError = { code: e?.code ?? "client", reason: String(e?.message ?? e), request_id: null };
  showError(String(e?.message ?? e));
}

function callState() { return call ? call.state : lastCall.state; }

function render() {
  $("who").textContent = session.loggedIn ? `Logged in as ${session.user}` : "Not logged in";
  $("login-panel").hidden = session.loggedIn;
  $("call-panel").hidden = !session.loggedIn;
  $("call-form").hidden = !!call || !!incoming;
  $("incoming").hidden = !incoming;
  if (incoming) {
    $("incoming-text").textContent = incoming.groupname
      ? `${incoming.caller} is calling group ${incoming.groupname}` : `${incoming.caller} is calling you`;
  }
  $("controls").hidden = !call;
  if (call) {
    const names = call.peers.filter((u) => u !== session.user);
    const text = {
      calling: `Calling ${call.target}…`, ringing: `Ringing ${call.target}…`, connecting: "Joining the call…",
      active: call.group ? `In group call ${call.group}` + (names.length ? ` with ${names.join(", ")}` : "")
        : `In call with ${names.length ? names.join(", ") : call.target}`,
    }[call.state] ?? call.state;
    const media = [call.pub?.connectionState, call.sub?.connectionState].filter(Boolean);
    setStatus(media.length ? `${text} (media: ${media.join(" / ")})` : text);
    toggle("mute-btn", call.audioMuted, "Unmute microphone", "Mute microphone");
    toggle("camera-btn", call.videoOff, "Turn camera on", "Turn camera off");
    toggle("screen-btn", !!call.screen, "Stop sharing", "Share screen");
    $("screen-btn").disabled = !call.pub;
  } else if (incoming) {
    setStatus("Incoming call");
  }
}

function toggle(id, on, onText, offText) {
  const b = $(id);
  b.setAttribute("aria-pressed", String(on));
  b.textContent = on ? onText : offText;
}

// ---------------------------------------------------------------- wiring

$("login-form").addEventListener("submit", (e) => { e.preventDefault(); login(false); });
$("register-btn").addEventListener("click", () => { if ($("login-form").reportValidity()) login(true); });
$("call-form").addEventListener("submit", (e) => { e.preventDefault(); startCall(); });
$("accept-btn").addEventListener("click", acceptCall);
$("reject-btn").addEventListener("click", rejectCall);
$("hangup-btn").addEventListener("click", hangUp);
$("mute-btn").addEventListener("click", toggleMute);
$("camera-btn").addEventListener("click", toggleCamera);
$("screen-btn").addEventListener("click", toggleScreen);
setInterval(render, 1000);   // connection states change without events we show
render();

/** Test hook: everything the end-to-end test needs, without scraping the DOM. */
window.parleyCall = {
  /** Accept incoming calls at once (for timing call setup in tests). */
  autoAccept: false,
  state() {
    const c = call;
    const tracks = c ? [...c.tiles.entries()].filter(([k]) => !k.startsWith("local-")).map(([mid, t]) => ({
      mid, user: t.info?.user ?? null, kind: t.kind, source: t.info?.source ?? null, muted: !!t.info?.muted,
      track_id: t.info?.track_id ?? null,
      framesDecoded: t.stats.framesDecoded ?? 0, totalSamplesReceived: t.stats.totalSamplesReceived ?? 0,
      frameWidth: t.stats.frameWidth ?? 0, frameHeight: t.stats.frameHeight ?? 0,
      framesPerSecond: t.stats.framesPerSecond ?? 0, packetsLost: t.stats.packetsLost ?? 0,
      jitter: t.stats.jitter ?? 0, firstFrameAt: t.firstFrameAt,
    })) : [];
    return {
      loggedIn: session.loggedIn, user: session.user,
      callId: c ? c.id : lastCall.callId, callState: callState(),
      endReason: c ? null : lastCall.endReason,
      incoming: incoming ? { callId: incoming.call_id, caller: incoming.caller } : null,
      peers: c ? [...c.peers] : [],
      subscribePath: c?.subscribePath ?? null,
      publishState: c?.pub?.connectionState ?? null, subscribeState: c?.sub?.connectionState ?? null,
      sharing: !!c?.screen, audioMuted: !!c?.audioMuted, videoOff: !!c?.videoOff,
      tracks, lastError,
      firstFrameAt: c ? c.firstFrameAt : lastCall.firstFrameAt,
      callStartedAt: c ? c.callStartedAt : lastCall.callStartedAt,
      acceptedAt: c ? c.acceptedAt : lastCall.acceptedAt ?? null,
      timeline: c ? [...c.timeline] : [],
    };
  },
};
