import RTCBase

/// Why an offer cannot be answered (or an answer cannot be used).
public enum NegotiationError: Error, Hashable, Sendable {
    /// The offer has no `a=group:BUNDLE`; the SFU serves everything over one
    /// transport (RFC 8843) and may not add BUNDLE in an answer (RFC 8843 §7.3).
    case bundleNotOffered
    /// No m-section could be accepted (no Opus/VP8 media inside the BUNDLE group).
    case noUsableMedia
    /// An m-section the SFU would accept has no `a=mid` (RFC 8843 §7.2 needs one).
    case missingMid(index: Int)
    /// No `a=ice-ufrag`/`a=ice-pwd` at media or session level (RFC 8839 §5.4).
    case missingICECredentials(Mid)
    /// No usable `a=fingerprint` at media or session level (RFC 8122 §5).
    case missingFingerprint(Mid)
    /// `a=setup:holdconn`, or an answer whose role conflicts with ours (RFC 4145 §4).
    case unsupportedSetup(SetupRole)
    /// The offer does not offer `a=rtcp-mux`, which the SFU requires (RFC 8829 §4.1.2).
    case rtcpMuxNotOffered(Mid)
    /// The configuration asks for something impossible (e.g. answering with actpass).
    case invalidConfiguration
    /// An answer that does not belong to the offer (unknown or missing m-sections).
    case answerMismatch
}

/// What the SFU answers with, and what it accepts.
public struct AnswerConfiguration: Sendable {
    public var iceUfrag: String
    public var icePassword: String
    /// Our DTLS certificate fingerprint (sha-256 normally).
    public var fingerprint: Fingerprint
    /// Our ICE candidates as candidate-attribute values
    /// (`1 1 udp 2130706431 192.0.2.1 3478 typ host`); written into the first
    /// accepted m-section followed by `a=end-of-candidates`.
    public var candidates: [String]
    /// `o=` session id (RFC 8829 §5.2.1: random, 63 bits). Passed in so answers
    /// are deterministic.
    public var sessionID: UInt64
    public var sessionVersion: UInt64
    /// Our DTLS role when the offer says actpass: `.passive` (the client starts
    /// the handshake) or `.active`.
    public var setupRole: SetupRole
    /// When true, a sendrecv offer is answered sendrecv and a recvonly offer
    /// sendonly (the SFU will also send on that m-section); otherwise the SFU
    /// only receives: sendrecv → recvonly, recvonly → inactive.
    public var allowSending: Bool
    /// Accept the RTX payload type offered for VP8 (RFC 4588, `apt=`).
    public var acceptVideoRTX: Bool
    /// Header extension URIs to keep (with the offer's ids).
    public var headerExtensions: [String]
    /// RTCP feedback kinds to keep.
    public var rtcpFeedback: [RTCPFeedbackKind]

    public static let defaultHeaderExtensions: [String] = [
        HeaderExtensionURI.mid, HeaderExtensionURI.rtpStreamID, HeaderExtensionURI.repairedRTPStreamID,
        HeaderExtensionURI.absSendTime, HeaderExtensionURI.transportWideCC, HeaderExtensionURI.audioLevel,
    ]
    public static let defaultRTCPFeedback: [RTCPFeedbackKind] = [.nack, .pli, .fir, .remb, .transportCC]

    public init(
        iceUfrag: String, icePassword: String, fingerprint: Fingerprint, candidates: [String],
        sessionID: UInt64, sessionVersion: UInt64 = 1, setupRole: SetupRole = .passive,
        allowSending: Bool = false, acceptVideoRTX: Bool = true,
        headerExtensions: [String] = AnswerConfiguration.defaultHeaderExtensions,
        rtcpFeedback: [RTCPFeedbackKind] = AnswerConfiguration.defaultRTCPFeedback
    ) {
        self.iceUfrag = iceUfrag
        self.icePassword = icePassword
        self.fingerprint = fingerprint
        self.candidates = candidates
        self.sessionID = sessionID
        self.sessionVersion = sessionVersion
        self.setupRole = setupRole
        self.allowSending = allowSending
        self.acceptVideoRTX = acceptVideoRTX
        self.headerExtensions = headerExtensions
        self.rtcpFeedback = rtcpFeedback
    }
}

/// The codec the SFU picks in one m-section: Opus for audio, VP8 (+ RTX) for video.
public struct CodecChoice: Hashable, Sendable {
    public var codec: RTPMap
    public var formatParameters: FormatParameters?
    public var rtx: RTPMap?
    public var rtxFormatParameters: FormatParameters?

    /// The payload types in m= line order.
    public var payloadTypes: [PayloadType] {
        rtx.map { [codec.payloadType, $0.payloadType] } ?? [codec.payloadType]
    }

