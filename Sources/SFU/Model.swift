import ICE
import PeerSession
import RTCBase
import RTP
import SDP

/// One of a participant's transports on the media port: the ICE-lite +
/// DTLS-SRTP state, the addresses that reached it, its deadline.
final class Session {
    let role: TransportRole
    var transport: ServerTransport
    unowned let participant: Participant
    /// Remote addresses mapped to this session (validated by a check).
    var addresses: Set<TransportAddress> = []
    /// The peer's ICE credentials as last signalled.
    var remoteCredentials: ICECredentials?
    /// `transport.pollTimeout()` after the last interaction.
    var deadline: Instant?
    /// Our SSRC as an RTCP sender on this transport (RR, feedback).
    let rtcpSSRC: SSRC
    var wasConnected = false
    var ended = false
    /// Counters already added to the engine's totals.
    var reported = PeerSessionCounters()
    /// RTCP token bucket (RFC 3550 §6.2 bounds RTCP bandwidth; a flood is dropped).
    var rtcpTokens: Double
    var rtcpRefilledAt: Instant?

    init(role: TransportRole, transport: ServerTransport, participant: Participant, rtcpSSRC: SSRC, burst: Double) {
        self.role = role
        self.transport = transport
        self.participant = participant
        self.rtcpSSRC = rtcpSSRC
        rtcpTokens = burst
    }

    var localUfrag: String { transport.localCredentials.ufrag }
}

/// One encoding of a published track: the only one, or one simulcast layer.
final class SourceLayer {
    let rid: RID?
    var ssrc: SSRC?
    var rtxSSRC: SSRC?
    var stats: RTPReceptionStatistics
    var nack = NACKGenerator()
    let cache: RetransmissionCache?
    /// The last SR: NTP and RTP time, and when it arrived.
    var senderReport: (ntp: UInt64, rtp: UInt32, at: Instant)?
    var lastPacketAt: Instant?
    /// Width of the last keyframe (orders simulcast layers).
    var keyframeWidth = 0
    var lastKeyframeAt: Instant?
    /// Sequence number of the last keyframe's first packet.
    var lastKeyframeSequence: UInt16?
    var lastKeyframeRequest: Instant?

    init(rid: RID?, ssrc: SSRC?, rtxSSRC: SSRC?, clockRate: UInt32, cacheSlots: Int?) {
        self.rid = rid
        self.ssrc = ssrc
        self.rtxSSRC = rtxSSRC
        stats = RTPReceptionStatistics(clockRate: clockRate)
        cache = cacheSlots.map { RetransmissionCache(slots: $0) }
    }

    func isActive(now: Instant) -> Bool { lastPacketAt.map { now - $0 < .seconds(2) } ?? false }

    /// The cached run from the last keyframe's first packet to the newest
    /// (a GOP to replay), when it fits in half the cache.
    func runSinceKeyframe() -> (cache: RetransmissionCache, first: UInt16, count: Int)? {
        guard let cache, let first = lastKeyframeSequence, stats.received > 0 else { return nil }
        let count = Int(UInt16(truncatingIfNeeded: stats.highestIndex) &- first) + 1
        return count <= cache.slots / 2 ? (cache, first, count) : nil
    }
}

/// Publisher header-extension ids, from its offer (RFC 8285).
struct PublisherExtensions {
    var mid: UInt8 = 0
    var rid: UInt8 = 0
    var repairedRID: UInt8 = 0
    var transportCC: UInt8 = 0
    var audioLevel: UInt8 = 0
    var absSendTime: UInt8 = 0

    init(_ summary: MediaSummary) {
        func id(_ v: UInt16?) -> UInt8 { v.flatMap { UInt8(exactly: $0) }.map { $0 <= 14 ? $0 : 0 } ?? 0 }
        mid = id(summary.midExtensionID)
        rid = id(summary.ridExtensionID)
        repairedRID = id(summary.repairedRIDExtensionID)
        transportCC = id(summary.transportCCExtensionID)
        audioLevel = id(summary.audioLevelExtensionID)
        absSendTime = id(summary.absSendTimeExtensionID)
    }
}

/// A track a participant publishes (one m-section of its publish offer).
final class PublishedTrack {
    let id: String
    unowned let owner: Participant
    let kind: MediaKind
    let mid: Mid
    var source: TrackSource
    var muted = false
    var payloadType: UInt8
    var rtxPayloadType: UInt8?
    let clockRate: UInt32
    var extensions: PublisherExtensions
    var layers: [SourceLayer]
    /// The subscriber streams fed from this track.
    var streams: [ForwardedStream] = []
    /// The layer subscribers should get (the widest active one).
    var preferredLayer = 0
    var sawMedia = false

    init(id: String, owner: Participant, kind: MediaKind, mid: Mid, source: TrackSource, payloadType: UInt8,
         rtxPayloadType: UInt8?, clockRate: UInt32, extensions: PublisherExtensions, layers: [SourceLayer]) {
        self.id = id
        self.owner = owner
        self.kind = kind
        self.mid = mid
        self.source = source
        self.payloadType = payloadType
        self.rtxPayloadType = rtxPayloadType
        self.clockRate = clockRate
        self.extensions = extensions
        self.layers = layers
    }

