import RTCBase

/// A parsed SDP session description (RFC 8866 §5).
///
/// The model keeps every line it was given: the fixed-position lines are typed
/// fields, attributes are kept in order and verbatim (`SDPAttribute`), and line
/// types this parser does not know are kept in `otherLines`, so that
/// `SessionDescription(parsing:)` followed by `serialized()` gives back what a
/// browser wrote. Typed views of the attributes WebRTC needs live in
/// `AttributeAccessors.swift`.
public struct SessionDescription: Hashable, Sendable {
    /// `v=`: always 0 (RFC 8866 §5.1).
    public var version: Int
    /// `o=` (RFC 8866 §5.2).
    public var origin: Origin
    /// `s=`: "-" when there is no name (RFC 8829 §5.2.1 writes "-").
    public var sessionName: String
    /// `i=` (RFC 8866 §5.4).
    public var information: String?
    /// `u=`
    public var uri: String?
    /// `e=` lines.
    public var emails: [String]
    /// `p=` lines.
    public var phones: [String]
    /// Session-level `c=` (RFC 8866 §5.7).
    public var connection: ConnectionData?
    /// `b=` lines (RFC 8866 §5.8).
    public var bandwidths: [Bandwidth]
    /// `t=` lines, each with its `r=` lines (RFC 8866 §5.9, §5.10).
    public var timings: [Timing]
    /// `z=` (RFC 8866 §5.11), kept verbatim.
    public var timeZones: String?
    /// Session-level `k=` (obsolete, RFC 8866 §5.12), kept verbatim.
    public var encryptionKey: String?
    /// Lines of a type RFC 8866 does not define (browsers ignore them; so do we,
    /// but we keep them so re-serializing loses nothing). Written just before
    /// the attributes.
    public var otherLines: [SDPLine]
    /// Session-level `a=` lines, in order.
    public var attributes: [SDPAttribute]
    /// The `m=` sections, in order.
    public var media: [MediaDescription]

    public init(
        version: Int = 0,
        origin: Origin,
        sessionName: String = "-",
        information: String? = nil,
        uri: String? = nil,
        emails: [String] = [],
        phones: [String] = [],
        connection: ConnectionData? = nil,
        bandwidths: [Bandwidth] = [],
        timings: [Timing] = [Timing(start: 0, stop: 0)],
        timeZones: String? = nil,
        encryptionKey: String? = nil,
        otherLines: [SDPLine] = [],
        attributes: [SDPAttribute] = [],
        media: [MediaDescription] = []
    ) {
        self.version = version
        self.origin = origin
        self.sessionName = sessionName
        self.information = information
        self.uri = uri
        self.emails = emails
        self.phones = phones
        self.connection = connection
        self.bandwidths = bandwidths
        self.timings = timings
        self.timeZones = timeZones
        self.encryptionKey = encryptionKey
        self.otherLines = otherLines
        self.attributes = attributes
        self.media = media
    }
}

/// `o=<username> <sess-id> <sess-version> <nettype> <addrtype> <unicast-address>`
/// (RFC 8866 §5.2).
public struct Origin: Hashable, Sendable {
    public var username: String
    /// RFC 8829 §5.2.1: a 64-bit value with the top bit clear.
    public var sessionID: UInt64
    /// Incremented on every new description from the same endpoint.
    public var sessionVersion: UInt64
    public var networkType: String
    public var addressType: String
    public var address: String

    public init(
        username: String = "-", sessionID: UInt64, sessionVersion: UInt64,
        networkType: String = "IN", addressType: String = "IP4", address: String = "0.0.0.0"
    ) {
        self.username = username
        self.sessionID = sessionID
        self.sessionVersion = sessionVersion
        self.networkType = networkType
        self.addressType = addressType
        self.address = address
    }
}

/// `c=<nettype> <addrtype> <connection-address>` (RFC 8866 §5.7). The address
/// keeps any `/ttl/count` suffix verbatim.
public struct ConnectionData: Hashable, Sendable {
    public var networkType: String
    public var addressType: String
    public var address: String

    public init(networkType: String = "IN", addressType: String = "IP4", address: String = "0.0.0.0") {
        self.networkType = networkType
        self.addressType = addressType
        self.address = address
    }
}

/// `b=<bwtype>:<bandwidth>` (RFC 8866 §5.8), e.g. `AS:2000` or `TIAS:64000`.
public struct Bandwidth: Hashable, Sendable {
    public var type: String
    public var value: UInt64

    public init(type: String, value: UInt64) {
        self.type = type
        self.value = value
    }
}

/// `t=<start-time> <stop-time>` plus its `r=` lines (kept verbatim).
public struct Timing: Hashable, Sendable {
    public var start: UInt64
    public var stop: UInt64
    public var repeats: [String]

