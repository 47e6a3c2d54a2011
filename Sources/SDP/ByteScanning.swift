import RTCBase

// Small helpers for parsing attribute values byte-wise (no Foundation, no regex):
// SDP grammar is ASCII, so splitting on ASCII separators always lands on
// scalar boundaries.

typealias UTF8Slice = Substring.UTF8View

enum ASCII {
    static let space = UInt8(ascii: " ")
    static let tab = UInt8(ascii: "\t")
    static let colon = UInt8(ascii: ":")
    static let semicolon = UInt8(ascii: ";")
    static let comma = UInt8(ascii: ",")
    static let slash = UInt8(ascii: "/")
    static let equals = UInt8(ascii: "=")
    static let tilde = UInt8(ascii: "~")
    static let cr = UInt8(ascii: "\r")
    static let lf = UInt8(ascii: "\n")
    static let zero = UInt8(ascii: "0")
    static let nine = UInt8(ascii: "9")

    static func isDigit(_ b: UInt8) -> Bool { b >= zero && b <= nine }
    static func isAlphaNumeric(_ b: UInt8) -> Bool {
        isDigit(b) || (b >= 0x41 && b <= 0x5A) || (b >= 0x61 && b <= 0x7A)
    }
    static func hexValue(_ b: UInt8) -> UInt8? {
        switch b {
        case 0x30...0x39: return b - 0x30
        case 0x41...0x46: return b - 0x41 + 10
        case 0x61...0x66: return b - 0x61 + 10
        default: return nil
        }
    }
}

extension String {
    init(utf8Slice s: UTF8Slice) { self = String(decoding: s, as: UTF8.self) }
}

/// Parses a non-empty run of decimal digits, nil on anything else or overflow.
func parseDecimal<T: FixedWidthInteger & UnsignedInteger>(_ s: some Collection<UInt8>, as _: T.Type = T.self) -> T? {
    if s.isEmpty { return nil }
    var value: T = 0
    for b in s {
        guard ASCII.isDigit(b) else { return nil }
        let (m, o1) = value.multipliedReportingOverflow(by: 10)
        let (a, o2) = m.addingReportingOverflow(T(b - ASCII.zero))
        if o1 || o2 { return nil }
        value = a
    }
    return value
}

/// Splits on single spaces, dropping empty pieces (lenient about doubled spaces).
func splitWords(_ s: UTF8Slice) -> [UTF8Slice] {
    s.split(separator: ASCII.space, omittingEmptySubsequences: true)
}

/// Splits at the first occurrence of `byte`: (before, after) or (all, nil).
func splitOnce(_ s: UTF8Slice, at byte: UInt8) -> (UTF8Slice, UTF8Slice?) {
    guard let i = s.firstIndex(of: byte) else { return (s, nil) }
    return (s[s.startIndex..<i], s[s.index(after: i)...])
}

func trimSpaces(_ s: UTF8Slice) -> UTF8Slice {
    var lo = s.startIndex, hi = s.endIndex
    while lo < hi, s[lo] == ASCII.space || s[lo] == ASCII.tab { lo = s.index(after: lo) }
    while hi > lo {
        let p = s.index(before: hi)
        guard s[p] == ASCII.space || s[p] == ASCII.tab else { break }
        hi = p
    }
    return s[lo..<hi]
}

func parsePayloadType(_ s: UTF8Slice) -> PayloadType? {
    guard let v = parseDecimal(s, as: UInt8.self) else { return nil }
    return PayloadType(rawValue: v)
}