    /// Picks from what a media section offers, keeping its payload type numbers:
    /// the first Opus/48000/2 for audio, the first VP8/90000 for video, and the
    /// RTX type whose `apt=` names that VP8 type when `acceptRTX`.
    public static func select(from media: MediaDescription, acceptRTX: Bool) -> CodecChoice? {
        guard media.isRTP else { return nil }
        let maps = media.rtpMaps
        let fmtps = media.formatParameters
        func fmtp(_ pt: PayloadType) -> FormatParameters? {
            let key = String(pt.rawValue)
            return fmtps.first { $0.format == key }
        }
        let offered = media.payloadTypes
        func first(_ match: (RTPMap) -> Bool) -> RTPMap? {
            for pt in offered {
                if let m = maps.first(where: { $0.payloadType == pt }), match(m) { return m }
            }
            return nil
        }
        switch media.kind {
        case .audio:
            // RFC 7587 §7: opus/48000/2 always.
            guard let opus = first({ $0.isCodec("opus") && $0.clockRate == 48000 }) else { return nil }
            return CodecChoice(codec: opus, formatParameters: fmtp(opus.payloadType))
        case .video:
            guard let vp8 = first({ $0.isCodec("VP8") && $0.clockRate == 90000 }) else { return nil }
            var choice = CodecChoice(codec: vp8, formatParameters: fmtp(vp8.payloadType))
            if acceptRTX,
               let rtx = first({ m in m.isCodec("rtx") && fmtp(m.payloadType)?.associatedPayloadType == vp8.payloadType }) {
                choice.rtx = rtx
                choice.rtxFormatParameters = fmtp(rtx.payloadType)
            }
            return choice
        default:
            return nil
        }
    }
}