    public init(start: UInt64, stop: UInt64, repeats: [String] = []) {
        self.start = start
        self.stop = stop
        self.repeats = repeats
    }
}

/// A line of a type this parser does not interpret, e.g. `x=foo`.
public struct SDPLine: Hashable, Sendable {
    /// The type letter (an ASCII byte).
    public var type: UInt8
    public var value: String

    public init(type: UInt8, value: String) {
        self.type = type
        self.value = value
    }
}

/// An `a=` line: `a=<name>` (a property) or `a=<name>:<value>` (RFC 8866 §5.13).
/// Stored verbatim; `AttributeAccessors.swift` gives typed views.
public struct SDPAttribute: Hashable, Sendable {
    public var name: String
    /// Nil for a property attribute (`a=rtcp-mux`); may be empty (`a=foo:`).
    public var value: String?

    public init(_ name: String, _ value: String? = nil) {
        self.name = name
        self.value = value
    }
}

/// The media type of an `m=` line (RFC 8866 §5.14). Open-ended: any token.
public struct MediaKind: RawRepresentable, Hashable, Sendable, CustomStringConvertible {
    public var rawValue: String
    public init(rawValue: String) { self.rawValue = rawValue }
    public var description: String { rawValue }

    public static let audio = MediaKind(rawValue: "audio")
    public static let video = MediaKind(rawValue: "video")
    public static let application = MediaKind(rawValue: "application")
    public static let text = MediaKind(rawValue: "text")
    public static let message = MediaKind(rawValue: "message")
}

/// One `m=` section (RFC 8866 §5.14) with its `i=`, `c=`, `b=`, `k=` and `a=` lines.
public struct MediaDescription: Hashable, Sendable {
    public var kind: MediaKind
    /// 0 rejects the section (RFC 3264 §6) unless it is `bundle-only` (RFC 8843 §6).
    public var port: UInt16
    /// The `/<number of ports>` suffix, when present.
    public var portCount: UInt16?
    /// E.g. `UDP/TLS/RTP/SAVPF`, `UDP/DTLS/SCTP`.
    public var proto: String
    /// Payload type numbers for RTP profiles, or e.g. `webrtc-datachannel`.
    public var formats: [String]
    public var information: String?
    public var connection: ConnectionData?
    public var bandwidths: [Bandwidth]
    public var encryptionKey: String?
    public var otherLines: [SDPLine]
    public var attributes: [SDPAttribute]

    public init(
        kind: MediaKind, port: UInt16, portCount: UInt16? = nil, proto: String, formats: [String],
        information: String? = nil, connection: ConnectionData? = nil, bandwidths: [Bandwidth] = [],
        encryptionKey: String? = nil, otherLines: [SDPLine] = [], attributes: [SDPAttribute] = []
    ) {
        self.kind = kind
        self.port = port
        self.portCount = portCount
        self.proto = proto
        self.formats = formats
        self.information = information
        self.connection = connection
        self.bandwidths = bandwidths
        self.encryptionKey = encryptionKey
        self.otherLines = otherLines
        self.attributes = attributes
    }

    /// True for an RTP profile (`RTP/AVP`, `UDP/TLS/RTP/SAVPF`, ...), whose
    /// formats are payload type numbers.
    public var isRTP: Bool { proto.contains("RTP/") }
}

/// A parse failure: the 1-based line it happened on and what was wrong.
public struct SDPParseError: Error, Hashable, Sendable, CustomStringConvertible {
    public enum Reason: Hashable, Sendable {
        /// Nothing but whitespace.
        case empty
        /// The line is not valid UTF-8.
        case invalidUTF8
        /// Not of the form `<letter>=<value>`.
        case malformedLine
        /// The description does not start with `v=`.
        case missingVersion
        /// `v=` is not 0.
        case unsupportedVersion
        /// A line that must appear once (`o=`, `s=`) is missing.
        case missingLine(UInt8)
        /// A line that may appear once at this level appeared again.
        case duplicateLine(UInt8)
        /// A session-level line (`o=`, `s=`, `t=`, ...) inside a media section.
        case unexpectedLine(UInt8)
        case malformedOrigin
        case malformedConnection
        case malformedBandwidth
        case malformedTiming
        case malformedMediaLine
        /// A number that does not fit where it goes (port > 65535, ...).
        case numberOutOfRange
        /// An attribute with a strict grammar (rtpmap, fmtp, fingerprint, extmap,
        /// rid, simulcast, ssrc, ssrc-group, setup, ...) that does not follow it.
        case malformedAttribute(String)
    }

    public var line: Int
    public var reason: Reason

    public init(line: Int, reason: Reason) {
        self.line = line
        self.reason = reason
    }

    public var description: String { "SDP line \(line): \(reason)" }
}
