import ICE
import RTCBase
import SDP

/// The local side of one peer connection as SDP carries it.
public struct LocalTransportParameters: Sendable, Hashable {
    public var iceUfrag: String
    public var icePassword: String
    /// Our DTLS certificate fingerprint.
    public var fingerprint: Fingerprint
    /// Our host candidates as candidate-attribute values
    /// (`1 1 udp 2130706431 127.0.0.1 40000 typ host`).
    public var candidates: [String]

    public init(iceUfrag: String, icePassword: String, fingerprint: Fingerprint, candidates: [String]) {
        self.iceUfrag = iceUfrag
        self.icePassword = icePassword
        self.fingerprint = fingerprint
        self.candidates = candidates
    }

    /// Candidate-attribute values from ICE candidates (`candidate:` dropped,
    /// RFC 8839 §5.1: the attribute value starts at the foundation).
    public static func candidateValues(_ candidates: [ICECandidate]) -> [String] {
        candidates.map { c in
            let text = c.description
            return text.hasPrefix("candidate:") ? String(text.dropFirst("candidate:".count)) : text
        }
    }
}

/// The remote side of a peer connection, read from the SFU's SDP.
public struct RemoteTransportParameters: Sendable, Hashable {
    public var credentials: ICECredentials
    public var fingerprint: Fingerprint
    /// UDP candidates only: this client has no ICE-TCP (RFC 6544) agent, so
    /// the SFU's passive TCP candidate is left out.
    public var candidates: [ICECandidate]
    /// Our DTLS role, from the remote `a=setup` (RFC 8842 §5.2): the SFU
    /// answering `passive` makes us the DTLS client.
    public var weAreDTLSClient: Bool
    public var isICELite: Bool

    /// Reads the transport of a BUNDLE group from its first usable
    /// m-section (RFC 8843 §7: the BUNDLE-tagged section carries it).
    /// `localSetup` is what our own description says (`actpass` for an
    /// offer, `active`/`passive` for an answer).
    static func read(_ sdp: SessionDescription, localSetup: SetupRole) throws(NegotiationError) -> RemoteTransportParameters {
        guard let m = sdp.media.first(where: { $0.port != 0 || $0.isBundleOnly }), let mid = m.mid else {
            throw .noUsableMedia
        }
        guard let ufrag = sdp.iceUfrag(for: m), let password = sdp.icePassword(for: m) else {
            throw .missingICECredentials(mid)
        }
        guard let fingerprint = sdp.fingerprints(for: m).first(where: { $0.hashFunction == "sha-256" })
            ?? sdp.fingerprints(for: m).first else { throw .missingFingerprint(mid) }
        var candidates: [ICECandidate] = []
        // Candidates may sit in any bundled section (aiortc-style SDP puts
        // them in each); the first section's come first.
        for section in sdp.media where section.port != 0 || section.isBundleOnly {
            for value in section.candidates {
                guard let c = try? ICECandidate(parsing: value), c.transport == .udp, c.component == 1,
                      c.address != nil, !candidates.contains(c) else { continue }
                candidates.append(c)
            }
        }
        let remoteSetup = sdp.setup(for: m) ?? .active  // RFC 4145 §4: absent means active
        let client: Bool
        switch (localSetup, remoteSetup) {
        case (_, .passive): client = true
        case (_, .active): client = false
        case (.active, .actpass): client = true
        case (.passive, .actpass): client = false
        default: throw .unsupportedSetup(remoteSetup)
        }
        return RemoteTransportParameters(credentials: ICECredentials(ufrag: ufrag, password: password),
                                         fingerprint: fingerprint, candidates: candidates, weAreDTLSClient: client,
                                         isICELite: sdp.isICELite)
    }
}

// MARK: - Publishing

/// One stream of the publish offer: an m-section that sends.
public struct PublishedStream: Sendable, Hashable {
    public enum Source: String, Sendable, Hashable, Codable {
        case microphone, camera, screen
    }

    public var source: Source
    public var mid: Mid
    public var payloadType: PayloadType
    /// RTX (RFC 4588) for video: its payload type and SSRC.
    public var rtxPayloadType: PayloadType?
    public var ssrc: SSRC
    public var rtxSSRC: SSRC?
    /// `a=msid` (RFC 8830): camera and microphone share a stream id so
    /// receivers play them in sync; a screen share has its own.
    public var streamID: String
    public var trackID: String

