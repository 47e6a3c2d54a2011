import Chat
import Testing

@Suite struct NamesTests {
    @Test(arguments: [("User1", "user1"), ("a.b-c_d", "a.b-c_d"), ("Z", "z")])
    func acceptsAndLowercases(raw: String, expected: String) {
        #expect(Names.normalizedUsername(raw) == expected)
    }

    @Test(arguments: ["", "has space", "ümlaut", "semi;colon", String(repeating: "a", count: 33), "pipe|name"])
    func rejectsInvalidUsernames(raw: String) {
        #expect(Names.normalizedUsername(raw) == nil)
    }

    @Test func groupNamesMayBeLonger() {
        #expect(Names.normalizedGroupName(String(repeating: "g", count: 64)) != nil)
        #expect(Names.normalizedGroupName(String(repeating: "g", count: 65)) == nil)
    }
}

@Suite struct TimestampTests {
    @Test func formatsWithMilliseconds() {
        #expect(Timestamp.format(0) == "1970-01-01T00:00:00.000Z")
        #expect(Timestamp.format(1_795_255_260_123) == "2026-11-21T10:01:00.123Z")
        #expect(Timestamp.format(951_782_400_000) == "2000-02-29T00:00:00.000Z")
    }

    @Test func parsesWhatItFormats() {
        for ms: Millis in [0, 1, 999, 86_399_999, 951_782_400_000, 1_795_255_260_123, 4_102_444_800_000] {
            #expect(Timestamp.parse(Timestamp.format(ms)) == ms)
        }
    }

    @Test func parsesOffsetsAndShortFractions() {
        #expect(Timestamp.parse("2026-11-21T10:01:00Z") == 1_795_255_260_000)
        #expect(Timestamp.parse("2026-11-21T11:01:00.5+01:00") == 1_795_255_260_500)
        #expect(Timestamp.parse("2026-11-21 10:01:00.123456z") == 1_795_255_260_123)
    }

    @Test(arguments: ["", "yesterday", "2026-13-01T00:00:00Z", "2026-11-21T10:01:00", "2026-11-21T10:01:00.Z",
                      "2026-11-21T25:00:00Z", "2026-11-21T10:01:00Zjunk"])
    func rejectsMalformed(text: String) {
        #expect(Timestamp.parse(text) == nil)
    }
}

@Suite struct URLEntityTests {
    @Test func findsURLsWithUTF16Offsets() {
        let text = "😀 see https://example.com/a?b=1, and http://x.org."
        let entities = URLEntity.extract(from: text)
        #expect(entities.map(\.url) == ["https://example.com/a?b=1", "http://x.org"])
        let utf16 = Array(text.utf16)
        let first = entities[0]
        #expect(String(decoding: utf16[first.offset..<(first.offset + first.length)], as: UTF16.self) == first.url)
        #expect(first.offset == 7)
    }

    @Test func keepsBalancedParentheses() {
        #expect(URLEntity.extract(from: "(https://en.wikipedia.org/wiki/Foo_(bar))").map(\.url)
            == ["https://en.wikipedia.org/wiki/Foo_(bar)"])
    }

    @Test func ignoresBareSchemesAndWordPrefixes() {
        #expect(URLEntity.extract(from: "https:// nothing; xhttp://no.pe").isEmpty)
    }
}

@Suite struct JSONValueTests {
    @Test func roundTripsAndKeepsFieldOrder() throws {
        let text = #"{"type":"x","n":1.5,"i":-3,"s":"a\"b\\c\nd\u0001","a":[true,false,null],"o":{}}"#
        let value = try JSONValue.parse(text)
        let object = try #require(value.objectValue)
        #expect(object["n"] == .number(1.5))
        #expect(object["i"] == .number(-3))
        #expect(object["s"] == .string("a\"b\\c\nd\u{1}"))
        #expect(try JSONValue.parse(value.serialized) == value)
        // What the server writes keeps the order it was built in.
        let built: JSONObject = ["type": "t", "b": 1, "a": [nil, true]]
        #expect(built.serialized == #"{"type":"t","b":1,"a":[null,true]}"#)
    }

