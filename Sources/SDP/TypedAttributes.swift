import RTCBase

// Typed views of the attributes WebRTC needs. Each type parses from the
// attribute value (the text after `a=<name>:`) with `init?(value:)`, returning
// nil when the value does not follow its grammar, and formats back with
// `attribute`, in the form browsers write so round trips are byte-identical.

/// Media direction attributes (RFC 8866 §6.7, RFC 3264 §6.1).
public enum MediaDirection: String, Hashable, Sendable, CaseIterable {
    case sendrecv, sendonly, recvonly, inactive

    /// The direction an answer takes for an offer in this direction when the
    /// answerer is willing to do everything (RFC 3264 §6.1).
    public var reversed: MediaDirection {
        switch self {
        case .sendonly: return .recvonly
        case .recvonly: return .sendonly
        case .sendrecv, .inactive: return self
        }
    }

    public var sends: Bool { self == .sendrecv || self == .sendonly }
    public var receives: Bool { self == .sendrecv || self == .recvonly }

    public var attribute: SDPAttribute { SDPAttribute(rawValue) }
}

/// `a=setup` (RFC 4145 §4, RFC 8842 §5).
public enum SetupRole: String, Hashable, Sendable, CaseIterable {
    case actpass, active, passive, holdconn

    public var attribute: SDPAttribute { SDPAttribute("setup", rawValue) }
}

/// `a=rtpmap:<payload type> <encoding name>/<clock rate>[/<encoding parameters>]`
/// (RFC 8866 §6.6).
public struct RTPMap: Hashable, Sendable {
    public var payloadType: PayloadType
    public var encodingName: String
    public var clockRate: UInt32
    /// Audio channel count (the encoding parameters), e.g. 2 for Opus.
    public var channels: UInt16?

    public init(payloadType: PayloadType, encodingName: String, clockRate: UInt32, channels: UInt16? = nil) {
        self.payloadType = payloadType
        self.encodingName = encodingName
        self.clockRate = clockRate
        self.channels = channels
    }

    public init?(value: String) {
        let v = value.utf8[...]
        guard let sp = v.firstIndex(of: ASCII.space),
              let pt = parsePayloadType(v[v.startIndex..<sp]) else { return nil }
        let rest = trimSpaces(v[v.index(after: sp)...])
        let parts = rest.split(separator: ASCII.slash, omittingEmptySubsequences: false)
        guard parts.count == 2 || parts.count == 3, !parts[0].isEmpty,
              !parts[0].contains(ASCII.space),
              let rate = parseDecimal(parts[1], as: UInt32.self) else { return nil }
        var channels: UInt16?
        if parts.count == 3 {
            guard let c = parseDecimal(parts[2], as: UInt16.self) else { return nil }
            channels = c
        }
        self.init(payloadType: pt, encodingName: String(utf8Slice: parts[0]), clockRate: rate, channels: channels)
    }

    /// Case-insensitive match on the encoding name (RFC 8866 §6.6: names are
    /// case-insensitive; browsers write "opus" and "VP8").
    public func isCodec(_ name: String) -> Bool { encodingName.lowercased() == name.lowercased() }

    public var attribute: SDPAttribute {
        var s = "\(payloadType.rawValue) \(encodingName)/\(clockRate)"
        if let channels { s += "/\(channels)" }
        return SDPAttribute("rtpmap", s)
    }
}

/// One `name=value` (or bare `name`) parameter.
public struct FormatParameter: Hashable, Sendable {
    public var name: String
    public var value: String?

    public init(name: String, value: String?) {
        self.name = name
        self.value = value
    }
}

/// `a=fmtp:<format> <parameters>` (RFC 8866 §6.15). Parameters are split on
/// `;` and `=` as most payload formats define them; a parameter without `=`
/// (RED's `111/111`) is kept with a nil value.
public struct FormatParameters: Hashable, Sendable {
    /// A payload type number for RTP, or a token such as `webrtc-datachannel`.
    public var format: String
    public var parameters: [FormatParameter]

    public init(format: String, parameters: [FormatParameter]) {
        self.format = format
        self.parameters = parameters
    }

