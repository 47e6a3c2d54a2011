import RTCBase

/// A codec the SFU sends on a subscriber m-section.
public struct SubscriberCodec: Hashable, Sendable {
    public var payloadType: PayloadType
    public var name: String
    public var clockRate: UInt32
    public var channels: UInt16?
    public var parameters: [FormatParameter]
    /// RTX payload type for this codec (video), sent with `apt=`.
    public var rtxPayloadType: PayloadType?
    public var rtcpFeedback: [RTCPFeedbackKind]

    public init(payloadType: PayloadType, name: String, clockRate: UInt32, channels: UInt16? = nil,
                parameters: [FormatParameter] = [], rtxPayloadType: PayloadType? = nil,
                rtcpFeedback: [RTCPFeedbackKind] = []) {
        self.payloadType = payloadType
        self.name = name
        self.clockRate = clockRate
        self.channels = channels
        self.parameters = parameters
        self.rtxPayloadType = rtxPayloadType
        self.rtcpFeedback = rtcpFeedback
    }
}

/// One track the SFU forwards to a subscriber.
public struct SubscriberTrack: Hashable, Sendable {
    public var kind: MediaKind
    public var mid: Mid
    public var ssrc: SSRC
    public var rtxSSRC: SSRC?
    /// `a=msid` stream and track ids (RFC 8830).
    public var streamID: String
    public var trackID: String
    public var codec: SubscriberCodec
    /// Header extensions to offer (ids chosen by the SFU).
    public var headerExtensions: [ExtensionMap]

    public init(kind: MediaKind, mid: Mid, ssrc: SSRC, rtxSSRC: SSRC? = nil, streamID: String, trackID: String,
                codec: SubscriberCodec, headerExtensions: [ExtensionMap] = []) {
        self.kind = kind
        self.mid = mid
        self.ssrc = ssrc
        self.rtxSSRC = rtxSSRC
        self.streamID = streamID
        self.trackID = trackID
        self.codec = codec
        self.headerExtensions = headerExtensions
    }
}

/// Transport parameters of an SFU-made offer.
public struct OfferConfiguration: Sendable {
    public var iceUfrag: String
    public var icePassword: String
    public var fingerprint: Fingerprint
    public var candidates: [String]
    public var sessionID: UInt64
    public var sessionVersion: UInt64
    /// `a=ssrc:<x> cname:` (RFC 7022 CNAME) for every sent SSRC.
    public var cname: String

    public init(iceUfrag: String, icePassword: String, fingerprint: Fingerprint, candidates: [String],
                sessionID: UInt64, sessionVersion: UInt64 = 1, cname: String) {
        self.iceUfrag = iceUfrag
        self.icePassword = icePassword
        self.fingerprint = fingerprint
        self.candidates = candidates
        self.sessionID = sessionID
        self.sessionVersion = sessionVersion
        self.cname = cname
    }
}

/// What the SFU learns from a subscriber's answer.
public struct SubscriberAnswer: Hashable, Sendable {
    public var iceUfrag: String
    public var icePassword: String
    public var fingerprints: [Fingerprint]
    /// The subscriber's DTLS role (active or passive); ours is the other one.
    public var setup: SetupRole
    /// Mids the subscriber accepted (non-zero port, in the answer's BUNDLE group).
    public var acceptedMids: [Mid]
    public var rejectedMids: [Mid]
}

/// One m-section of a subscriber offer: a forwarded track, or a line whose
/// track has left. JSEP (RFC 8829 §5.2.2) never removes an m-section from a
/// later offer: it stays, `a=inactive`, until another track of its kind
/// reuses it.
public enum SubscriberMediaLine: Hashable, Sendable {
    case active(SubscriberTrack)
    /// A line with no track: its mid, kind and the codec it still lists.
    case inactive(mid: Mid, kind: MediaKind, codec: SubscriberCodec)

    public var mid: Mid {
        switch self {
        case .active(let t): t.mid
        case .inactive(let mid, _, _): mid
        }
    }

