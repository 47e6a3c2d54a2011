import DTLS
import ICE
import PeerSession
import RTCBase
import RTP
import SDP
@testable import SFU

enum Certificates {
    // Made once: key generation is the slowest part of a handshake.
    static let sfu = try! DTLSCertificate(commonName: "sfu")
    static let client = try! DTLSCertificate(commonName: "client")
}

/// Collects what the engine sends, one array per datagram.
struct CollectingOutput: SFUOutput {
    var datagrams: [(destination: TransportAddress, bytes: [UInt8])] = []

    mutating func send(to destination: TransportAddress, capacity: Int, _ body: (UnsafeMutableRawBufferPointer) -> Int?) {
        var buffer = [UInt8](repeating: 0, count: capacity)
        guard let n = buffer.withUnsafeMutableBytes({ body($0) }) else { return }
        datagrams.append((destination, Array(buffer[0..<n])))
    }
}

/// A client peer connection: a full ICE agent and DTLS client on one address.
final class ClientPC {
    let address: TransportAddress
    let transport: ClientTransport
    let credentials: ICECredentials
    var rtp: [[UInt8]] = []
    var rtcp: [[UInt8]] = []
    var events: [PeerSessionEvent] = []
    /// Incoming datagrams from the SFU are dropped while this says so.
    var dropIncoming: (([UInt8]) -> Bool)?

    init(address: TransportAddress, ufrag: String, seed: UInt64) throws {
        self.address = address
        credentials = ICECredentials(ufrag: ufrag, password: "client-password-\(ufrag)-0123456789")
        transport = try ClientTransport(
            configuration: PeerSessionConfiguration(
                iceRole: .client, dtlsRole: .client, localCredentials: credentials, localCandidates: [address],
                certificate: Certificates.client),
            rng: SplitMix64(seed: seed))
    }

    var fingerprintLine: String { "a=fingerprint:" + Certificates.client.fingerprint.sdpValue }

    /// Points the transport at the SFU from its SDP (answer or offer).
    func apply(remote sdp: SessionDescription) throws {
        let m = try need(sdp.media.first { $0.port != 0 })
        transport.setRemoteCredentials(ICECredentials(ufrag: try need(sdp.iceUfrag(for: m)),
                                                      password: try need(sdp.icePassword(for: m))))
        let fp = try need(sdp.fingerprints(for: m).first)
        transport.setRemoteFingerprint(try DTLSFingerprint(algorithm: .sha256, digest: fp.bytes))
        for c in m.candidates { transport.addRemoteCandidate(try ICECandidate(parsing: c)) }
    }
}

private func need<T>(_ value: T?) throws -> T {
    guard let value else { throw HarnessError.missing }
    return value
}

enum HarnessError: Error { case missing }

/// An engine and client peer connections on a lossless fake network under a
/// fake clock that jumps from deadline to deadline.
final class SFUHarness {
    static let sfuAddress = TransportAddress("10.0.0.1:50000")!
    let engine: SFUEngine
    var now = Instant.seconds(1000)
    var clients: [TransportAddress: ClientPC] = [:]
    var events: [SFUEvent] = []
    /// Datagrams in flight, delivered on the next step.
    private var toEngine: [(from: TransportAddress, bytes: [UInt8])] = []
    private var toClients: [(to: TransportAddress, bytes: [UInt8])] = []
    /// The SFU's answers to subscribe offers are made here, playing the subscriber.
    var subscribers: [ParticipantID: ClientPC] = [:]
    var room = RoomID("c1")

    /// Clients whose datagrams never reach the engine (a cut cable).
    var cut: Set<TransportAddress> = []

    init(seed: UInt64 = 7, consentTimeout: Duration = .seconds(30)) {
        var config = SFUConfiguration(certificate: Certificates.sfu,
                                      candidates: ["1 1 udp 2130706431 10.0.0.1 50000 typ host"], seed: seed)
        config.ntpAtZero = 0xE000_0000_0000_0000
        config.consentTimeout = consentTimeout
        engine = SFUEngine(configuration: config)
    }