    public init(payloadType: PayloadType, parameters: [FormatParameter]) {
        self.init(format: String(payloadType.rawValue), parameters: parameters)
    }

    public init?(value: String) {
        let v = value.utf8[...]
        let (fmt, rest) = splitOnce(v, at: ASCII.space)
        guard !fmt.isEmpty else { return nil }
        var params: [FormatParameter] = []
        if let rest {
            for piece in rest.split(separator: ASCII.semicolon, omittingEmptySubsequences: true) {
                let p = trimSpaces(piece)
                if p.isEmpty { continue }
                let (name, val) = splitOnce(p, at: ASCII.equals)
                params.append(FormatParameter(name: String(utf8Slice: trimSpaces(name)),
                                              value: val.map { String(utf8Slice: trimSpaces($0)) }))
            }
        }
        self.init(format: String(utf8Slice: fmt), parameters: params)
    }

    public var payloadType: PayloadType? { parsePayloadType(format.utf8[...]) }

    /// The value of the first parameter with this name (case-insensitive).
    public subscript(name: String) -> String? {
        let lower = name.lowercased()
        return parameters.first { $0.name.lowercased() == lower }?.value
    }

    /// The RTX associated payload type (`apt=`, RFC 4588 §8.6).
    public var associatedPayloadType: PayloadType? {
        self["apt"].flatMap { parsePayloadType($0.utf8[...]) }
    }

    public var attribute: SDPAttribute {
        var s = format
        if !parameters.isEmpty {
            s += " "
            var first = true
            for p in parameters {
                if !first { s += ";" }
                first = false
                s += p.name
                if let v = p.value { s += "=" + v }
            }
        }
        return SDPAttribute("fmtp", s)
    }
}

/// `a=rtcp-fb:<pt or *> <type> [<parameter>]` (RFC 4585 §4.2).
public struct RTCPFeedback: Hashable, Sendable {
    /// Nil means `*`: all payload types.
    public var payloadType: PayloadType?
    public var type: String
    public var parameter: String?

    public init(payloadType: PayloadType?, type: String, parameter: String? = nil) {
        self.payloadType = payloadType
        self.type = type
        self.parameter = parameter
    }

    public init?(value: String) {
        let words = splitWords(value.utf8[...])
        guard words.count >= 2 else { return nil }
        var pt: PayloadType?
        if !(words[0].count == 1 && words[0].first == UInt8(ascii: "*")) {
            guard let p = parsePayloadType(words[0]) else { return nil }
            pt = p
        }
        var param: String?
        if words.count > 2 {
            // Parameters may contain spaces (e.g. "ccm tmmbr smaxpr=120"): keep the rest.
            let start = words[2].startIndex
            param = String(utf8Slice: value.utf8[start...])
        }
        self.init(payloadType: pt, type: String(utf8Slice: words[1]), parameter: param)
    }

    /// The feedback kind without the payload type, for comparing against a list.
    public var kind: RTCPFeedbackKind { RTCPFeedbackKind(type: type, parameter: parameter) }

    public var attribute: SDPAttribute {
        var s = payloadType.map { String($0.rawValue) } ?? "*"
        s += " " + type
        if let parameter { s += " " + parameter }
        return SDPAttribute("rtcp-fb", s)
    }
}

/// An RTCP feedback type and parameter, e.g. `nack pli`.
public struct RTCPFeedbackKind: Hashable, Sendable {
    public var type: String
    public var parameter: String?

    public init(type: String, parameter: String? = nil) {
        self.type = type
        self.parameter = parameter
    }

    public static let nack = RTCPFeedbackKind(type: "nack")
    public static let pli = RTCPFeedbackKind(type: "nack", parameter: "pli")
    public static let fir = RTCPFeedbackKind(type: "ccm", parameter: "fir")
    public static let remb = RTCPFeedbackKind(type: "goog-remb")
    public static let transportCC = RTCPFeedbackKind(type: "transport-cc")
}