    /// `a=msid` stream id: a participant's camera and microphone share one
    /// stream, so browsers play them in sync; a screen share is its own.
    var streamID: String {
        let group = source == .screen || source == .screenAudio ? "screen" : "media"
        return "\(owner.user)-\(owner.id.rawValue)-\(group)"
    }
}

/// One track forwarded to one subscriber: its own SSRCs, numbering and
/// RTX, on an m-section of the subscriber's connection.
final class ForwardedStream {
    unowned let track: PublishedTrack
    unowned let subscriber: Participant
    let ssrc: SSRC
    let rtxSSRC: SSRC
    var mid: Mid
    /// The mid as bytes, written into every packet's mid extension.
    var midBytes: [UInt8]
    let payloadType: UInt8
    let rtxPayloadType: UInt8?
    /// The subscriber accepted the m-section: media may go.
    var negotiated = false
    var extensions = ForwardedExtensions()
    var useRTX = false
    var rewriter: StreamRewriter
    /// Video waits for a keyframe before the first packet (and after a switch).
    var needsKeyframe: Bool
    var layerIndex = 0
    var packetsSent: UInt32 = 0
    var octetsSent: UInt32 = 0
    var rtxSequence: UInt16
    /// Retransmissions in the current second (bounded against NACK storms).
    var retransmitBudget = 0
    var budgetSecond: Int64 = 0
    /// From the subscriber's receiver reports.
    var fractionLost: UInt8 = 0
    var jitter: UInt32 = 0
    var roundTrip: Duration?

    init(track: PublishedTrack, subscriber: Participant, ssrc: SSRC, rtxSSRC: SSRC, mid: Mid, payloadType: UInt8,
         rtxPayloadType: UInt8?, initialSequence: UInt16, initialTimestamp: UInt32, rtxSequence: UInt16) {
        self.track = track
        self.subscriber = subscriber
        self.ssrc = ssrc
        self.rtxSSRC = rtxSSRC
        self.mid = mid
        midBytes = Array(mid.rawValue.utf8)
        self.payloadType = payloadType
        self.rtxPayloadType = rtxPayloadType
        rewriter = StreamRewriter(clockRate: track.clockRate, initialSequence: initialSequence,
                                  initialTimestamp: initialTimestamp)
        needsKeyframe = track.kind == .video
        self.rtxSequence = rtxSequence
        layerIndex = track.preferredLayer
    }
}

/// Which published layer (or its RTX) an SSRC belongs to.
struct SourceRef {
    unowned let track: PublishedTrack
    let layer: Int
    let isRTX: Bool
}

/// A user in a room on one connection.
final class Participant {
    let id: ParticipantID
    let user: String
    let room: RoomID
    var publish: Session?
    var subscribe: Session?
    /// Published tracks, in the order their m-sections appeared.
    var tracks: [PublishedTrack] = []
    var sourceBySSRC: [UInt32: SourceRef] = [:]
    var twcc = TransportFeedbackRecorder()
    var publishSessionVersion: UInt64 = 0
    var lastPublishAnswer: SessionDescription?
    /// Labels given with `publish_track`, by mid, kept for tracks not yet offered.
    var hints: [Mid: (source: TrackSource?, muted: Bool?)] = [:]
    /// Incoming media bytes in the current REMB window.
    var bytesInWindow = 0
    var windowStart: Instant?
    var incomingBitrate: Double = 0
    var estimate: UInt64 = 0

    // Subscribe side.
    var layout = SubscriberLineLayout<String>()
    /// Payload types of each subscriber line (see `SFUEngine.lineCodec`).
    var linePayloadTypes: [Int: (media: PayloadType, rtx: PayloadType?)] = [:]
    /// The stream on each line of `layout` (nil when inactive).
    var lineStreams: [ForwardedStream?] = []
    var streamBySSRC: [UInt32: ForwardedStream] = [:]
    var lastOffer: SessionDescription?
    var offerVersion: UInt64 = 0
    var awaitingAnswer = false
    var needsOffer = false
    var transportSequence: UInt16 = 0
    /// Tracks as last told to the participant (to send `tracks` on changes only).
    var lastTracks: [TrackInfo] = []

    // Timers.
    var nextReport: Instant?
    var nextFeedback: Instant?

    init(id: ParticipantID, user: String, room: RoomID) {
        self.id = id
        self.user = user
        self.room = room
    }

    var sessions: [Session] { [publish, subscribe].compactMap { $0 } }

    func track(mid: Mid) -> PublishedTrack? { tracks.first { $0.mid == mid } }
}

/// A call's participants, in joining order.
final class Room {
    let id: RoomID
    var participants: [Participant] = []

    init(id: RoomID) { self.id = id }

    func participant(_ id: ParticipantID) -> Participant? { participants.first { $0.id == id } }
}
