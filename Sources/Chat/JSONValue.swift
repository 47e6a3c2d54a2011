import Foundation

/// A JSON document. Parsing goes through Foundation's `JSONDecoder`; writing is
/// done here so objects keep their field order (`type` first reads better in
/// logs and traces) and nothing is escaped that needs no escaping.
public enum JSONValue: Sendable, Equatable {
    case null
    case bool(Bool)
    case number(Double)
    case string(String)
    case array([JSONValue])
    case object(JSONObject)

    /// Parses a JSON text; anything RFC 8259 does not allow (trailing
    /// commas, bare control characters, nesting deeper than
    /// `JSONSyntax.maxDepth`) throws `JSONSyntaxError`.
    public static func parse(_ bytes: [UInt8]) throws -> JSONValue {
        guard JSONSyntax.isValid(bytes) else { throw JSONSyntaxError() }
        return try JSONDecoder().decode(JSONValue.self, from: Data(bytes))
    }

    public static func parse(_ text: String) throws -> JSONValue {
        try parse(Array(text.utf8))
    }

    public var objectValue: JSONObject? { if case let .object(o) = self { return o }; return nil }
    public var stringValue: String? { if case let .string(s) = self { return s }; return nil }
    public var doubleValue: Double? { if case let .number(n) = self { return n }; return nil }
    public var arrayValue: [JSONValue]? { if case let .array(a) = self { return a }; return nil }
    public var boolValue: Bool? { if case let .bool(b) = self { return b }; return nil }
    public var isNull: Bool { if case .null = self { return true }; return false }

    /// The compact JSON text of this value.
    public var serialized: String {
        var out = ""
        out.reserveCapacity(128)
        write(into: &out)
        return out
    }

    public func write(into out: inout String) {
        switch self {
        case .null: out += "null"
        case let .bool(b): out += b ? "true" : "false"
        case let .number(n): JSONValue.writeNumber(n, into: &out)
        case let .string(s): JSONValue.writeString(s, into: &out)
        case let .array(items):
            out += "["
            for (i, item) in items.enumerated() {
                if i > 0 { out += "," }
                item.write(into: &out)
            }
            out += "]"
        case let .object(object):
            object.write(into: &out)
        }
    }

    static func writeNumber(_ n: Double, into out: inout String) {
        if !n.isFinite {
            out += "null"
        } else if n == n.rounded(), abs(n) < 9.0e15 {
            out += String(Int64(n))
        } else {
            out += String(n)
        }
    }

    static func writeString(_ s: String, into out: inout String) {
        out += "\""
        var plainStart = s.utf8.startIndex
        var index = plainStart
        let utf8 = s.utf8
        while index != utf8.endIndex {
            let byte = utf8[index]
            let escape: String?
            switch byte {
            case UInt8(ascii: "\""): escape = "\\\""
            case UInt8(ascii: "\\"): escape = "\\\\"
            case 0x0A: escape = "\\n"
            case 0x0D: escape = "\\r"
            case 0x09: escape = "\\t"
            case 0x00..<0x20:
                let hex = String(byte, radix: 16)
                escape = "\\u" + String(repeating: "0", count: 4 - hex.count) + hex
            default: escape = nil
            }
            if let escape {
                out += Substring(utf8[plainStart..<index])
                out += escape
                index = utf8.index(after: index)
                plainStart = index
            } else {
                index = utf8.index(after: index)
            }
        }
        out += Substring(utf8[plainStart..<index])
        out += "\""
    }
}

public struct JSONSyntaxError: Error, Sendable {}

/// A JSON object that keeps its fields in order. Objects on the wire are small,
/// so lookup is a linear scan.
public struct JSONObject: Sendable, Equatable, ExpressibleByDictionaryLiteral {
    public var fields: [(key: String, value: JSONValue)]

    public init() { fields = [] }
    public init(dictionaryLiteral elements: (String, JSONValue)...) {
        fields = elements.map { (key: $0.0, value: $0.1) }
    }

    public subscript(key: String) -> JSONValue? {
        get { fields.first(where: { $0.key == key })?.value }
        set {
            if let i = fields.firstIndex(where: { $0.key == key }) {
                if let newValue { fields[i].value = newValue } else { fields.remove(at: i) }
            } else if let newValue {
                fields.append((key: key, value: newValue))
            }
        }
    }

    public var isEmpty: Bool { fields.isEmpty }

    public static func == (lhs: JSONObject, rhs: JSONObject) -> Bool {
        guard lhs.fields.count == rhs.fields.count else { return false }
        for field in lhs.fields where rhs[field.key] != field.value { return false }
        return true
    }

    public func write(into out: inout String) {
        out += "{"
        for (i, field) in fields.enumerated() {
            if i > 0 { out += "," }
            JSONValue.writeString(field.key, into: &out)
            out += ":"
            field.value.write(into: &out)
        }
        out += "}"
    }

    public var serialized: String {
        var out = ""
        out.reserveCapacity(256)
        write(into: &out)
        return out
    }
}

extension JSONValue: Codable {
    public init(from decoder: any Decoder) throws {
        let container = try decoder.singleValueContainer()
        if container.decodeNil() {
            self = .null
        } else if let b = try? container.decode(Bool.self) {
            self = .bool(b)
        } else if let n = try? container.decode(Double.self) {
            self = .number(n)
        } else if let s = try? container.decode(String.self) {
            self = .string(s)
        } else if let a = try? container.decode([JSONValue].self) {
            self = .array(a)
        } else {
            let keyed = try decoder.container(keyedBy: AnyKey.self)
            var object = JSONObject()
            for key in keyed.allKeys {
                object.fields.append((key: key.stringValue, value: try keyed.decode(JSONValue.self, forKey: key)))
            }
            self = .object(object)
        }
    }

    public func encode(to encoder: any Encoder) throws {
        switch self {
        case .null:
            var c = encoder.singleValueContainer()
            try c.encodeNil()
        case let .bool(b):
            var c = encoder.singleValueContainer()
            try c.encode(b)
        case let .number(n):
            var c = encoder.singleValueContainer()
            try c.encode(n)
        case let .string(s):
            var c = encoder.singleValueContainer()
            try c.encode(s)
        case let .array(a):
            var c = encoder.singleValueContainer()
            try c.encode(a)
        case let .object(o):
            var c = encoder.container(keyedBy: AnyKey.self)
            for field in o.fields { try c.encode(field.value, forKey: AnyKey(stringValue: field.key)) }
        }
    }
}

struct AnyKey: CodingKey {
    var stringValue: String
    var intValue: Int? { nil }
    init(stringValue: String) { self.stringValue = stringValue }
    init?(intValue: Int) { return nil }
}

extension JSONValue: ExpressibleByStringLiteral, ExpressibleByBooleanLiteral, ExpressibleByIntegerLiteral,
    ExpressibleByNilLiteral, ExpressibleByArrayLiteral, ExpressibleByFloatLiteral
{
    public init(stringLiteral value: String) { self = .string(value) }
    public init(booleanLiteral value: Bool) { self = .bool(value) }
    public init(integerLiteral value: Int) { self = .number(Double(value)) }
    public init(floatLiteral value: Double) { self = .number(value) }
    public init(nilLiteral: ()) { self = .null }
    public init(arrayLiteral elements: JSONValue...) { self = .array(elements) }
}

extension JSONValue {
    public init(_ s: String?) { self = s.map { .string($0) } ?? .null }
    public init(_ n: Int64?) { self = n.map { .number(Double($0)) } ?? .null }
}