    public init(source: Source, mid: Mid, payloadType: PayloadType, rtxPayloadType: PayloadType? = nil, ssrc: SSRC,
                rtxSSRC: SSRC? = nil, streamID: String, trackID: String) {
        self.source = source
        self.mid = mid
        self.payloadType = payloadType
        self.rtxPayloadType = rtxPayloadType
        self.ssrc = ssrc
        self.rtxSSRC = rtxSSRC
        self.streamID = streamID
        self.trackID = trackID
    }

    public var kind: MediaKind { source == .microphone ? .audio : .video }
}

/// RTP header extension ids this client uses when it publishes (RFC 8285,
/// one-byte form). The same ids in every bundled m-section: an id means one
/// extension across the whole BUNDLE group (RFC 8843 §9.2).
public enum PublishExtensionID {
    public static let mid: UInt8 = 4
    public static let transportCC: UInt8 = 3
}

/// Header extensions the SFU kept in its answer (it keeps the offer's ids
/// for the ones it supports, RFC 8285 §7).
public struct NegotiatedExtensions: Sendable, Hashable {
    public var mid: UInt8?
    public var transportCC: UInt8?
    public var absSendTime: UInt8?
    public var audioLevel: UInt8?

    public init(mid: UInt8? = nil, transportCC: UInt8? = nil, absSendTime: UInt8? = nil, audioLevel: UInt8? = nil) {
        self.mid = mid
        self.transportCC = transportCC
        self.absSendTime = absSendTime
        self.audioLevel = audioLevel
    }

    init(_ media: MediaDescription) {
        for e in media.extensionMaps where (1...14).contains(e.id) {
            let id = UInt8(e.id)
            switch e.uri {
            case HeaderExtensionURI.mid: mid = id
            case HeaderExtensionURI.transportWideCC: transportCC = id
            case HeaderExtensionURI.absSendTime: absSendTime = id
            case HeaderExtensionURI.audioLevel: audioLevel = id
            default: break
            }
        }
    }
}

