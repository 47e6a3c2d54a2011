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

extension SessionDescription {
    /// A sendonly offer to a subscriber (JSEP RFC 8829 §5.2.1 shaped): ice-lite,
    /// our fingerprint, setup actpass (RFC 8842 §5.2), our candidates, one
    /// BUNDLE group of every track's mid, rtcp-mux and rtcp-rsize.
    public static func subscriberOffer(tracks: [SubscriberTrack], config: OfferConfiguration) -> SessionDescription {
        let (port, connection) = defaultCandidate(config.candidates)
        var offer = SessionDescription(
            origin: Origin(sessionID: config.sessionID, sessionVersion: config.sessionVersion, address: "0.0.0.0"))
        offer.attributes.append(MediaGroup(semantics: MediaGroup.bundle, mids: tracks.map(\.mid)).attribute)
        offer.attributes.append(SDPAttribute("ice-lite"))
        offer.attributes.append(SDPAttribute("msid-semantic", " WMS *"))

        for (i, t) in tracks.enumerated() {
            var formats = [String(t.codec.payloadType.rawValue)]
            if let rtx = t.codec.rtxPayloadType { formats.append(String(rtx.rawValue)) }
            var m = MediaDescription(kind: t.kind, port: port, proto: "UDP/TLS/RTP/SAVPF", formats: formats,
                                     connection: connection)
            var a: [SDPAttribute] = []
            if i == 0 {
                for c in config.candidates { a.append(SDPAttribute("candidate", c)) }
                a.append(SDPAttribute("end-of-candidates"))
            }
            a.append(SDPAttribute("ice-ufrag", config.iceUfrag))
            a.append(SDPAttribute("ice-pwd", config.icePassword))
            a.append(config.fingerprint.attribute)
            a.append(SetupRole.actpass.attribute)
            a.append(SDPAttribute("mid", t.mid.rawValue))
            for e in t.headerExtensions { a.append(e.attribute) }
            a.append(MediaDirection.sendonly.attribute)
            a.append(MediaStreamID(streamID: t.streamID, trackID: t.trackID).attribute)
            a.append(SDPAttribute("rtcp-mux"))
            a.append(SDPAttribute("rtcp-rsize"))
            let c = t.codec
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
