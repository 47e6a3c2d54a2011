/// An IPv4 or IPv6 address as plain bytes (no Foundation, no sockets).
public enum IPAddress: Hashable, Sendable, CustomStringConvertible {
    /// Network byte order: 192.0.2.1 is 0xC000_0201.
    case v4(UInt32)
    /// Network byte order, high 64 bits then low 64 bits.
    case v6(high: UInt64, low: UInt64)

    /// Parses dotted IPv4 or RFC 4291 IPv6 text (with `::` and an optional
    /// embedded IPv4 tail). Zone ids (`%eth0`) are not accepted.
    public init?(_ text: some StringProtocol) {
        if text.contains(":") {
            guard let v6 = IPAddress.parseV6(Substring(text)) else { return nil }
            self = v6
        } else {
            guard let v4 = IPAddress.parseV4(Substring(text)) else { return nil }
            self = .v4(v4)
        }
    }

    /// 4 or 16 bytes, network order.
    public var bytes: [UInt8] {
        switch self {
        case .v4(let a):
            return [UInt8(a >> 24), UInt8(truncatingIfNeeded: a >> 16), UInt8(truncatingIfNeeded: a >> 8), UInt8(truncatingIfNeeded: a)]
        case .v6(let high, let low):
            var out = [UInt8]()
            out.reserveCapacity(16)
            for shift in stride(from: 56, through: 0, by: -8) { out.append(UInt8(truncatingIfNeeded: high >> UInt64(shift))) }
            for shift in stride(from: 56, through: 0, by: -8) { out.append(UInt8(truncatingIfNeeded: low >> UInt64(shift))) }
            return out
        }
    }

    /// Builds an address from 4 or 16 network-order bytes.
    public init?(bytes: some Collection<UInt8>) {
        let b = Array(bytes)
        switch b.count {
        case 4:
            self = .v4(UInt32(b[0]) << 24 | UInt32(b[1]) << 16 | UInt32(b[2]) << 8 | UInt32(b[3]))
        case 16:
            var high: UInt64 = 0
            var low: UInt64 = 0
            for i in 0..<8 { high = high << 8 | UInt64(b[i]) }
            for i in 8..<16 { low = low << 8 | UInt64(b[i]) }
            self = .v6(high: high, low: low)
        default:
            return nil
        }
    }

    public var isIPv4: Bool { if case .v4 = self { return true } else { return false } }

    /// 127.0.0.0/8 or ::1.
    public var isLoopback: Bool {
        switch self {
        case .v4(let a): return a >> 24 == 127
        case .v6(let high, let low): return high == 0 && low == 1
        }
    }

    /// RFC 1918 / RFC 4193 private ranges.
    public var isPrivate: Bool {
        switch self {
        case .v4(let a):
            return a >> 24 == 10 || a >> 20 == 0xAC1 || a >> 16 == 0xC0A8
        case .v6(let high, _):
            return high >> 57 == 0x7E   // fc00::/7
        }
    }

    /// 169.254.0.0/16 or fe80::/10.
    public var isLinkLocal: Bool {
        switch self {
        case .v4(let a): return a >> 16 == 0xA9FE
        case .v6(let high, _): return high >> 54 == 0x3FA
        }
    }

    public var description: String {
        switch self {
        case .v4(let a):
            return "\(a >> 24).\((a >> 16) & 0xFF).\((a >> 8) & 0xFF).\(a & 0xFF)"
        case .v6(let high, let low):
            var groups = [UInt16]()
            for shift in stride(from: 48, through: 0, by: -16) { groups.append(UInt16(truncatingIfNeeded: high >> UInt64(shift))) }
            for shift in stride(from: 48, through: 0, by: -16) { groups.append(UInt16(truncatingIfNeeded: low >> UInt64(shift))) }
            // RFC 5952: compress the longest run (length >= 2) of zero groups.
            var bestStart = -1, bestLength = 0, runStart = -1
            for i in 0...8 {
                if i < 8 && groups[i] == 0 {
                    if runStart < 0 { runStart = i }
                } else if runStart >= 0 {
                    if i - runStart > bestLength { bestStart = runStart; bestLength = i - runStart }
                    runStart = -1
                }
            }
            func hex(_ range: Range<Int>) -> String {
                groups[range].map { String($0, radix: 16) }.joined(separator: ":")
            }
            if bestLength < 2 { return hex(0..<8) }
            return hex(0..<bestStart) + "::" + hex((bestStart + bestLength)..<8)
        }
    }