    func publishOffer(for pc: ClientPC, audioSSRC: UInt32 = 1001, videoSSRC: UInt32 = 2001, rtxSSRC: UInt32 = 2002,
                      video: Bool = true, credentials: ICECredentials? = nil) -> String {
        let credentials = credentials ?? pc.credentials
        var lines = [
            "v=0", "o=- 1 2 IN IP4 127.0.0.1", "s=-", "t=0 0",
            video ? "a=group:BUNDLE 0 1" : "a=group:BUNDLE 0", "a=msid-semantic: WMS s1",
            "m=audio 9 UDP/TLS/RTP/SAVPF 111", "c=IN IP4 0.0.0.0",
            "a=ice-ufrag:\(credentials.ufrag)", "a=ice-pwd:\(credentials.password)", pc.fingerprintLine,
            "a=setup:actpass", "a=mid:0",
            "a=extmap:1 urn:ietf:params:rtp-hdrext:ssrc-audio-level",
            "a=extmap:3 http://www.ietf.org/id/draft-holmer-rmcat-transport-wide-cc-extensions-01",
            "a=extmap:4 urn:ietf:params:rtp-hdrext:sdes:mid",
            "a=sendonly", "a=msid:s1 a1", "a=rtcp-mux",
            "a=rtpmap:111 opus/48000/2", "a=rtcp-fb:111 transport-cc", "a=fmtp:111 minptime=10;useinbandfec=1",
            "a=ssrc:\(audioSSRC) cname:c",
        ]
        if video {
            lines += [
                "m=video 9 UDP/TLS/RTP/SAVPF 96 97", "c=IN IP4 0.0.0.0",
                "a=ice-ufrag:\(credentials.ufrag)", "a=ice-pwd:\(credentials.password)", pc.fingerprintLine,
                "a=setup:actpass", "a=mid:1",
                "a=extmap:3 http://www.ietf.org/id/draft-holmer-rmcat-transport-wide-cc-extensions-01",
                "a=extmap:4 urn:ietf:params:rtp-hdrext:sdes:mid",
                "a=sendonly", "a=msid:s1 v1", "a=rtcp-mux", "a=rtcp-rsize",
                "a=rtpmap:96 VP8/90000", "a=rtcp-fb:96 nack", "a=rtcp-fb:96 nack pli", "a=rtcp-fb:96 ccm fir",
                "a=rtcp-fb:96 transport-cc", "a=rtcp-fb:96 goog-remb",
                "a=rtpmap:97 rtx/90000", "a=fmtp:97 apt=96",
                "a=ssrc-group:FID \(videoSSRC) \(rtxSSRC)", "a=ssrc:\(videoSSRC) cname:c", "a=ssrc:\(rtxSSRC) cname:c",
            ]
        }
        return lines.joined(separator: "\r\n") + "\r\n"
    }

    /// A Chromium-style simulcast video offer: rids q, h, f, no a=ssrc lines
    /// (SSRCs are learned from the rid header extension).
    func simulcastOffer(for pc: ClientPC) -> String {
        [
            "v=0", "o=- 1 2 IN IP4 127.0.0.1", "s=-", "t=0 0", "a=group:BUNDLE 0", "a=msid-semantic: WMS s1",
            "m=video 9 UDP/TLS/RTP/SAVPF 96 97", "c=IN IP4 0.0.0.0",
            "a=ice-ufrag:\(pc.credentials.ufrag)", "a=ice-pwd:\(pc.credentials.password)", pc.fingerprintLine,
            "a=setup:actpass", "a=mid:0",
            "a=extmap:4 urn:ietf:params:rtp-hdrext:sdes:mid",
            "a=extmap:10 urn:ietf:params:rtp-hdrext:sdes:rtp-stream-id",
            "a=extmap:11 urn:ietf:params:rtp-hdrext:sdes:repaired-rtp-stream-id",
            "a=sendonly", "a=msid:s1 v1", "a=rtcp-mux", "a=rtcp-rsize",
            "a=rtpmap:96 VP8/90000", "a=rtcp-fb:96 nack", "a=rtcp-fb:96 nack pli",
            "a=rtpmap:97 rtx/90000", "a=fmtp:97 apt=96",
            "a=rid:q send", "a=rid:h send", "a=rid:f send", "a=simulcast:send q;h;f",
        ].joined(separator: "\r\n") + "\r\n"
    }

    /// A publisher: joins, offers, applies the answer.
    @discardableResult
    func publish(_ participant: ParticipantID, user: String, pc: ClientPC, video: Bool = true) throws -> String {
        clients[pc.address] = pc
        engine.join(room: room, participant: participant, user: user)
        var out = CollectingOutput()
        let answer = try engine.publish(room: room, participant: participant,
                                        offer: publishOffer(for: pc, video: video), output: &out)
        collect(out)
        try pc.apply(remote: try SessionDescription(parsing: answer))
        return answer
    }

    /// A subscriber: joins; offers from the engine are answered by `pc`.
    func subscribe(_ participant: ParticipantID, user: String, pc: ClientPC) {
        clients[pc.address] = pc
        subscribers[participant] = pc
        engine.join(room: room, participant: participant, user: user)
        pumpEvents()
    }

    func answer(_ offerText: String, by pc: ClientPC) throws -> String {
        let offer = try SessionDescription(parsing: offerText)
        let config = AnswerConfiguration(
            iceUfrag: pc.credentials.ufrag, icePassword: pc.credentials.password,
            fingerprint: Fingerprint(hashFunction: "sha-256", bytes: Certificates.client.fingerprint.digest),
            candidates: [], sessionID: 5, setupRole: .active, allowSending: false)
        return try SessionDescription.answer(to: offer, config: config).serialized()
    }

