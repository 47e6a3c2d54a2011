@testable import CallClient
import RTCBase
import RTP
import SDP

func pt(_ v: UInt8) -> PayloadType { PayloadType(rawValue: v)! }

enum Fixtures {
    static let fingerprint = Fingerprint(hashFunction: "sha-256", bytes: (0..<32).map { UInt8($0) })
    static let sfuFingerprint = Fingerprint(hashFunction: "sha-256", bytes: (0..<32).map { UInt8(255 - $0) })
    static let client = LocalTransportParameters(
        iceUfrag: "cli1", icePassword: "clientPasswordClientPass", fingerprint: fingerprint,
        candidates: ["1 1 udp 2130706431 127.0.0.1 40000 typ host"])
    /// What the SFU answers with: a UDP host candidate and the ICE-TCP
    /// passive one the client must ignore.
    static let sfuCandidates = ["1 1 udp 2130706431 127.0.0.1 50000 typ host",
                                "2 1 tcp 1518280447 127.0.0.1 50000 typ host tcptype passive"]

    /// A camera small enough to render and encode in a debug build in
    /// well under a millisecond per frame.
    static let smallCamera = VideoSourceOptions(width: 160, height: 96, framesPerSecond: 30, bitrateKbps: 300)
    static let smallScreen = VideoSourceOptions(width: 192, height: 108, framesPerSecond: 10, bitrateKbps: 200)

    static func options(screen: Bool = false) -> MediaOptions {
        MediaOptions(audio: true, audioBitrate: 32_000, camera: smallCamera, screen: screen ? smallScreen : nil,
                     renderedLoopFrames: 0)
    }

    static let start = Instant.seconds(1000)
    static let clock = NTPClock(ntpAtZero: 0xE000_0000_0000_0000)
}

/// A sender wired as after a publish answer that accepted everything.
func makeSender(screen: Bool = false, rtx: Bool = true, seed: UInt64 = 42) throws -> MediaSender {
    let sender = try MediaSender(options: Fixtures.options(screen: screen), cname: "test", clock: Fixtures.clock, seed: seed)
    let mids = sender.streams.map(\.mid)
    sender.configure(PublishNegotiation.Answer(
        remote: RemoteTransportParameters(credentials: .init(ufrag: "sfu1", password: "sfuPasswordSfuPassword12"),
                                          fingerprint: Fixtures.sfuFingerprint, candidates: [], weAreDTLSClient: true,
                                          isICELite: true),
        acceptedMids: mids,
        rtxMids: rtx ? Set(sender.streams.filter { $0.rtxPayloadType != nil }.map(\.mid)) : [],
        extensions: NegotiatedExtensions(mid: PublishExtensionID.mid, transportCC: PublishExtensionID.transportCC)))
    sender.start(now: Fixtures.start)
    return sender
}

/// Receive lines that mirror a sender's streams one to one, as if the SFU
/// forwarded them unchanged.
func lines(mirroring sender: MediaSender) -> [ReceiveLine] {
    sender.streams.map { s in
        ReceiveLine(mid: s.mid, kind: s.kind, isActive: true, payloadType: s.payloadType, rtxPayloadType: s.rtxPayloadType,
                    clockRate: s.kind == .audio ? 48000 : 90000, ssrc: s.ssrc, rtxSSRC: s.rtxSSRC, streamID: s.streamID,
                    trackID: s.trackID, extensions: NegotiatedExtensions(mid: 4, transportCC: 3),
                    nack: s.kind == .video, pli: s.kind == .video)
    }
}

/// Runs the sender for `duration` on a fake clock in 5 ms steps, handing
/// each packet to `deliver`. Returns the clock at the end.
@discardableResult
func run(_ sender: MediaSender, from start: Instant = Fixtures.start, for duration: Duration,
         deliver: ([UInt8], Instant) -> Void) -> Instant {
    var now = start
    while now < start + duration {
        for p in sender.produce(now: now) { deliver(p, now) }
        now += .milliseconds(5)
    }
    return now
}

extension [UInt8] {
    var rtp: RTPPacket? { try? RTPPacket(parsing: self) }
}

func rtcp(_ packets: [RTCPPacket]) -> [UInt8] { (try? RTCPCompound.serialize(packets)) ?? [] }

func isVP8Keyframe(_ packet: [UInt8]) -> Bool {
    guard let p = packet.rtp else { return false }
    return p.payload.withUnsafeBytes { VP8PayloadDescriptor.isKeyFrame(rtpPayload: $0) }
}