    private static func parseV4(_ text: Substring) -> UInt32? {
        let parts = text.split(separator: ".", omittingEmptySubsequences: false)
        guard parts.count == 4 else { return nil }
        var value: UInt32 = 0
        for part in parts {
            guard !part.isEmpty, part.count <= 3, part.allSatisfy(\.isASCII), let octet = UInt8(part) else { return nil }
            value = value << 8 | UInt32(octet)
        }
        return value
    }

    private static func doubleColon(_ s: Substring) -> Substring.Index? {
        var i = s.startIndex
        while i < s.endIndex {
            let next = s.index(after: i)
            if next < s.endIndex, s[i] == ":", s[next] == ":" { return i }
            i = next
        }
        return nil
    }

    private static func parseV6(_ text: Substring) -> IPAddress? {
        var text = text
        var tail: [UInt16] = []
        // An embedded IPv4 address in the last 32 bits (::ffff:192.0.2.1).
        if let lastColon = text.lastIndex(of: ":"), text[text.index(after: lastColon)...].contains(".") {
            guard let v4 = parseV4(text[text.index(after: lastColon)...]) else { return nil }
            tail = [UInt16(v4 >> 16), UInt16(truncatingIfNeeded: v4)]
            text = text[...lastColon]
            if text.hasSuffix("::") {} else { text = text.dropLast() }
        }
        func groups(_ s: Substring) -> [UInt16]? {
            if s.isEmpty { return [] }
            var out: [UInt16] = []
            for g in s.split(separator: ":", omittingEmptySubsequences: false) {
                guard !g.isEmpty, g.count <= 4, let v = UInt16(g, radix: 16) else { return nil }
                out.append(v)
            }
            return out
        }
        var all: [UInt16]
        if let gap = doubleColon(text) {
            guard let head = groups(text[..<gap]),
                  let rest = groups(text[text.index(gap, offsetBy: 2)...]) else { return nil }
            let right = rest + tail
            guard head.count + right.count <= 7 else { return nil }
            all = head + Array(repeating: 0, count: 8 - head.count - right.count) + right
        } else {
            guard let g = groups(text) else { return nil }
            all = g + tail
        }
        guard all.count == 8 else { return nil }
        if let gap = doubleColon(text), doubleColon(text[text.index(gap, offsetBy: 2)...]) != nil { return nil }
        var high: UInt64 = 0, low: UInt64 = 0
        for i in 0..<4 { high = high << 16 | UInt64(all[i]) }
        for i in 4..<8 { low = low << 16 | UInt64(all[i]) }
        return .v6(high: high, low: low)
    }
}

/// An IP address and a UDP/TCP port: where a packet came from or goes to.
public struct TransportAddress: Hashable, Sendable, CustomStringConvertible {
    public var ip: IPAddress
    public var port: UInt16

    public init(ip: IPAddress, port: UInt16) {
        self.ip = ip
        self.port = port
    }

    /// "192.0.2.1:3478" or "[2001:db8::1]:3478".
    public init?(_ text: String) {
        if text.hasPrefix("[") {
            guard let close = text.firstIndex(of: "]"),
                  text[text.index(after: close)...].hasPrefix(":"),
                  let ip = IPAddress(text[text.index(after: text.startIndex)..<close]),
                  let port = UInt16(text[text.index(close, offsetBy: 2)...]) else { return nil }
            self.init(ip: ip, port: port)
        } else {
            guard let colon = text.lastIndex(of: ":"),
                  let ip = IPAddress(text[..<colon]),
                  let port = UInt16(text[text.index(after: colon)...]) else { return nil }
            self.init(ip: ip, port: port)
        }
    }

    public var description: String {
        switch ip {
        case .v4: return "\(ip):\(port)"
        case .v6: return "[\(ip)]:\(port)"
        }
    }
}