    func pumpEvents() {
        while let e = engine.pollEvent() {
            events.append(e)
            if case .subscribeOffer(let room, let participant, let sdp, _) = e, let pc = subscribers[participant] {
                var out = CollectingOutput()
                guard let text = try? answer(sdp, by: pc) else { continue }
                try? engine.subscribeAnswer(room: room, participant: participant, answer: text, output: &out)
                try? pc.apply(remote: SessionDescription(parsing: sdp))
                collect(out)
            }
        }
    }

    func collect(_ out: CollectingOutput) {
        for d in out.datagrams { toClients.append((d.destination, d.bytes)) }
    }

    /// One step: deliver what is in flight, run due timers, drain.
    func step() {
        let engineIn = toEngine
        toEngine = []
        var out = CollectingOutput()
        for d in engineIn {
            var bytes = d.bytes
            bytes.withUnsafeMutableBytes { engine.handleDatagram($0, from: d.from, now: now, output: &out) }
        }
        if let t = engine.pollTimeout(), t <= now { engine.handleTimeout(now: now, output: &out) }
        collect(out)
        pumpEvents()
        let clientIn = toClients
        toClients = []
        for d in clientIn {
            guard let pc = clients[d.to] else { continue }
            if let drop = pc.dropIncoming, drop(d.bytes) { continue }
            d.bytes.withUnsafeBytes { pc.transport.handleReceive($0, from: Self.sfuAddress, to: pc.address, now: now) }
        }
        for pc in clients.values {
            if let t = pc.transport.pollTimeout(), t <= now { pc.transport.handleTimeout(now: now) }
            drain(pc)
        }
    }

    func drain(_ pc: ClientPC) {
        while let t = pc.transport.pollTransmit() {
            precondition(t.destination == Self.sfuAddress)
            if !cut.contains(pc.address) { toEngine.append((pc.address, t.payload)) }
        }
        while let e = pc.transport.pollEvent() {
            switch e {
            case .rtp(let p): pc.rtp.append(p)
            case .rtcp(let p): pc.rtcp.append(p)
            default: pc.events.append(e)
            }
        }
    }

    /// Runs steps, advancing the fake clock 5 ms at a time, for `duration` or until `stop`.
    func run(for duration: Duration, stop: () -> Bool = { false }) {
        let end = now + duration
        while now < end {
            step()
            if stop() { return }
            now += .milliseconds(5)
        }
    }

    func connect(_ pcs: [ClientPC]) -> Bool {
        run(for: .seconds(10)) { pcs.allSatisfy { $0.transport.state == .connected } }
        return pcs.allSatisfy { $0.transport.state == .connected }
    }

    func send(_ packet: [UInt8], from pc: ClientPC, rtcp: Bool = false) throws {
        if rtcp { try pc.transport.sendRTCP(packet) } else { try pc.transport.sendRTP(packet) }
        drain(pc)
    }
}

enum Packets {
    /// An RTP packet with one-byte header extensions `extensions` (id, value).
    static func rtp(pt: UInt8, seq: UInt16, ts: UInt32, ssrc: UInt32, marker: Bool = false,
                    extensions: [(UInt8, [UInt8])] = [], payload: [UInt8]) -> [UInt8] {
        var header = RTPHeader(marker: marker, payloadType: PayloadType(rawValue: pt)!, sequenceNumber: SequenceNumber(seq),
                               timestamp: ts, ssrc: SSRC(ssrc))
        if !extensions.isEmpty {
            header.extensions = .automatic(extensions.map { RTPHeaderExtension(id: $0.0, value: $0.1) })
        }
        return try! RTPPacket(header: header, payload: payload).serialized()
    }

    /// A VP8 payload: descriptor with a 15-bit PictureID, then a frame tag
    /// (a keyframe with its start code and size when `key`).
    static func vp8(pictureID: UInt16, key: Bool, start: Bool = true, size: Int = 200, width: UInt16 = 640) -> [UInt8] {
        var p: [UInt8] = [start ? 0x90 : 0x80, 0x80, 0x80 | UInt8(pictureID >> 8 & 0x7F), UInt8(pictureID & 0xFF)]
        if start {
            if key {
                p += [0x00, 0x00, 0x00, 0x9D, 0x01, 0x2A, UInt8(width & 0xFF), UInt8(width >> 8), 0xE0, 0x01]
            } else {
                p += [0x01, 0x00, 0x00]
            }
        }
        while p.count < size { p.append(UInt8(truncatingIfNeeded: p.count)) }
        return p
    }
}
