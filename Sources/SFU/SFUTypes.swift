import DTLS
import RTCBase

/// A call's room on the SFU.
public struct RoomID: Hashable, Sendable, CustomStringConvertible {
    public var rawValue: String
    public init(_ rawValue: String) { self.rawValue = rawValue }
    public var description: String { rawValue }
}

/// One participant of a room: a user on one signaling connection. A user
/// who joins from two devices is two participants.
public struct ParticipantID: Hashable, Sendable, CustomStringConvertible {
    public var rawValue: UInt64
    public init(_ rawValue: UInt64) { self.rawValue = rawValue }
    public var description: String { String(rawValue) }
}

/// What a published track carries, as the publisher labels it
/// (`publish_track`); audio defaults to the microphone, video to the camera.
public enum TrackSource: String, Sendable, Hashable, CaseIterable {
    case microphone
    case camera
    case screen
    /// The audio of a shared screen or tab.
    case screenAudio = "screen_audio"
}

/// Which of a participant's two transports (PROTOCOL.md: one to publish,
/// one to subscribe).
public enum TransportRole: String, Sendable, Hashable {
    case publish
    case subscribe
}

/// A track as a subscriber sees it in `tracks` (PROTOCOL.md): who publishes
/// it, what it is, and where it arrives in this subscriber's connection.
public struct TrackInfo: Sendable, Hashable {
    public var trackID: String
    public var user: String
    public var participant: ParticipantID
    public var kind: String
    public var source: TrackSource
    public var muted: Bool
    /// The m-section carrying it in the subscriber's offer.
    public var mid: String
    /// `a=msid` of that m-section (RFC 8830): stream id and track id.
    public var streamID: String
    public var msidTrackID: String

    public var msid: String { streamID + " " + msidTrackID }
}

/// Why the SFU refused a request from signaling.
public enum SFUError: Error, Sendable, Equatable {
    case unknownRoom
    case unknownParticipant
    /// SDP that does not parse, or cannot be answered or used (the reason).
    case badSDP(String)
    /// A subscribe answer with no offer outstanding.
    case noOfferOutstanding
    case unknownTrack
    case transport(String)
    /// Recording was asked for but cannot be done (no recorder configured).
    case recording(String)
}

/// Where a recorded room's media goes: every source packet of its tracks
/// (plaintext, RTX repairs unwrapped), as it arrives. The IO edge writes
/// them to files off the media thread.
public protocol SFURecordingSink: AnyObject {
    func packet(room: RoomID, track: String, kind: String, user: String, source: TrackSource,
                bytes: UnsafeRawBufferPointer, arrival: Instant)
    /// No more packets for the room (recording stopped or the call ended).
    func finish(room: RoomID)
}

/// What the SFU tells signaling.
public enum SFUEvent: Sendable, Equatable {
    /// Send this offer (and these tracks) to the participant's subscribe
    /// connection; answer with `subscribeAnswer`.
    case subscribeOffer(room: RoomID, participant: ParticipantID, sdp: String, tracks: [TrackInfo])
    /// The tracks changed without a new offer (mute, unmute, relabel).
    case tracks(room: RoomID, participant: ParticipantID, tracks: [TrackInfo])
    /// ICE and DTLS are up on one of the participant's transports.
    case connected(room: RoomID, participant: ParticipantID, role: TransportRole)
    /// A transport ended: consent lost (RFC 7675), DTLS closed or failed.
    case disconnected(room: RoomID, participant: ParticipantID, role: TransportRole, reason: String)
    /// The first media packet of a publisher's track arrived.
    case firstMedia(room: RoomID, participant: ParticipantID, trackID: String)
}

/// Where the engine's datagrams go: the IO edge's send queue. `body`
/// writes one datagram into a buffer of at least `capacity` bytes and
/// returns its length (nil: nothing to send). Nothing is copied twice and
/// nothing is allocated.
public protocol SFUOutput {
    mutating func send(to destination: TransportAddress, capacity: Int,
                       _ body: (UnsafeMutableRawBufferPointer) -> Int?)
}

