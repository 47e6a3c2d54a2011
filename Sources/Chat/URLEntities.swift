/// A URL found in a message's text. Offsets and lengths count UTF-16 code
/// units, as JavaScript clients index strings.
public struct URLEntity: Sendable, Equatable {
    public var url: String
    public var offset: Int
    public var length: Int

    public init(url: String, offset: Int, length: Int) {
        self.url = url
        self.offset = offset
        self.length = length
    }

    /// Every `http://` and `https://` URL in `text`. A URL runs to the next
    /// white space; trailing punctuation that usually ends a sentence
    /// (`.,;:!?` and unbalanced closing brackets or quotes) is not part of it.
    public static func extract(from text: String) -> [URLEntity] {
        // Most messages hold no URL: a byte scan rules that out cheaply.
        guard mayContainURL(text) else { return [] }
        var result: [URLEntity] = []
        let scalars = Array(text.unicodeScalars)
        var utf16Offsets = [Int](repeating: 0, count: scalars.count + 1)
        for (i, s) in scalars.enumerated() { utf16Offsets[i + 1] = utf16Offsets[i] + (s.value > 0xFFFF ? 2 : 1) }
        var i = 0
        while i < scalars.count {
            guard startsURL(scalars, at: i), i == 0 || !isWordScalar(scalars[i - 1]) else { i += 1; continue }
            var end = i
            while end < scalars.count, !scalars[end].properties.isWhitespace, scalars[end] != "<", scalars[end] != ">",
                  scalars[end] != "\"" { end += 1 }
            while end > i {
                let last = scalars[end - 1]
                if ".,;:!?'".unicodeScalars.contains(last) { end -= 1; continue }
                if last == ")" {
                    let opens = scalars[i..<end].filter { $0 == "(" }.count
                    let closes = scalars[i..<end].filter { $0 == ")" }.count
                    if closes > opens { end -= 1; continue }
                }
                break
            }
            let url = String(String.UnicodeScalarView(scalars[i..<end]))
            let schemeLength = url.hasPrefix("https://") ? 8 : 7
            if url.unicodeScalars.count > schemeLength {
                result.append(URLEntity(url: url, offset: utf16Offsets[i], length: utf16Offsets[end] - utf16Offsets[i]))
            }
            i = max(end, i + 1)
        }
        return result
    }

    /// Every URL this finds has "://" in it.
    static func mayContainURL(_ text: String) -> Bool {
        var run = 0
        for byte in text.utf8 {
            switch (run, byte) {
            case (_, UInt8(ascii: ":")): run = 1
            case (1, UInt8(ascii: "/")): run = 2
            case (2, UInt8(ascii: "/")): return true
            default: run = 0
            }
        }
        return false
    }

    private static func startsURL(_ s: [Unicode.Scalar], at i: Int) -> Bool {
        func has(_ prefix: StaticString) -> Bool {
            let count = prefix.utf8CodeUnitCount
            guard i + count <= s.count else { return false }
            let p = prefix.utf8Start
            for k in 0..<count {
                let v = s[i + k].value
                let lower = (v >= 65 && v <= 90) ? v + 32 : v
                if lower != UInt32(p[k]) { return false }
            }
            return true
        }
        return has("http://") || has("https://")
    }

    private static func isWordScalar(_ s: Unicode.Scalar) -> Bool {
        s.properties.isAlphabetic || ("0"..."9").contains(s)
    }
}