/// The publish offer and what the SFU's answer to it says.
public enum PublishNegotiation {
    /// A JSEP-shaped (RFC 8829 §5.2.1) offer: one sendonly m-section per
    /// stream, all in one BUNDLE group (RFC 8843), rtcp-mux (RFC 5761) and
    /// reduced-size RTCP (RFC 5506), `a=setup:actpass` (RFC 8842 §5.2),
    /// Opus (RFC 7587) or VP8 (RFC 7741) with RTX (RFC 4588) and the RTCP
    /// feedback the SFU acts on (NACK, PLI, FIR, REMB, transport-cc), and
    /// `a=ssrc` / `a=ssrc-group:FID` (RFC 5576) so the SFU knows our SSRCs
    /// before the first packet.
    public static func offer(streams: [PublishedStream], transport: LocalTransportParameters, cname: String,
                             sessionID: UInt64, sessionVersion: UInt64 = 1) -> SessionDescription {
        var sdp = SessionDescription(origin: Origin(sessionID: sessionID, sessionVersion: sessionVersion,
                                                    address: "127.0.0.1"))
        sdp.attributes.append(MediaGroup(semantics: MediaGroup.bundle, mids: streams.map(\.mid)).attribute)
        let streamIDs = streams.reduce(into: [String]()) { if !$0.contains($1.streamID) { $0.append($1.streamID) } }
        sdp.attributes.append(SDPAttribute("msid-semantic", " WMS " + streamIDs.joined(separator: " ")))
        let (port, connection) = defaultCandidate(transport.candidates)

        for (index, stream) in streams.enumerated() {
            var formats = [String(stream.payloadType.rawValue)]
            if let rtx = stream.rtxPayloadType { formats.append(String(rtx.rawValue)) }
            var m = MediaDescription(kind: stream.kind, port: port, proto: "UDP/TLS/RTP/SAVPF", formats: formats,
                                     connection: connection)
            // With BUNDLE the offerer's candidates go with the tagged (first) m-section.
            var a = SDPAttribute.transport(iceUfrag: transport.iceUfrag, icePassword: transport.icePassword,
                                           fingerprint: transport.fingerprint, setup: .actpass,
                                           candidates: index == 0 ? transport.candidates : nil)
            a.append(SDPAttribute("mid", stream.mid.rawValue))
            a.append(ExtensionMap(id: UInt16(PublishExtensionID.mid), uri: HeaderExtensionURI.mid).attribute)
            a.append(ExtensionMap(id: UInt16(PublishExtensionID.transportCC), uri: HeaderExtensionURI.transportWideCC).attribute)
            a.append(MediaDirection.sendonly.attribute)
            a.append(MediaStreamID(streamID: stream.streamID, trackID: stream.trackID).attribute)
            a.append(SDPAttribute("rtcp-mux"))
            a.append(SDPAttribute("rtcp-rsize"))
            let pt = stream.payloadType
            if stream.kind == .audio {
                a.append(RTPMap(payloadType: pt, encodingName: "opus", clockRate: 48000, channels: 2).attribute)
                a.append(RTCPFeedback(payloadType: pt, type: "transport-cc").attribute)
                // RFC 7587 §7: stereo/sprop-stereo say we send (and take) two channels.
                a.append(FormatParameters(payloadType: pt, parameters: [
                    FormatParameter(name: "minptime", value: "10"), FormatParameter(name: "useinbandfec", value: "1"),
                    FormatParameter(name: "stereo", value: "1"), FormatParameter(name: "sprop-stereo", value: "1"),
                ]).attribute)
            } else {
                a.append(RTPMap(payloadType: pt, encodingName: "VP8", clockRate: 90000).attribute)
                for kind in [RTCPFeedbackKind.remb, .transportCC, .fir, .nack, .pli] {
                    a.append(RTCPFeedback(payloadType: pt, type: kind.type, parameter: kind.parameter).attribute)
                }
                if let rtx = stream.rtxPayloadType {
                    a.append(RTPMap(payloadType: rtx, encodingName: "rtx", clockRate: 90000).attribute)
                    a.append(FormatParameters(payloadType: rtx, parameters: [
                        FormatParameter(name: "apt", value: String(pt.rawValue)),
                    ]).attribute)
                }
            }
            var ssrcs = [stream.ssrc]
            if let rtx = stream.rtxSSRC, stream.rtxPayloadType != nil {
                // RFC 5576 §4.2: the group before the ssrc lines it names.
                a.append(SSRCGroup(semantics: SSRCGroup.fid, ssrcs: [stream.ssrc, rtx]).attribute)
                ssrcs.append(rtx)
            }
            for s in ssrcs {
                a.append(SSRCAttribute(ssrc: s, name: "cname", value: cname).attribute)
                a.append(SSRCAttribute(ssrc: s, name: "msid", value: stream.streamID + " " + stream.trackID).attribute)
            }
            m.attributes = a
            sdp.media.append(m)
        }
        return sdp
    }

    /// What the SFU's publish answer settles.
    public struct Answer: Sendable, Hashable {
        public var remote: RemoteTransportParameters
        /// Mids the SFU accepted (non-zero port, RFC 3264 §6).
        public var acceptedMids: [Mid]
        /// Mids whose answer lists the RTX payload type: only there may
        /// repairs go out as RTX (RFC 4588 §8.6).
        public var rtxMids: Set<Mid>
        public var extensions: NegotiatedExtensions
    }

    public static func readAnswer(_ answer: SessionDescription, to offer: SessionDescription) throws(NegotiationError) -> Answer {
        guard answer.media.count == offer.media.count else { throw .answerMismatch }
        var accepted: [Mid] = []
        var rtx = Set<Mid>()
        var extensions: NegotiatedExtensions?
        for (o, a) in zip(offer.media, answer.media) {
            guard let mid = o.mid, a.kind == o.kind else { throw .answerMismatch }
            if let am = a.mid, am != mid { throw .answerMismatch }
            guard a.port != 0 || a.isBundleOnly else { continue }
            accepted.append(mid)
            if let vp8 = o.payloadType(forCodec: "VP8"), let offeredRTX = o.rtxPayloadType(for: vp8),
               a.payloadTypes.contains(offeredRTX) {
                rtx.insert(mid)
            }
            if extensions == nil { extensions = NegotiatedExtensions(a) }
        }
        guard !accepted.isEmpty else { throw .noUsableMedia }
        return Answer(remote: try RemoteTransportParameters.read(answer, localSetup: .actpass), acceptedMids: accepted,
                      rtxMids: rtx, extensions: extensions ?? NegotiatedExtensions())
    }