/// `a=extmap:<id>[/<direction>] <uri> [<extension attributes>]` (RFC 8285 §7).
public struct ExtensionMap: Hashable, Sendable {
    /// 1-14 for one-byte headers, 1-255 with two-byte headers; 4096-4351 are
    /// allowed in offers for negotiation (RFC 8285 §7).
    public var id: UInt16
    public var direction: MediaDirection?
    public var uri: String
    public var extensionAttributes: String?

    public init(id: UInt16, direction: MediaDirection? = nil, uri: String, extensionAttributes: String? = nil) {
        self.id = id
        self.direction = direction
        self.uri = uri
        self.extensionAttributes = extensionAttributes
    }

    public init?(value: String) {
        let words = splitWords(value.utf8[...])
        guard words.count >= 2 else { return nil }
        let (idPart, dirPart) = splitOnce(words[0], at: ASCII.slash)
        guard let id = parseDecimal(idPart, as: UInt16.self),
              (1...255).contains(id) || (4096...4351).contains(id) else { return nil }
        var direction: MediaDirection?
        if let dirPart {
            guard let d = MediaDirection(rawValue: String(utf8Slice: dirPart)) else { return nil }
            direction = d
        }
        var attrs: String?
        if words.count > 2 { attrs = String(utf8Slice: value.utf8[words[2].startIndex...]) }
        self.init(id: id, direction: direction, uri: String(utf8Slice: words[1]), extensionAttributes: attrs)
    }

    public var attribute: SDPAttribute {
        var s = String(id)
        if let direction { s += "/" + direction.rawValue }
        s += " " + uri
        if let extensionAttributes { s += " " + extensionAttributes }
        return SDPAttribute("extmap", s)
    }
}

/// Well-known RTP header extension URIs.
public enum HeaderExtensionURI {
    public static let mid = "urn:ietf:params:rtp-hdrext:sdes:mid"
    public static let rtpStreamID = "urn:ietf:params:rtp-hdrext:sdes:rtp-stream-id"
    public static let repairedRTPStreamID = "urn:ietf:params:rtp-hdrext:sdes:repaired-rtp-stream-id"
    public static let absSendTime = "http://www.webrtc.org/experiments/rtp-hdrext/abs-send-time"
    public static let transportWideCC = "http://www.ietf.org/id/draft-holmer-rmcat-transport-wide-cc-extensions-01"
    public static let audioLevel = "urn:ietf:params:rtp-hdrext:ssrc-audio-level"
}

/// `a=msid:<stream id> [<track id>]` (RFC 8830 §2). A stream id of "-" means
/// the track belongs to no stream.
public struct MediaStreamID: Hashable, Sendable {
    public var streamID: String
    public var trackID: String?

    public init(streamID: String, trackID: String? = nil) {
        self.streamID = streamID
        self.trackID = trackID
    }

    public init?(value: String) {
        let words = splitWords(value.utf8[...])
        guard words.count == 1 || words.count == 2 else { return nil }
        self.init(streamID: String(utf8Slice: words[0]), trackID: words.count == 2 ? String(utf8Slice: words[1]) : nil)
    }

    public var attribute: SDPAttribute {
        SDPAttribute("msid", trackID.map { streamID + " " + $0 } ?? streamID)
    }
}

/// `a=ssrc:<ssrc> <attribute>[:<value>]` (RFC 5576 §4.1).
public struct SSRCAttribute: Hashable, Sendable {
    public var ssrc: SSRC
    public var name: String
    public var value: String?

    public init(ssrc: SSRC, name: String, value: String? = nil) {
        self.ssrc = ssrc
        self.name = name
        self.value = value
    }

    public init?(value: String) {
        let v = value.utf8[...]
        let (num, rest) = splitOnce(v, at: ASCII.space)
        guard let ssrc = parseDecimal(num, as: UInt32.self), let rest else { return nil }
        let (name, val) = splitOnce(rest, at: ASCII.colon)
        guard !name.isEmpty, !name.contains(ASCII.space) else { return nil }
        self.init(ssrc: SSRC(ssrc), name: String(utf8Slice: name), value: val.map { String(utf8Slice: $0) })
    }

