import RTCBase

/// Candidate types and their recommended type preferences (RFC 8445 §5.1.2.2).
public enum ICECandidateType: String, Sendable, Hashable, CaseIterable {
    case host
    case serverReflexive = "srflx"
    case peerReflexive = "prflx"
    case relay

    public var typePreference: UInt32 {
        switch self {
        case .host: return 126
        case .peerReflexive: return 110
        case .serverReflexive: return 100
        case .relay: return 0
        }
    }
}

/// The transport field of a candidate line (RFC 8839 §5.1, RFC 6544).
public enum ICETransport: Hashable, Sendable {
    case udp
    case tcp
    /// An extension transport token, kept as written.
    case other(String)

    init(token: Substring) {
        switch token.lowercased() {
        case "udp": self = .udp
        case "tcp": self = .tcp
        default: self = .other(String(token))
        }
    }

    var token: String {
        switch self {
        case .udp: return "udp"
        case .tcp: return "tcp"
        case .other(let s): return s
        }
    }
}

/// RFC 6544 §4.5 TCP candidate types.
public enum ICETCPType: String, Sendable, Hashable {
    case active, passive, so
}

/// An unrecognised `name value` pair after the candidate type (RFC 8839
/// §5.1 cand-extension), e.g. Chrome's `generation 0`, `ufrag EsAw`,
/// `network-id 1`, `network-cost 10`. Kept in order for round trips.
public struct ICECandidateExtension: Hashable, Sendable {
    public var name: String
    public var value: String
    public init(name: String, value: String) {
        self.name = name
        self.value = value
    }
}

public enum ICECandidateError: Error, Sendable, Equatable {
    case missingField
    case invalidFoundation
    case invalidComponent
    case invalidPriority
    case invalidAddress
    case invalidPort
    case invalidType
    case invalidRelatedAddress
    case invalidTCPType
    case malformedExtension
    /// A control character (NUL, tab, CR, LF, DEL …) inside the value: the
    /// grammar's tokens are separated by single spaces and end at CRLF.
    case invalidCharacter
}

/// One `candidate:` attribute value (RFC 8839 §5.1).
public struct ICECandidate: Hashable, Sendable, CustomStringConvertible {
    public var foundation: String
    public var component: UInt16
    public var transport: ICETransport
    public var priority: UInt32
    /// The connection address as written: an IP literal or, for browsers that
    /// hide local addresses, an mDNS name like `abc123.local` (RFC 8839 §5.1).
    public var connectionAddress: String
    /// The parsed address when `connectionAddress` is an IP literal.
    public var ip: IPAddress?
    public var port: UInt16
    public var type: ICECandidateType
    public var relatedAddress: String?
    public var relatedPort: UInt16?
    public var tcpType: ICETCPType?
    public var extensions: [ICECandidateExtension]

    public init(foundation: String, component: UInt16 = 1, transport: ICETransport = .udp, priority: UInt32,
                address: TransportAddress, type: ICECandidateType, related: TransportAddress? = nil,
                tcpType: ICETCPType? = nil, extensions: [ICECandidateExtension] = []) {
        self.foundation = foundation
        self.component = component
        self.transport = transport
        self.priority = priority
        self.connectionAddress = address.ip.description
        self.ip = address.ip
        self.port = address.port
        self.type = type
        self.relatedAddress = related?.ip.description
        self.relatedPort = related?.port
        self.tcpType = tcpType
        self.extensions = extensions
    }

    /// The candidate's transport address, when its address is an IP literal.
    public var address: TransportAddress? { ip.map { TransportAddress(ip: $0, port: port) } }

    /// A hostname ending in `.local` (RFC 8839 §5.1, mDNS candidates).
    public var isMDNS: Bool { ip == nil && connectionAddress.lowercased().hasSuffix(".local") }

    public func value(forExtension name: String) -> String? {
        extensions.first { $0.name == name }?.value
    }

    /// RFC 8445 §5.1.2.1: priority = 2^24 × type preference + 2^8 × local
    /// preference + (256 − component id).
    public static func priority(type: ICECandidateType, localPreference: UInt16 = 65535, component: UInt16 = 1) -> UInt32 {
        (type.typePreference << 24) + (UInt32(localPreference) << 8) + (256 - UInt32(min(max(component, 1), 256)))
    }

    /// Parses the attribute value, with or without a leading `a=` and
    /// `candidate:`.
    public init(parsing text: some StringProtocol) throws(ICECandidateError) {
        var s = Substring(text)
        // "\r\n" is one Character in Swift: test for any newline.
        while let last = s.last, last.isNewline { s = s.dropLast() }
        if s.hasPrefix("a=") { s = s.dropFirst(2) }
        if s.hasPrefix("candidate:") { s = s.dropFirst("candidate:".count) }
        guard s.utf8.allSatisfy({ $0 >= 0x20 && $0 != 0x7F }) else { throw .invalidCharacter }
        let f = s.split(separator: " ", omittingEmptySubsequences: true)
        guard f.count >= 8 else { throw .missingField }

        // foundation = 1*32 ice-char (ALPHA / DIGIT / "+" / "/").
        guard (1...32).contains(f[0].count),
              f[0].allSatisfy({ $0.isASCII && ($0.isLetter || $0.isNumber || $0 == "+" || $0 == "/") })
        else { throw .invalidFoundation }
        foundation = String(f[0])
        guard f[1].count <= 3, let comp = UInt16(f[1]), (1...256).contains(comp) else { throw .invalidComponent }
        component = comp
        transport = ICETransport(token: f[2])
        guard f[3].count <= 10, let prio = UInt32(f[3]), prio > 0 else { throw .invalidPriority }
        priority = prio
        connectionAddress = String(f[4])
        ip = IPAddress(f[4])
        if ip == nil {
            // A hostname: RFC 8839 allows an FQDN; require plausible characters.
            guard !f[4].isEmpty, f[4].count <= 255,
                  f[4].allSatisfy({ $0.isASCII && ($0.isLetter || $0.isNumber || $0 == "-" || $0 == ".") })
            else { throw .invalidAddress }
        }
        guard let p = UInt16(f[5]) else { throw .invalidPort }
        port = p
        guard f[6] == "typ", let t = ICECandidateType(rawValue: String(f[7])) else { throw .invalidType }
        type = t

        relatedAddress = nil
        relatedPort = nil
        tcpType = nil
        extensions = []
        var i = 8
        while i < f.count {
            guard i + 1 < f.count else { throw .malformedExtension }
            let name = f[i], value = f[i + 1]
            switch name {
            case "raddr":
                guard relatedAddress == nil else { throw .invalidRelatedAddress }
                relatedAddress = String(value)
            case "rport":
                guard let rp = UInt16(value) else { throw .invalidRelatedAddress }
                relatedPort = rp
            case "tcptype":
                guard let tt = ICETCPType(rawValue: String(value)) else { throw .invalidTCPType }
                tcpType = tt
            default:
                extensions.append(ICECandidateExtension(name: String(name), value: String(value)))
            }
            i += 2
        }
    }

    /// The attribute value: `candidate:<foundation> <component> ...`.
    public var description: String {
        var out = "candidate:\(foundation) \(component) \(transport.token) \(priority) \(connectionAddress) \(port) typ \(type.rawValue)"
        if let relatedAddress { out += " raddr \(relatedAddress)" }
        if let relatedPort { out += " rport \(relatedPort)" }
        if let tcpType { out += " tcptype \(tcpType.rawValue)" }
        for e in extensions { out += " \(e.name) \(e.value)" }
        return out
    }
}
