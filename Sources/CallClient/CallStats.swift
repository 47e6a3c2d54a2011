/// What one published stream sent, and what the SFU reported back about it.
/// Property names become snake_case keys in `parley-call --json`.
public struct SentStreamStats: Sendable, Hashable, Codable {
    public var source: String
    public var kind: String
    public var mid: String
    public var ssrc: UInt32
    public var framesEncoded = 0
    public var keyframesEncoded = 0
    public var packetsSent = 0
    /// RTP bytes (headers and payload, before SRTP).
    public var bytesSent = 0
    /// Average over the time the stream sent.
    public var bitrateKbps = 0.0
    public var fps = 0.0
    /// Repairs sent in answer to NACKs (as RTX when negotiated).
    public var retransmittedPackets = 0
    public var nacksReceived = 0
    public var plisReceived = 0
    public var firsReceived = 0
    /// The encoder's current target, after REMB.
    public var targetBitrateKbps: Int?
    /// The SFU's latest REMB estimate for this publisher (all streams).
    public var rembKbps: Int?
    /// From the SFU's receiver reports (RFC 3550 §6.4.1).
    public var fractionLostPercent = 0.0
    public var packetsLostReported = 0
    public var jitterMs = 0.0
    public var rttMs: Double?

    public init(source: String, kind: String, mid: String, ssrc: UInt32) {
        self.source = source
        self.kind = kind
        self.mid = mid
        self.ssrc = ssrc
    }
}

/// What one received track delivered.
public struct ReceivedTrackStats: Sendable, Hashable, Codable {
    public var trackID: String
    /// From the `tracks` frame; nil until it names the track.
    public var user: String?
    public var kind: String
    public var source: String?
    public var mid: String
    public var ssrc: UInt32
    public var packetsReceived = 0
    public var bytesReceived = 0
    /// RFC 3550 A.3: expected minus received, never negative.
    public var packetsLost = 0
    /// Lost over expected, whole lifetime.
    public var lossPercent = 0.0
    /// Interarrival jitter (RFC 3550 A.8).
    public var jitterMs = 0.0
    public var framesDecoded = 0
    public var keyframesDecoded = 0
    /// Frames the depacketizer gave up on (a packet never came).
    public var framesDropped = 0
    public var decodeErrors = 0
    /// Sampled decoded frames with visible content (luma spread, or audio
    /// above a noise floor): the picture is not blank.
    public var nonblankFrames = 0
    /// Averages over the time frames were decoded.
    public var fps = 0.0
    public var bitrateKbps = 0.0
    /// Over the last reporting second.
    public var currentFPS = 0.0
    public var currentBitrateKbps = 0.0
    public var width: Int?
    public var height: Int?
    public var nacksSent = 0
    public var plisSent = 0
    public var retransmissionsReceived = 0
    /// From the call's start (our `call_start` or `call_accept`).
    public var timeToFirstPacketMs: Double?
    public var timeToFirstFrameMs: Double?
    public var rttMs: Double?

    public init(trackID: String, kind: String, mid: String, ssrc: UInt32) {
        self.trackID = trackID
        self.kind = kind
        self.mid = mid
        self.ssrc = ssrc
    }
}

/// Sums over every received track of one kind, or all.
public struct ReceiveTotals: Sendable, Hashable, Codable {
    public var tracks = 0
    public var videoFramesDecoded = 0
    public var audioFramesDecoded = 0
    public var packetsReceived = 0
    public var packetsLost = 0
    public var lossPercent = 0.0
    public var bitrateKbps = 0.0
    public var currentBitrateKbps = 0.0
    /// Video frames per second summed over video tracks.
    public var videoFPS = 0.0
    public var currentVideoFPS = 0.0
    public var jitterMs = 0.0
    public var decodeErrors = 0

    public init() {}

    public init(_ tracks: [ReceivedTrackStats]) {
        self.tracks = tracks.count
        var jitter = 0.0
        for t in tracks {
            if t.kind == "video" {
                videoFramesDecoded += t.framesDecoded
                videoFPS += t.fps
                currentVideoFPS += t.currentFPS
            } else {
                audioFramesDecoded += t.framesDecoded
            }
            packetsReceived += t.packetsReceived
            packetsLost += t.packetsLost
            bitrateKbps += t.bitrateKbps
            currentBitrateKbps += t.currentBitrateKbps
            decodeErrors += t.decodeErrors
            jitter = max(jitter, t.jitterMs)
        }
        jitterMs = jitter
        let expected = packetsReceived + packetsLost
        lossPercent = expected > 0 ? Double(packetsLost) * 100 / Double(expected) : 0
    }
}

public struct SendTotals: Sendable, Hashable, Codable {
    public var streams = 0
    public var framesEncoded = 0
    public var packetsSent = 0
    public var bytesSent = 0
    public var bitrateKbps = 0.0
    public var retransmittedPackets = 0
    public var nacksReceived = 0
    public var plisReceived = 0

    public init() {}

    public init(_ streams: [SentStreamStats]) {
        self.streams = streams.count
        for s in streams {
            framesEncoded += s.framesEncoded
            packetsSent += s.packetsSent
            bytesSent += s.bytesSent
            bitrateKbps += s.bitrateKbps
            retransmittedPackets += s.retransmittedPackets
            nacksReceived += s.nacksReceived
            plisReceived += s.plisReceived
        }
    }
}

/// Connection milestones of one peer connection, from the call's start.
public struct TransportStats: Sendable, Hashable, Codable {
    public var state = "new"
    public var iceConnectedMs: Double?
    public var dtlsConnectedMs: Double?
    /// Latest RTT of an ICE connectivity or consent check (RFC 7675).
    public var iceRTTMs: Double?
    public var packetsSent = 0
    public var packetsReceived = 0
    public var bytesSent = 0
    public var bytesReceived = 0
    public var srtpErrors = 0

    public init() {}
}

/// The final (or a live) summary of a run: `parley-call --json` prints it.
public struct CallReport: Sendable, Hashable, Codable {
    public var user: String
    public var callID: String?
    /// `hangup`, `rejected`, `timeout`, … from `call_ended`, or `duration`
    /// when we ended it, or `interrupted`.
    public var endReason: String?
    /// Seconds from the call's start to now / the end.
    public var durationS = 0.0
    /// First decoded frame of any track, and of the first video track.
    public var timeToFirstFrameMs: Double?
    public var timeToFirstVideoFrameMs: Double?
    public var timeToFirstAudioFrameMs: Double?
    /// From RR LSR/DLSR (RFC 3550 §6.4.1) on the publish connection, else
    /// the latest ICE check.
    public var rttMs: Double?
    public var received: [ReceivedTrackStats] = []
    public var receivedTotals = ReceiveTotals()
    public var sent: [SentStreamStats] = []
    public var sentTotals = SendTotals()
    public var publishTransport = TransportStats()
    public var subscribeTransport = TransportStats()
    public var subscribeOffers = 0

    public init(user: String) { self.user = user }

    /// True once any received track decoded a frame.
    public var receivedMedia: Bool { received.contains { $0.framesDecoded > 0 } }
}