    public var kind: MediaKind {
        switch self {
        case .active(let t): t.kind
        case .inactive(_, let kind, _): kind
        }
    }
}

/// Which subscriber m-section carries which track, kept stable across
/// renegotiations: a track that leaves frees its line (offered inactive),
/// and the next track of the same kind takes the first free line instead
/// of adding one. Mids are "0", "1", … in line order.
public struct SubscriberLineLayout<Key: Hashable & Sendable>: Sendable {
    public struct Line: Sendable, Equatable {
        public var mid: Mid
        public var kind: MediaKind
        /// The track on the line; nil while it is inactive.
        public var key: Key?
    }

    public private(set) var lines: [Line] = []

    public init() {}

    /// The line of `key`, placing it first if it has none: the first free
    /// line of its kind, else a new line at the end.
    @discardableResult
    public mutating func place(_ key: Key, kind: MediaKind) -> Int {
        if let i = index(of: key) { return i }
        if let free = lines.firstIndex(where: { $0.key == nil && $0.kind == kind }) {
            lines[free].key = key
            return free
        }
        lines.append(Line(mid: Mid(rawValue: String(lines.count)), kind: kind, key: key))
        return lines.count - 1
    }

    /// Frees the line of `key` (it stays, inactive); its index, if it had one.
    @discardableResult
    public mutating func remove(_ key: Key) -> Int? {
        guard let i = index(of: key) else { return nil }
        lines[i].key = nil
        return i
    }

    public func index(of key: Key) -> Int? { lines.firstIndex { $0.key == key } }

    public var activeCount: Int { lines.reduce(0) { $0 + ($1.key == nil ? 0 : 1) } }
}

extension SessionDescription {
    /// A sendonly offer to a subscriber (JSEP RFC 8829 §5.2.1 shaped): ice-lite,
    /// our fingerprint, setup actpass (RFC 8842 §5.2), our candidates, one
    /// BUNDLE group of every track's mid, rtcp-mux and rtcp-rsize.
    public static func subscriberOffer(tracks: [SubscriberTrack], config: OfferConfiguration) -> SessionDescription {
        subscriberOffer(lines: tracks.map { .active($0) }, config: config)
    }

