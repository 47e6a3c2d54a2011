import RTCBase

/// Something with an ordered list of `a=` lines: a session or a media section.
/// The typed accessors below read from `attributes`; values that do not parse
/// are skipped (the parser has already rejected those with a strict grammar).
public protocol AttributeContainer {
    var attributes: [SDPAttribute] { get set }
}

extension SessionDescription: AttributeContainer {}
extension MediaDescription: AttributeContainer {}

extension AttributeContainer {
    /// The first attribute with this name.
    public func attribute(named name: String) -> SDPAttribute? {
        attributes.first { $0.name == name }
    }

    public func hasAttribute(_ name: String) -> Bool {
        attributes.contains { $0.name == name }
    }

    /// The values of every attribute with this name, in order.
    public func values(of name: String) -> [String] {
        attributes.compactMap { $0.name == name ? ($0.value ?? "") : nil }
    }

    public func value(of name: String) -> String? {
        attribute(named: name)?.value
    }

    public mutating func append(_ attribute: SDPAttribute) { attributes.append(attribute) }

    public mutating func removeAttributes(named name: String) { attributes.removeAll { $0.name == name } }

    // MARK: RFC 8843 / RFC 5888

    /// `a=mid` (RFC 5888 §4).
    public var mid: Mid? { value(of: "mid").map(Mid.init(rawValue:)) }

    /// `a=group` lines (RFC 5888 §5).
    public var groups: [MediaGroup] { values(of: "group").compactMap(MediaGroup.init(value:)) }

    /// The first `a=group:BUNDLE` (RFC 8843 §7).
    public var bundleGroup: MediaGroup? { groups.first { $0.semantics == MediaGroup.bundle } }

    /// `a=bundle-only` (RFC 8843 §6).
    public var isBundleOnly: Bool { hasAttribute("bundle-only") }

    // MARK: Direction, RTP

    /// The last direction attribute, nil if none (RFC 3264 §6.1: the default is sendrecv).
    public var direction: MediaDirection? {
        for a in attributes.reversed() where a.value == nil {
            if let d = MediaDirection(rawValue: a.name) { return d }
        }
        return nil
    }

    public var rtpMaps: [RTPMap] { values(of: "rtpmap").compactMap(RTPMap.init(value:)) }

    public var formatParameters: [FormatParameters] { values(of: "fmtp").compactMap(FormatParameters.init(value:)) }

    public var rtcpFeedback: [RTCPFeedback] { values(of: "rtcp-fb").compactMap(RTCPFeedback.init(value:)) }

    public var extensionMaps: [ExtensionMap] { values(of: "extmap").compactMap(ExtensionMap.init(value:)) }

    /// `a=extmap-allow-mixed` (RFC 8285 §6).
    public var allowsMixedExtensions: Bool { hasAttribute("extmap-allow-mixed") }

    public var msid: MediaStreamID? { value(of: "msid").flatMap(MediaStreamID.init(value:)) }

    public var ssrcAttributes: [SSRCAttribute] { values(of: "ssrc").compactMap(SSRCAttribute.init(value:)) }

    public var ssrcGroups: [SSRCGroup] { values(of: "ssrc-group").compactMap(SSRCGroup.init(value:)) }

    /// Distinct SSRCs from `a=ssrc` lines, in first-seen order.
    public var ssrcs: [SSRC] {
        var seen = Set<SSRC>()
        var out: [SSRC] = []
        for a in ssrcAttributes where seen.insert(a.ssrc).inserted { out.append(a.ssrc) }
        return out
    }

    public var rids: [RIDDescription] { values(of: "rid").compactMap(RIDDescription.init(value:)) }

    public var simulcast: Simulcast? { value(of: "simulcast").flatMap(Simulcast.init(value:)) }

    /// `a=rtcp-mux` (RFC 5761 §5.1.1).
    public var isRTCPMux: Bool { hasAttribute("rtcp-mux") }

    /// `a=rtcp-rsize` (RFC 5506 §5).
    public var isRTCPReducedSize: Bool { hasAttribute("rtcp-rsize") }

    // MARK: ICE (RFC 8839), DTLS (RFC 8122, RFC 8842)