extension SessionDescription {
    /// The SFU's answer to a client's offer (JSEP RFC 8829 §5.3.1, as an
    /// ICE-lite, DTLS-SRTP, BUNDLE-only endpoint).
    ///
    /// Per m-section: audio with Opus and video with VP8 (+RTX) inside the
    /// offer's BUNDLE group are accepted with the offer's payload type numbers
    /// and header extension ids; everything else (data channels, other kinds,
    /// other codecs, media outside the BUNDLE group) is rejected with port 0
    /// (RFC 3264 §6) and left out of the answer's BUNDLE group (RFC 8843 §7.3.3).
    public static func answer(to offer: SessionDescription, config: AnswerConfiguration) throws(NegotiationError) -> SessionDescription {
        guard config.setupRole == .passive || config.setupRole == .active else { throw .invalidConfiguration }
        guard let offerBundle = offer.bundleGroup else { throw .bundleNotOffered }

        let (port, connection) = defaultCandidate(config.candidates)

        var answer = SessionDescription(
            origin: Origin(sessionID: config.sessionID, sessionVersion: config.sessionVersion, address: "0.0.0.0"))
        // RFC 8839 §5.3: ice-lite is a session-level attribute.
        answer.attributes.append(SDPAttribute("ice-lite"))

        var acceptedMids: [Mid] = []
        var wroteCandidates = false

        for (index, offered) in offer.media.enumerated() {
            let mid = offered.mid
            // RFC 8843 §7.2: every m-section of an offer with BUNDLE carries a mid.
            if mid == nil && !offered.isRejected && (offered.kind == .audio || offered.kind == .video) {
                throw .missingMid(index: index)
            }
            var choice: CodecChoice?
            if !offered.isRejected, let mid, offerBundle.mids.contains(mid), offered.proto.contains("RTP/SAVP") {
                choice = CodecChoice.select(from: offered, acceptRTX: config.acceptVideoRTX)
            }
            guard let choice, let mid else {
                answer.media.append(rejected(offered))
                continue
            }

            // Transport checks, only for what we accept.
            guard offer.iceUfrag(for: offered) != nil, offer.icePassword(for: offered) != nil else {
                throw .missingICECredentials(mid)
            }
            guard !offer.fingerprints(for: offered).isEmpty else { throw .missingFingerprint(mid) }
            guard offered.isRTCPMux else { throw .rtcpMuxNotOffered(mid) }
            let setup: SetupRole
            switch offer.setup(for: offered) ?? .active { // RFC 4145 §4: absent means active
            case .actpass: setup = config.setupRole
            case .active: setup = .passive
            case .passive: setup = .active
            case .holdconn: throw .unsupportedSetup(.holdconn)
            }

            var m = MediaDescription(kind: offered.kind, port: port, proto: offered.proto,
                                     formats: choice.payloadTypes.map { String($0.rawValue) },
                                     connection: connection)
            // Candidates go with the answerer's BUNDLE-tagged (first accepted) m-section.
            var a = SDPAttribute.transport(iceUfrag: config.iceUfrag, icePassword: config.icePassword,
                                           fingerprint: config.fingerprint, setup: setup,
                                           candidates: wroteCandidates ? nil : config.candidates)
            wroteCandidates = true
            a.append(SDPAttribute("mid", mid.rawValue))
            for e in offered.extensionMaps where config.headerExtensions.contains(e.uri) {
                a.append(ExtensionMap(id: e.id, uri: e.uri).attribute)
            }
            a.append(answerDirection(offered.effectiveDirection, allowSending: config.allowSending).attribute)
            a.append(SDPAttribute("rtcp-mux"))
            if offered.isRTCPReducedSize { a.append(SDPAttribute("rtcp-rsize")) }

            a.append(choice.codec.attribute)
            let feedback = offered.rtcpFeedback
            for f in feedback where (f.payloadType == choice.codec.payloadType || f.payloadType == nil)
                && config.rtcpFeedback.contains(f.kind) {
                a.append(RTCPFeedback(payloadType: choice.codec.payloadType, type: f.type, parameter: f.parameter).attribute)
            }
            if let f = choice.formatParameters { a.append(f.attribute) }
            if let rtx = choice.rtx {
                a.append(rtx.attribute)
                if let f = choice.rtxFormatParameters { a.append(f.attribute) }
            }

            // RFC 8853 §5.3: mirror the offered send simulcast as receive, with
            // a recv rid for each offered send rid it names.
            if let sim = offered.simulcast, !sim.send.isEmpty {
                let offeredRIDs = offered.rids
                var mirrored: [[SimulcastStream]] = []
                for alternatives in sim.send {
                    var kept: [SimulcastStream] = []
                    for s in alternatives {
                        guard let r = offeredRIDs.first(where: { $0.rid == s.rid && $0.direction == .send }) else { continue }
                        // Keep only payload-type restrictions we accepted; a rid
                        // restricted to formats we rejected cannot be received.
                        let pts = r.payloadTypes.filter { choice.payloadTypes.contains($0) }
                        if !r.payloadTypes.isEmpty && pts.isEmpty { continue }
                        a.append(RIDDescription(rid: r.rid, direction: .recv, payloadTypes: pts,
                                                restrictions: r.restrictions).attribute)
                        kept.append(s)
                    }
                    if !kept.isEmpty { mirrored.append(kept) }
                }
                if !mirrored.isEmpty {
                    a.append(Simulcast(receive: mirrored).attribute)
                }
            }
            m.attributes = a
            answer.media.append(m)
            acceptedMids.append(mid)
        }

        guard !acceptedMids.isEmpty else { throw .noUsableMedia }
        // RFC 8843 §7.3: the answer's group lists the accepted mids in the offer's order.
        let ordered = offerBundle.mids.filter { acceptedMids.contains($0) }
        answer.attributes.insert(MediaGroup(semantics: MediaGroup.bundle, mids: ordered).attribute, at: 0)
        return answer
    }

    static func answerDirection(_ offered: MediaDirection, allowSending: Bool) -> MediaDirection {
        switch offered {
        case .sendonly: return .recvonly
        case .sendrecv: return allowSending ? .sendrecv : .recvonly
        case .recvonly: return allowSending ? .sendonly : .inactive
        case .inactive: return .inactive
        }
    }

    /// A rejected m-section (RFC 3264 §6, RFC 8829 §5.3.1): port 0, the offered
    /// formats, and the mid so the offerer can match it.
    static func rejected(_ offered: MediaDescription) -> MediaDescription {
        var m = MediaDescription(kind: offered.kind, port: 0, proto: offered.proto, formats: offered.formats,
                                 connection: ConnectionData())
        if let mid = offered.mid { m.attributes.append(SDPAttribute("mid", mid.rawValue)) }
        return m
    }

    /// The port and c= address of the first candidate (RFC 8839 §4.2.1.2: the
    /// m= line carries the default candidate), or 9 / 0.0.0.0 (RFC 8840 §4.1.1).
    static func defaultCandidate(_ candidates: [String]) -> (UInt16, ConnectionData) {
        // candidate-attribute: foundation component transport priority address port typ ...
        if let first = candidates.first {
            let w = splitWords(first.utf8[...])
            if w.count >= 6, let port = parseDecimal(w[5], as: UInt16.self) {
                let address = String(utf8Slice: w[4])
                if IPAddress(address) != nil {
                    return (port, ConnectionData(addressType: address.contains(":") ? "IP6" : "IP4", address: address))
                }
            }
        }
        return (9, ConnectionData())
    }
}