    /// A subscriber offer whose m-sections are `lines` in order: active ones
    /// sendonly with their SSRCs and msid, freed ones `a=inactive` with no
    /// SSRC, every one kept in the BUNDLE group (RFC 8843 §7.2: a bundled
    /// section stays in the group while it is not rejected).
    public static func subscriberOffer(lines: [SubscriberMediaLine], config: OfferConfiguration) -> SessionDescription {
        let (port, connection) = defaultCandidate(config.candidates)
        var offer = SessionDescription(
            origin: Origin(sessionID: config.sessionID, sessionVersion: config.sessionVersion, address: "0.0.0.0"))
        offer.attributes.append(MediaGroup(semantics: MediaGroup.bundle, mids: lines.map(\.mid)).attribute)
        offer.attributes.append(SDPAttribute("ice-lite"))
        offer.attributes.append(SDPAttribute("msid-semantic", " WMS *"))

        for (i, line) in lines.enumerated() {
            let c: SubscriberCodec
            let track: SubscriberTrack?
            switch line {
            case .active(let t):
                c = t.codec
                track = t
            case .inactive(_, _, let codec):
                c = codec
                track = nil
            }
            var formats = [String(c.payloadType.rawValue)]
            if let rtx = c.rtxPayloadType { formats.append(String(rtx.rawValue)) }
            var m = MediaDescription(kind: line.kind, port: port, proto: "UDP/TLS/RTP/SAVPF", formats: formats,
                                     connection: connection)
            var a = SDPAttribute.transport(iceUfrag: config.iceUfrag, icePassword: config.icePassword,
                                           fingerprint: config.fingerprint, setup: .actpass,
                                           candidates: i == 0 ? config.candidates : nil)
            a.append(SDPAttribute("mid", line.mid.rawValue))
            for e in track?.headerExtensions ?? [] { a.append(e.attribute) }
            if let t = track {
                a.append(MediaDirection.sendonly.attribute)
                a.append(MediaStreamID(streamID: t.streamID, trackID: t.trackID).attribute)
            } else {
                a.append(MediaDirection.inactive.attribute)
            }
            a.append(SDPAttribute("rtcp-mux"))
            a.append(SDPAttribute("rtcp-rsize"))
            a.append(RTPMap(payloadType: c.payloadType, encodingName: c.name, clockRate: c.clockRate, channels: c.channels).attribute)
            for f in c.rtcpFeedback {
                a.append(RTCPFeedback(payloadType: c.payloadType, type: f.type, parameter: f.parameter).attribute)
            }
            if !c.parameters.isEmpty {
                a.append(FormatParameters(payloadType: c.payloadType, parameters: c.parameters).attribute)
            }
            if let rtx = c.rtxPayloadType {
                a.append(RTPMap(payloadType: rtx, encodingName: "rtx", clockRate: c.clockRate).attribute)
                a.append(FormatParameters(payloadType: rtx, parameters: [
                    FormatParameter(name: "apt", value: String(c.payloadType.rawValue)),
                ]).attribute)
            }
            if let t = track {
                // RFC 5576: ssrc-group before the ssrc lines it names, as browsers write it.
                var sent = [t.ssrc]
                if let rtx = t.rtxSSRC, c.rtxPayloadType != nil {
                    a.append(SSRCGroup(semantics: SSRCGroup.fid, ssrcs: [t.ssrc, rtx]).attribute)
                    sent.append(rtx)
                }
                for s in sent {
                    a.append(SSRCAttribute(ssrc: s, name: "cname", value: config.cname).attribute)
                    a.append(SSRCAttribute(ssrc: s, name: "msid", value: t.streamID + " " + t.trackID).attribute)
                }
            }
            m.attributes = a
            offer.media.append(m)
        }
        return offer
    }

    /// Reads a subscriber's answer to `subscriberOffer`: its ICE credentials,
    /// fingerprint, DTLS role and accepted mids.
    public static func readSubscriberAnswer(_ answer: SessionDescription, to offer: SessionDescription) throws(NegotiationError) -> SubscriberAnswer {
        guard answer.media.count == offer.media.count else { throw .answerMismatch }
        let bundle = answer.bundleGroup
        var accepted: [Mid] = []
        var rejected: [Mid] = []
        var ufrag: String?
        var pwd: String?
        var fingerprints: [Fingerprint] = []
        var setup: SetupRole?
        for (o, a) in zip(offer.media, answer.media) {
            guard let mid = o.mid, a.kind == o.kind else { throw .answerMismatch }
            if let am = a.mid, am != mid { throw .answerMismatch }
            if a.port == 0 && !a.isBundleOnly || (bundle.map { !$0.mids.contains(mid) } ?? false) {
                rejected.append(mid)
                continue
            }
            accepted.append(mid)
            if ufrag == nil { ufrag = answer.iceUfrag(for: a) }
            if pwd == nil { pwd = answer.icePassword(for: a) }
            if fingerprints.isEmpty { fingerprints = answer.fingerprints(for: a) }
            if setup == nil { setup = answer.setup(for: a) }
        }
        guard let first = accepted.first else { throw .noUsableMedia }
        guard let ufrag, let pwd else { throw .missingICECredentials(first) }
        guard !fingerprints.isEmpty else { throw .missingFingerprint(first) }
        // RFC 8842 §5.3: the answer to actpass is active or passive; absent means active (RFC 4145 §4).
        let role = setup ?? .active
        guard role == .active || role == .passive else { throw .unsupportedSetup(role) }
        return SubscriberAnswer(iceUfrag: ufrag, icePassword: pwd, fingerprints: fingerprints, setup: role,
                                acceptedMids: accepted, rejectedMids: rejected)
    }
}