    public var attribute: SDPAttribute {
        var s = "\(ssrc.rawValue) \(name)"
        if let value { s += ":" + value }
        return SDPAttribute("ssrc", s)
    }
}

/// `a=ssrc-group:<semantics> <ssrc>...` (RFC 5576 §4.2), e.g. FID (RFC 5576
/// §7.2, an RTX pair: primary first) or SIM (legacy simulcast).
public struct SSRCGroup: Hashable, Sendable {
    public var semantics: String
    public var ssrcs: [SSRC]

    public static let fid = "FID"
    public static let sim = "SIM"

    public init(semantics: String, ssrcs: [SSRC]) {
        self.semantics = semantics
        self.ssrcs = ssrcs
    }

    public init?(value: String) {
        let words = splitWords(value.utf8[...])
        guard words.count >= 2 else { return nil }
        var ssrcs: [SSRC] = []
        ssrcs.reserveCapacity(words.count - 1)
        for w in words.dropFirst() {
            guard let n = parseDecimal(w, as: UInt32.self) else { return nil }
            ssrcs.append(SSRC(n))
        }
        self.init(semantics: String(utf8Slice: words[0]), ssrcs: ssrcs)
    }

    public var attribute: SDPAttribute {
        var s = semantics
        for x in ssrcs { s += " \(x.rawValue)" }
        return SDPAttribute("ssrc-group", s)
    }
}

/// `a=group:<semantics> <mid>...` (RFC 5888 §5), e.g. BUNDLE (RFC 8843).
public struct MediaGroup: Hashable, Sendable {
    public var semantics: String
    public var mids: [Mid]

    public static let bundle = "BUNDLE"

    public init(semantics: String, mids: [Mid]) {
        self.semantics = semantics
        self.mids = mids
    }

    public init?(value: String) {
        let words = splitWords(value.utf8[...])
        guard let first = words.first else { return nil }
        self.init(semantics: String(utf8Slice: first), mids: words.dropFirst().map { Mid(rawValue: String(utf8Slice: $0)) })
    }

    public var attribute: SDPAttribute {
        var s = semantics
        for m in mids { s += " " + m.rawValue }
        return SDPAttribute("group", s)
    }
}

/// Direction of an `a=rid` line (RFC 8851 §10).
public enum RIDDirection: String, Hashable, Sendable {
    case send, recv

    public var reversed: RIDDirection { self == .send ? .recv : .send }
}

/// `a=rid:<id> <send|recv> [pt=<fmt>,...;][<restriction>=<value>;...]` (RFC 8851 §10).
public struct RIDDescription: Hashable, Sendable {
    public var rid: RID
    public var direction: RIDDirection
    /// Empty means every format of the m-section.
    public var payloadTypes: [PayloadType]
    /// The other restrictions (max-width, max-height, max-fps, max-br, ...), in order.
    public var restrictions: [FormatParameter]

    public init(rid: RID, direction: RIDDirection, payloadTypes: [PayloadType] = [], restrictions: [FormatParameter] = []) {
        self.rid = rid
        self.direction = direction
        self.payloadTypes = payloadTypes
        self.restrictions = restrictions
    }

    /// rid-id = 1*(alpha-numeric / "-" / "_") (RFC 8851 §10).
    static func isValidID(_ s: UTF8Slice) -> Bool {
        !s.isEmpty && s.allSatisfy { ASCII.isAlphaNumeric($0) || $0 == UInt8(ascii: "-") || $0 == UInt8(ascii: "_") }
    }