extension SFUOutput {
    /// Queues a copy of `bytes` (handshakes and RTCP, which allocate anyway).
    mutating func send(_ bytes: [UInt8], to destination: TransportAddress) {
        send(to: destination, capacity: bytes.count) { out in
            bytes.withUnsafeBytes { out.copyMemory(from: $0) }
            return bytes.count
        }
    }
}

/// Settings of one engine (one media worker).
public struct SFUConfiguration: Sendable {
    /// The DTLS certificate every transport of this engine presents.
    public var certificate: DTLSCertificate
    /// Candidate-attribute values the SFU advertises in its SDP
    /// (`1 1 udp 2130706431 192.0.2.1 50000 typ host`): the media port on
    /// `--public-ip`, and the ICE-TCP passive candidate.
    public var candidates: [String]
    /// RFC 7675: a transport with no check for this long has lost consent.
    public var consentTimeout: Duration = .seconds(30)
    /// Cap of the REMB estimate sent to publishers, bits per second.
    public var maxPublisherBitrate: UInt64 = 2_500_000
    /// Floor of that estimate.
    public var minPublisherBitrate: UInt64 = 150_000
    /// Packets kept per video source for NACK answers.
    public var retransmissionSlots = 512
    /// Keyframe requests to one source at most this often.
    public var keyframeRequestInterval: Duration = .milliseconds(300)
    /// RTCP packets a session may send per second (burst twice that);
    /// beyond, they are dropped and counted.
    public var rtcpRatePerSecond: Double = 300
    /// NTP time (RFC 3550 §4, 32.32 fixed point) at `Instant.zero`, so SRs
    /// carry wall-clock time although the engine reads no clock.
    public var ntpAtZero: UInt64 = 0
    /// Seeds SSRCs, ICE credentials and initial sequence numbers.
    public var seed: UInt64

    public init(certificate: DTLSCertificate, candidates: [String], seed: UInt64) {
        self.certificate = certificate
        self.candidates = candidates
        self.seed = seed
    }
}

/// Running totals for `/metrics`; never reset.
public struct SFUCounters: Sendable, Hashable {
    public var datagramsIn = 0
    /// Not STUN, DTLS, RTP or RTCP (RFC 7983), or too short.
    public var malformedDatagrams = 0
    /// STUN from an unknown address whose USERNAME names no session.
    public var unknownICEUsername = 0
    /// DTLS or SRTP from an address no session has validated.
    public var unknownSource = 0
    /// SRTP/SRTCP that failed authentication (wrong keys, tampering).
    public var srtpAuthFailures = 0
    public var srtpReplays = 0
    /// RTP that decrypted but does not parse, or from an unknown SSRC.
    public var malformedRTP = 0
    public var unknownSSRC = 0
    public var malformedRTCP = 0
    /// RTCP dropped by the per-session rate limit.
    public var rtcpRateLimited = 0
    public var rtpIn = 0
    public var rtcpIn = 0
    /// RTP packets and payload bytes forwarded to subscribers.
    public var rtpForwarded = 0
    public var bytesForwarded = 0
    public var rtcpOut = 0
    /// NACKed packets subscribers asked for, answered from the cache, missed.
    public var nackRequested = 0
    public var retransmitted = 0
    public var retransmissionMisses = 0
    /// NACKs the SFU sent publishers, and packets they repaired.
    public var nacksSent = 0
    public var repairedFromPublisher = 0
    public var pliReceived = 0
    public var firReceived = 0
    public var keyframeRequestsSent = 0
    /// Streams started from the cached last keyframe (no PLI needed).
    public var keyframesFromCache = 0
    public var transportFeedbackSent = 0
    public var rembSent = 0
    public var senderReportsSent = 0
    public var receiverReportsSent = 0
    /// Publisher RTX packets that carried no original (bandwidth probes).
    public var paddingDropped = 0
    public var transportsOpened = 0
    public var transportsClosed = 0
    public var consentLost = 0

    public init() {}
}