    @Test(arguments: ["", "{", "{\"a\":}", "nul", "\u{FF}", "{\"a\" 1}", "[1 2]", "[1,]", "{\"a\":1,}", "01",
                      "1.", "-", "\"tab\there\"", "\"\\x\"", "\"\\u12g4\"", "{} {}", "[\"unterminated]",
                      String(repeating: "[", count: 100) + String(repeating: "]", count: 100)])
    func rejectsInvalidJSON(text: String) {
        #expect(throws: (any Error).self) { try JSONValue.parse(text) }
    }
}

@Suite struct JSONSyntaxTests {
    @Test(arguments: ["0", "-0.5e+10", "\"\\u00e9\\n\"", " {\"a\" : [ 1 , {\"b\":null} ] } ", "[]", "{}", "true",
                      String(repeating: "[", count: 60) + String(repeating: "]", count: 60)])
    func acceptsValidJSON(text: String) {
        #expect(JSONSyntax.isValid(Array(text.utf8)))
    }
}

@Suite struct PasswordHasherTests {
    @Test func verifiesOnlyTheRightPassword() {
        let hasher = PasswordHasher(iterations: 1000)
        let stored = hasher.hash("correct horse")
        #expect(stored.hasPrefix("pbkdf2-sha512$1000$"))
        #expect(hasher.verify("correct horse", against: stored))
        #expect(!hasher.verify("correct horsE", against: stored))
        #expect(!hasher.verify("correct horse", against: "sha1$whatever"))
    }

    @Test func emptyAndOddPasswordsAreHandled() {
        let hasher = PasswordHasher(iterations: 10)
        #expect(!hasher.verify("", against: hasher.hash("something")))
        #expect(hasher.verify("", against: hasher.hash("")))
        #expect(hasher.verify("pässwörd\u{0}x", against: hasher.hash("pässwörd\u{0}x")))
        #expect(!hasher.verify("pässwörd", against: hasher.hash("pässwörd\u{0}x")))
    }

    @Test func saltsEachHash() {
        let hasher = PasswordHasher(iterations: 1000)
        #expect(hasher.hash("same password") != hasher.hash("same password"))
    }

    @Test func oldWorkFactorsStillVerify() {
        let stored = PasswordHasher(iterations: 2000).hash("pw123456")
        #expect(PasswordHasher(iterations: 5000).verify("pw123456", against: stored))
    }

    @Test func tokensAreRandomAndStoredHashed() {
        let a = SessionToken.generate(), b = SessionToken.generate()
        #expect(a != b)
        #expect(a.count == 43)
        #expect(SessionToken.storageHash(a).count == 64)
        #expect(SessionToken.storageHash(a) == SessionToken.storageHash(a))
    }
}

/// Random input never traps the parsers that see client bytes.
@Suite struct RandomInputTests {
    @Test func parsersSurviveRandomBytes() {
        var rng = SystemRandomNumberGenerator()
        let alphabet = Array("{}[]\",:0123456789.eE+-tfnrul \\/u\nT Z:x".utf8)
        for round in 0..<20000 {
            let length = Int.random(in: 0..<40, using: &rng)
            let bytes: [UInt8] = (0..<length).map { _ in
                round % 2 == 0 ? UInt8.random(in: 0...255, using: &rng) : alphabet.randomElement(using: &rng)!
            }
            _ = JSONSyntax.isValid(bytes)
            _ = try? JSONValue.parse(bytes)
            let text = String(decoding: bytes, as: UTF8.self)
            _ = Timestamp.parse(text)
            _ = Timestamp.parse("2026-11-21T10:01:00" + text)
            _ = URLEntity.extract(from: "https://" + text)
            _ = Names.normalizedUsername(text)
        }
    }
}