    public init?(value: String) {
        let words = splitWords(value.utf8[...])
        guard words.count == 2 || words.count == 3, Self.isValidID(words[0]),
              let dir = RIDDirection(rawValue: String(utf8Slice: words[1])) else { return nil }
        var pts: [PayloadType] = []
        var restrictions: [FormatParameter] = []
        if words.count == 3 {
            for piece in words[2].split(separator: ASCII.semicolon, omittingEmptySubsequences: true) {
                let (name, val) = splitOnce(piece, at: ASCII.equals)
                guard !name.isEmpty else { return nil }
                if name.elementsEqual("pt".utf8) {
                    guard let val else { return nil }
                    for f in val.split(separator: ASCII.comma, omittingEmptySubsequences: false) {
                        guard let pt = parsePayloadType(f) else { return nil }
                        pts.append(pt)
                    }
                } else {
                    restrictions.append(FormatParameter(name: String(utf8Slice: name), value: val.map { String(utf8Slice: $0) }))
                }
            }
        }
        self.init(rid: RID(rawValue: String(utf8Slice: words[0])), direction: dir, payloadTypes: pts, restrictions: restrictions)
    }

    public subscript(restriction name: String) -> String? {
        restrictions.first { $0.name == name }?.value
    }

    public var attribute: SDPAttribute {
        var s = rid.rawValue + " " + direction.rawValue
        var params: [String] = []
        if !payloadTypes.isEmpty {
            params.append("pt=" + payloadTypes.map { String($0.rawValue) }.joined(separator: ","))
        }
        for r in restrictions { params.append(r.value.map { r.name + "=" + $0 } ?? r.name) }
        if !params.isEmpty { s += " " + params.joined(separator: ";") }
        return SDPAttribute("rid", s)
    }
}

/// One simulcast stream in an `a=simulcast` list: a rid, maybe paused (`~`).
public struct SimulcastStream: Hashable, Sendable {
    public var rid: RID
    public var isPaused: Bool

    public init(rid: RID, isPaused: Bool = false) {
        self.rid = rid
        self.isPaused = isPaused
    }
}

/// `a=simulcast:[send <list>] [recv <list>]` (RFC 8853 §5.1). Each list is
/// `;`-separated simulcast streams, each a `,`-separated set of alternatives.
public struct Simulcast: Hashable, Sendable {
    public var send: [[SimulcastStream]]
    public var receive: [[SimulcastStream]]
    /// True when both lists are present and `recv` was written first; kept so
    /// round trips are exact.
    public var receiveFirst: Bool

    public init(send: [[SimulcastStream]] = [], receive: [[SimulcastStream]] = [], receiveFirst: Bool = false) {
        self.send = send
        self.receive = receive
        self.receiveFirst = receiveFirst
    }

    static func parseList(_ s: UTF8Slice) -> [[SimulcastStream]]? {
        var out: [[SimulcastStream]] = []
        // Pre-RFC drafts (old Firefox) wrote "rid=q;h;f": accept the prefix.
        var s = s
        if s.starts(with: "rid=".utf8) { s = s.dropFirst(4) }
        for alt in s.split(separator: ASCII.semicolon, omittingEmptySubsequences: false) {
            var streams: [SimulcastStream] = []
            for id in alt.split(separator: ASCII.comma, omittingEmptySubsequences: false) {
                var id = id
                var paused = false
                if id.first == ASCII.tilde { paused = true; id = id.dropFirst() }
                guard RIDDescription.isValidID(id) else { return nil }
                streams.append(SimulcastStream(rid: RID(rawValue: String(utf8Slice: id)), isPaused: paused))
            }
            out.append(streams)
        }
        return out
    }

    public init?(value: String) {
        let words = splitWords(value.utf8[...])
        guard words.count == 2 || words.count == 4 else { return nil }
        var send: [[SimulcastStream]]?
        var recv: [[SimulcastStream]]?
        var recvFirst = false
        var i = 0
        while i < words.count {
            guard let list = Self.parseList(words[i + 1]) else { return nil }
            if words[i].elementsEqual("send".utf8), send == nil {
                send = list
            } else if words[i].elementsEqual("recv".utf8), recv == nil {
                recv = list
                if i == 0 && words.count == 4 { recvFirst = true }
            } else {
                return nil
            }
            i += 2
        }
        self.init(send: send ?? [], receive: recv ?? [], receiveFirst: recvFirst)
    }

    static func format(_ list: [[SimulcastStream]]) -> String {
        list.map { alts in alts.map { ($0.isPaused ? "~" : "") + $0.rid.rawValue }.joined(separator: ",") }
            .joined(separator: ";")
    }