    public var iceUfrag: String? { value(of: "ice-ufrag") }
    public var icePassword: String? { value(of: "ice-pwd") }
    /// `a=ice-options` tokens, e.g. `trickle`, `ice2`.
    public var iceOptions: [String] {
        values(of: "ice-options").flatMap { v in splitWords(v.utf8[...]).map { String(utf8Slice: $0) } }
    }
    /// `a=ice-lite` (RFC 8839 §5.3), session level.
    public var isICELite: Bool { hasAttribute("ice-lite") }
    /// Candidate values (the text after `a=candidate:`), unparsed.
    public var candidates: [String] { values(of: "candidate") }
    /// `a=end-of-candidates` (RFC 8840 §8.2).
    public var hasEndOfCandidates: Bool { hasAttribute("end-of-candidates") }

    public var fingerprints: [Fingerprint] { values(of: "fingerprint").compactMap(Fingerprint.init(value:)) }

    public var setup: SetupRole? { value(of: "setup").flatMap(SetupRole.init(rawValue:)) }

    // MARK: SCTP (RFC 8841)

    public var sctpPort: UInt16? { value(of: "sctp-port").flatMap { parseDecimal($0.utf8, as: UInt16.self) } }
    public var maxMessageSize: UInt64? { value(of: "max-message-size").flatMap { parseDecimal($0.utf8, as: UInt64.self) } }
}

extension MediaDescription {
    /// The formats as payload types (RTP sections only; others give []).
    public var payloadTypes: [PayloadType] {
        guard isRTP else { return [] }
        return formats.compactMap { parsePayloadType($0.utf8[...]) }
    }

    public func rtpMap(for pt: PayloadType) -> RTPMap? { rtpMaps.first { $0.payloadType == pt } }

    public func formatParameters(for pt: PayloadType) -> FormatParameters? {
        let key = String(pt.rawValue)
        return formatParameters.first { $0.format == key }
    }

    public func rtcpFeedback(for pt: PayloadType) -> [RTCPFeedback] {
        rtcpFeedback.filter { $0.payloadType == pt || $0.payloadType == nil }
    }

    /// The first payload type (in `m=` line order, i.e. preference) whose
    /// encoding name matches.
    public func payloadType(forCodec name: String, clockRate: UInt32? = nil) -> PayloadType? {
        let maps = rtpMaps
        for pt in payloadTypes {
            if let m = maps.first(where: { $0.payloadType == pt }), m.isCodec(name),
               clockRate == nil || m.clockRate == clockRate {
                return pt
            }
        }
        return nil
    }

    /// The RTX payload type whose `apt=` points at `pt` (RFC 4588 §8.6).
    public func rtxPayloadType(for pt: PayloadType) -> PayloadType? {
        let maps = rtpMaps
        for f in formatParameters where f.associatedPayloadType == pt {
            if let rtx = f.payloadType, maps.contains(where: { $0.payloadType == rtx && $0.isCodec("rtx") }) {
                return rtx
            }
        }
        return nil
    }

    /// Direction with the RFC 3264 §6.1 default applied.
    public var effectiveDirection: MediaDirection { direction ?? .sendrecv }

    /// True when the port is 0 and the section is not bundle-only (RFC 8843 §6).
    public var isRejected: Bool { port == 0 && !isBundleOnly }
}

extension SessionDescription {
    /// A transport attribute looked up in the media section first, then at
    /// session level (RFC 8839 §5.4: ice-ufrag/ice-pwd may be at either).
    public func iceUfrag(for media: MediaDescription) -> String? { media.iceUfrag ?? iceUfrag }
    public func icePassword(for media: MediaDescription) -> String? { media.icePassword ?? icePassword }
    public func fingerprints(for media: MediaDescription) -> [Fingerprint] {
        let m = media.fingerprints
        return m.isEmpty ? fingerprints : m
    }
    public func setup(for media: MediaDescription) -> SetupRole? { media.setup ?? setup }

    /// The media section with this mid.
    public func media(withMid mid: Mid) -> MediaDescription? { media.first { $0.mid == mid } }
}