    /// The m= port and c= of the first candidate (RFC 8839 §4.2.1.2: the
    /// default candidate), or 9 / 0.0.0.0 (RFC 8840 §4.1.1).
    static func defaultCandidate(_ candidates: [String]) -> (UInt16, ConnectionData) {
        guard let first = candidates.first else { return (9, ConnectionData()) }
        let words = first.split(separator: " ")
        guard words.count >= 6, let port = UInt16(words[5]), IPAddress(words[4]) != nil else { return (9, ConnectionData()) }
        let address = String(words[4])
        return (port, ConnectionData(addressType: address.contains(":") ? "IP6" : "IP4", address: address))
    }
}

// MARK: - Subscribing

/// One m-section of a subscribe offer, as the receiver routes RTP by it.
public struct ReceiveLine: Sendable, Hashable {
    public var mid: Mid
    public var kind: MediaKind
    /// False for an `a=inactive` line whose track has left (JSEP keeps the
    /// m-section, RFC 8829 §5.2.2).
    public var isActive: Bool
    public var payloadType: PayloadType
    public var rtxPayloadType: PayloadType?
    public var clockRate: UInt32
    public var ssrc: SSRC?
    public var rtxSSRC: SSRC?
    /// `a=msid` (RFC 8830): the track id equals the `tracks` frame's `track_id`.
    public var streamID: String?
    public var trackID: String?
    /// Negotiated header extension ids of this line.
    public var extensions: NegotiatedExtensions
    /// Whether NACK / PLI were offered: only then may we send them (RFC 4585 §4.2).
    public var nack: Bool
    public var pli: Bool
}

/// Our answer to a `subscribe_offer` and what it settles.
public struct SubscribeNegotiation: Sendable {
    public var answer: SessionDescription
    public var lines: [ReceiveLine]
    public var remote: RemoteTransportParameters

    /// Answers the SFU's sendonly offer with recvonly (RFC 3264 §6.1),
    /// keeping its payload types and header extension ids, as the DTLS
    /// client (`a=setup:active`, RFC 8842 §5.3: the SFU offers actpass and
    /// waits as the server), with our host candidates. `SessionDescription.answer`
    /// writes an ICE-lite answer (it is the SFU's answerer); this client runs
    /// a full agent, so the `a=ice-lite` line is dropped: two lite agents
    /// could never connect (RFC 8445 §2.5).
    public init(offer: SessionDescription, transport: LocalTransportParameters, sessionID: UInt64,
                sessionVersion: UInt64) throws(NegotiationError) {
        var config = AnswerConfiguration(
            iceUfrag: transport.iceUfrag, icePassword: transport.icePassword, fingerprint: transport.fingerprint,
            candidates: transport.candidates, sessionID: sessionID, sessionVersion: sessionVersion,
            setupRole: .active, allowSending: false)
        config.acceptVideoRTX = true
        var answer = try SessionDescription.answer(to: offer, config: config)
        answer.removeAttributes(named: "ice-lite")
        answer.origin.address = "127.0.0.1"

        var lines: [ReceiveLine] = []
        for (index, (o, a)) in zip(offer.media, answer.media).enumerated() {
            guard let mid = o.mid, a.port != 0 || a.isBundleOnly, let summaryCodec = CodecChoice.select(from: a, acceptRTX: true)
            else { continue }
            let summary = o.summary(index: index)
            let feedback = o.rtcpFeedback(for: summaryCodec.codec.payloadType)
            lines.append(ReceiveLine(
                mid: mid, kind: o.kind, isActive: o.effectiveDirection.sends,
                payloadType: summaryCodec.codec.payloadType, rtxPayloadType: summaryCodec.rtx?.payloadType,
                clockRate: summaryCodec.codec.clockRate,
                ssrc: summary.ssrcs.first, rtxSSRC: summary.ssrcs.first.flatMap { summary.rtxSSRCs[$0] },
                streamID: o.msid?.streamID, trackID: o.msid?.trackID, extensions: NegotiatedExtensions(a),
                nack: feedback.contains { $0.type == "nack" && $0.parameter == nil },
                pli: feedback.contains { $0.type == "nack" && $0.parameter == "pli" }))
        }
        self.answer = answer
        self.lines = lines
        remote = try RemoteTransportParameters.read(offer, localSetup: .active)
    }
}