    public var attribute: SDPAttribute {
        var parts: [String] = []
        if !send.isEmpty { parts.append("send " + Self.format(send)) }
        if !receive.isEmpty {
            let r = "recv " + Self.format(receive)
            if receiveFirst { parts.insert(r, at: 0) } else { parts.append(r) }
        }
        return SDPAttribute("simulcast", parts.joined(separator: " "))
    }
}

/// `a=fingerprint:<hash function> <hex bytes separated by :>` (RFC 8122 §5).
public struct Fingerprint: Hashable, Sendable {
    /// Lower-case hash function name, e.g. `sha-256` (RFC 8122 §5: names are
    /// case-insensitive; the IANA textual names are lower case).
    public var hashFunction: String
    public var bytes: [UInt8]

    public init(hashFunction: String, bytes: [UInt8]) {
        self.hashFunction = hashFunction.lowercased()
        self.bytes = bytes
    }

    /// Digest sizes of the hash functions RFC 8122 lists, for checking lengths.
    static func expectedLength(_ hash: String) -> Int? {
        switch hash {
        case "sha-1": return 20
        case "sha-224": return 28
        case "sha-256": return 32
        case "sha-384": return 48
        case "sha-512": return 64
        case "md5", "md2": return 16
        default: return nil
        }
    }

    public init?(value: String) {
        let words = splitWords(value.utf8[...])
        guard words.count == 2 else { return nil }
        let hash = String(utf8Slice: words[0]).lowercased()
        let hex = words[1]
        // Strict: pairs of hex digits separated by single colons (RFC 8122 §5 UHEX).
        var bytes: [UInt8] = []
        bytes.reserveCapacity((hex.count + 1) / 3)
        var it = hex.makeIterator()
        while true {
            guard let h = it.next().flatMap(ASCII.hexValue), let l = it.next().flatMap(ASCII.hexValue) else { return nil }
            bytes.append(h << 4 | l)
            guard let sep = it.next() else { break }
            guard sep == ASCII.colon else { return nil }
        }
        if let n = Self.expectedLength(hash), n != bytes.count { return nil }
        self.init(hashFunction: hash, bytes: bytes)
    }

    /// Upper-case hex pairs joined by `:`, as browsers write them.
    public var hexString: String {
        let digits = Array("0123456789ABCDEF".utf8)
        var out: [UInt8] = []
        out.reserveCapacity(bytes.count * 3)
        for (i, b) in bytes.enumerated() {
            if i > 0 { out.append(ASCII.colon) }
            out.append(digits[Int(b >> 4)])
            out.append(digits[Int(b & 0xF)])
        }
        return String(decoding: out, as: UTF8.self)
    }

    public var attribute: SDPAttribute { SDPAttribute("fingerprint", hashFunction + " " + hexString) }
}

extension SDPAttribute {
    /// One m-section's transport attributes, in the order browsers write
    /// them: candidates then `a=end-of-candidates` (RFC 8839 §5.1, RFC 8840
    /// §8.2: all are gathered before the description is sent) when this is
    /// the section that carries them (with BUNDLE, the tagged one, RFC 8843
    /// §7.2.1/§7.3.1); `a=ice-ufrag`/`a=ice-pwd` (RFC 8839 §5.4),
    /// `a=fingerprint` (RFC 8122 §5) and `a=setup` (RFC 4145 §4).
    public static func transport(iceUfrag: String, icePassword: String, fingerprint: Fingerprint, setup: SetupRole,
                                 candidates: [String]?) -> [SDPAttribute] {
        var a: [SDPAttribute] = []
        a.reserveCapacity((candidates?.count ?? 0) + 5)
        if let candidates {
            for c in candidates { a.append(SDPAttribute("candidate", c)) }
            a.append(SDPAttribute("end-of-candidates"))
        }
        a.append(SDPAttribute("ice-ufrag", iceUfrag))
        a.append(SDPAttribute("ice-pwd", icePassword))
        a.append(fingerprint.attribute)
        a.append(setup.attribute)
        return a
    }
}
