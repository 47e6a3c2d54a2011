import RTCBase
import Testing
@testable import RTP

@Suite struct RTPHeaderTests {
    /// A packet written by hand from RFC 3550 §5.1 and RFC 8285 §4.2:
    /// V=2 P=0 X=1 CC=2, M=1 PT=111, seq 0x1234, ts 0xDEADBEEF, SSRC 0x01020304,
    /// two CSRCs, a one-byte extension block with id 1 (3 bytes) and id 2 (2
    /// bytes) plus padding, then a 3-byte payload.
    static let handWritten: [UInt8] = hex("""
        92 EF 12 34  DE AD BE EF  01 02 03 04
        0A 0A 0A 0A  0B 0B 0B 0B
        BE DE 00 02  12 AA BB CC  21 DD EE 00
        01 02 03
        """)

    @Test func parsesHandWrittenPacket() throws {
        try Self.handWritten.withUnsafeBytes { b in
            let v = try RTPHeaderView(b)
            #expect(v.version == 2)
            #expect(!v.hasPadding)
            #expect(v.hasExtension)
            #expect(v.csrcCount == 2)
            #expect(v.marker)
            #expect(v.payloadType == pt(111))
            #expect(v.sequenceNumber == SequenceNumber(0x1234))
            #expect(v.timestamp == 0xDEAD_BEEF)
            #expect(v.ssrc == SSRC(0x0102_0304))
            #expect(v.csrc(at: 0) == SSRC(0x0A0A_0A0A))
            #expect(v.csrc(at: 1) == SSRC(0x0B0B_0B0B))
            #expect(v.csrc(at: 2) == nil)
            #expect(v.headerLength == 32)
            #expect(Array(v.payload) == [1, 2, 3])
            let ext = try #require(v.extensions)
            #expect(ext.form == .oneByte)
            let elements = ext.map { ($0.id, Array($0.value)) }
            #expect(elements.count == 2)
            #expect(elements[0].0 == 1 && elements[0].1 == [0xAA, 0xBB, 0xCC])
            #expect(elements[1].0 == 2 && elements[1].1 == [0xDD, 0xEE])
            #expect(v.absSendTime(id: 1) == AbsSendTime(rawValue: 0xAABBCC))
            #expect(v.transportSequenceNumber(id: 2) == 0xDDEE)
            #expect(v.extensionElement(id: 3) == nil)
        }
    }

    @Test func buildsTheSameBytes() throws {
        let header = RTPHeader(
            marker: true, payloadType: pt(111), sequenceNumber: SequenceNumber(0x1234), timestamp: 0xDEAD_BEEF,
            ssrc: SSRC(0x0102_0304), csrcs: [SSRC(0x0A0A_0A0A), SSRC(0x0B0B_0B0B)],
            extensions: .oneByte([
                RTPHeaderExtension(id: 1, value: [0xAA, 0xBB, 0xCC]),
                RTPHeaderExtension(id: 2, value: [0xDD, 0xEE]),
            ]))
        let packet = RTPPacket(header: header, payload: [1, 2, 3])
        #expect(try packet.serialized() == Self.handWritten)
        #expect(try RTPPacket(parsing: Self.handWritten) == packet)
    }

    static let roundTripCases: [(String, RTPHeaderExtensionBlock?, [SSRC], UInt8)] = [
        ("plain", nil, [], 0),
        ("csrcs", nil, (1...15).map { SSRC($0) }, 0),
        ("one-byte", .oneByte([RTPHeaderExtension(id: 14, value: Array(repeating: 7, count: 16)),
                               RTPHeaderExtension(id: 3, value: [1])]), [SSRC(9)], 0),
        ("two-byte", .twoByte(appBits: 5, [RTPHeaderExtension(id: 200, value: []),
                                            RTPHeaderExtension(id: 1, value: Array(0..<40)),
                                            RTPHeaderExtension(id: 255, value: [9])]), [], 0),
        ("generic", .generic(profile: 0x1234, data: [1, 2, 3, 4, 5, 6, 7, 8]), [SSRC(1), SSRC(2)], 0),
        ("padding", nil, [], 1),
        ("padding+ext+csrc", .oneByte([RTPHeaderExtension(id: 5, value: [1, 2])]), [SSRC(77)], 13),
        ("two-byte+padding", .twoByte(appBits: 0, [RTPHeaderExtension(id: 17, value: [1, 2, 3])]), [], 255),
    ]

    @Test(arguments: 0..<roundTripCases.count)
    func roundTrip(_ index: Int) throws {
        let (name, ext, csrcs, padding) = Self.roundTripCases[index]
        let header = RTPHeader(
            marker: index % 2 == 0, payloadType: pt(UInt8(96 + index)), sequenceNumber: SequenceNumber(UInt16(65530) &+ UInt16(index)),
            timestamp: UInt32(index) * 1_000_003, ssrc: SSRC(0xCAFE_0000 + UInt32(index)), csrcs: csrcs, extensions: ext)
        let packet = RTPPacket(header: header, payload: Array(0..<UInt8(20 + index)), paddingLength: padding)
        let bytes = try packet.serialized()
        #expect(bytes.count == packet.marshalSize, "\(name)")
        #expect(bytes.count % 4 == (20 + index + Int(padding)) % 4, "\(name): header is whole words")
        let parsed = try RTPPacket(parsing: bytes)
        #expect(parsed == packet, "\(name)")
        try bytes.withUnsafeBytes { b in
            let v = try RTPHeaderView(b)
            #expect(v.paddingLength == Int(padding), "\(name)")
            #expect(v.hasPadding == (padding > 0), "\(name)")
            try v.extensions?.validate()
            if let ext {
                for e in ext.elements {
                    #expect(v.extensionElement(id: e.id).map { Array($0.value) } == e.value, "\(name) id \(e.id)")
                }
            }
        }
    }

    @Test func rewriteInPlaceThenReparse() throws {
        let header = RTPHeader(
            marker: false, payloadType: pt(96), sequenceNumber: SequenceNumber(1), timestamp: 2, ssrc: SSRC(3),
            csrcs: [SSRC(4)],
            extensions: .oneByte([
                RTPHeaderExtension(id: 3, value: AbsSendTime(rawValue: 0x010203).bytes),
                RTPHeaderExtension(id: 5, value: TransportSequenceNumber.bytes(0x0506)),
                RTPHeaderExtension(id: 9, value: [1, 2, 3, 4]),
            ]))
        var bytes = try RTPPacket(header: header, payload: [9, 9, 9], paddingLength: 4).serialized()
        let original = bytes
        try bytes.withUnsafeMutableBytes { b in
            let v = try MutableRTPHeaderView(b)
            v.setSSRC(SSRC(0xFEED_F00D))
            v.setSequenceNumber(SequenceNumber(0xFFFF))
            v.setTimestamp(0x8000_0001)
            v.setPayloadType(pt(127))
            v.setMarker(true)
            try v.setTransportSequenceNumber(id: 5, 0xABCD)
            try v.setAbsSendTime(id: 3, AbsSendTime(rawValue: 0xFFFFFF))
            try [UInt8]([4, 3, 2, 1]).withUnsafeBytes { try v.setExtensionValue(id: 9, to: $0) }
            #expect(throws: RTPError.extensionLengthMismatch) {
                try [UInt8]([1]).withUnsafeBytes { try v.setExtensionValue(id: 9, to: $0) }
            }
            #expect(throws: RTPError.extensionNotFound) { try v.setTransportSequenceNumber(id: 6, 1) }
            #expect(throws: RTPError.extensionLengthMismatch) { try v.setTransportSequenceNumber(id: 9, 1) }
        }
        let p = try RTPPacket(parsing: bytes)
        #expect(p.header.ssrc == SSRC(0xFEED_F00D))
        #expect(p.header.sequenceNumber == SequenceNumber(0xFFFF))
        #expect(p.header.timestamp == 0x8000_0001)
        #expect(p.header.payloadType == pt(127))
        #expect(p.header.marker)
        #expect(p.header.csrcs == [SSRC(4)])
        #expect(p.header.extensions?.elements == [
            RTPHeaderExtension(id: 3, value: [0xFF, 0xFF, 0xFF]),
            RTPHeaderExtension(id: 5, value: [0xAB, 0xCD]),
            RTPHeaderExtension(id: 9, value: [4, 3, 2, 1]),
        ])
        #expect(p.payload == [9, 9, 9])
        #expect(p.paddingLength == 4)
        #expect(bytes.count == original.count)
        // Unset the marker and change PT again: the other bit survives.
        try bytes.withUnsafeMutableBytes { b in
            let v = try MutableRTPHeaderView(b)
            v.setMarker(false)
            #expect(v.payloadTypeValue == 127)
            v.setPayloadTypeValue(0x80 | 5)
            #expect(!v.marker)
            #expect(v.payloadTypeValue == 5)
        }
    }

    @Test func errors() {
        func parse(_ bytes: [UInt8]) throws(RTPError) {
            try withBytes(bytes) { (b) throws(RTPError) in _ = try RTPHeaderView(b) }
        }
        let good = RTPHeaderTests.handWritten
        #expect(throws: RTPError.truncated) { try parse([]) }
        #expect(throws: RTPError.truncated) { try parse(Array(good[..<11])) }
        var v1 = good; v1[0] = 0x52
        #expect(throws: RTPError.badVersion(1)) { try parse(v1) }
        // CSRC count beyond the data.
        var cc = Array(good[..<12]); cc[0] = 0x8F
        #expect(throws: RTPError.truncated) { try parse(cc) }
        // Extension header cut off, and extension length past the end.
        #expect(throws: RTPError.truncated) { try parse(Array(good[..<22])) }
        var longExt = good; longExt[23] = 9
        #expect(throws: RTPError.truncated) { try parse(longExt) }
        // Padding: zero count, and count reaching into the header.
        var pad0 = good; pad0[0] |= 0x20; pad0[pad0.count - 1] = 0
        #expect(throws: RTPError.badPadding) { try parse(pad0) }
        var padBig = good; padBig[0] |= 0x20; padBig[padBig.count - 1] = 4
        #expect(throws: RTPError.badPadding) { try parse(padBig) }
        var padAll = good; padAll[0] |= 0x20; padAll[padAll.count - 1] = 3
        #expect(throws: Never.self) { try parse(padAll) }
    }

    @Test func malformedExtensionStopsIteration() throws {
        // One-byte block: element id 1 claims 4 bytes but only 3 remain.
        let bytes = hex("90 60 00 01 00 00 00 02 00 00 00 03  BE DE 00 01  13 AA BB CC")
        try bytes.withUnsafeBytes { b in
            let v = try RTPHeaderView(b)
            let ext = try #require(v.extensions)
            #expect(Array(ext).isEmpty)
            #expect(throws: RTPError.malformedExtension) { try ext.validate() }
            #expect(throws: RTPError.malformedExtension) { _ = try RTPPacket(parsing: b) }
        }
        // Id 15 ends processing (RFC 8285 §4.2); elements before it count.
        let reserved = hex("90 60 00 01 00 00 00 02 00 00 00 03  BE DE 00 02  10 AA F3 00 21 BB CC 00")
        try reserved.withUnsafeBytes { b in
            let ext = try #require(try RTPHeaderView(b).extensions)
            #expect(ext.map(\.id) == [1])
            try ext.validate()
        }
    }

    @Test func builderRejectsWhatTheFormCannotCarry() {
        func build(_ ext: RTPHeaderExtensionBlock, csrcs: Int = 0) throws(RTPError) {
            _ = try RTPPacket(header: RTPHeader(
                payloadType: pt(0), sequenceNumber: SequenceNumber(0), timestamp: 0, ssrc: SSRC(0),
                csrcs: Array(repeating: SSRC(1), count: csrcs), extensions: ext), payload: []).serialized()
        }
        #expect(throws: RTPError.invalidExtension) { try build(.oneByte([RTPHeaderExtension(id: 15, value: [1])])) }
        #expect(throws: RTPError.invalidExtension) { try build(.oneByte([RTPHeaderExtension(id: 0, value: [1])])) }
        #expect(throws: RTPError.invalidExtension) { try build(.oneByte([RTPHeaderExtension(id: 1, value: [])])) }
        #expect(throws: RTPError.invalidExtension) { try build(.oneByte([RTPHeaderExtension(id: 1, value: Array(repeating: 0, count: 17))])) }
        #expect(throws: RTPError.invalidExtension) { try build(.twoByte(appBits: 0, [RTPHeaderExtension(id: 0, value: [1])])) }
        #expect(throws: RTPError.invalidExtension) { try build(.generic(profile: 1, data: [1, 2])) }
        #expect(throws: RTPError.tooManyCSRCs) { try build(.oneByte([]), csrcs: 16) }
        #expect(RTPHeaderExtensionBlock.automatic([RTPHeaderExtension(id: 14, value: [1])]) == .oneByte([RTPHeaderExtension(id: 14, value: [1])]))
        #expect(RTPHeaderExtensionBlock.automatic([RTPHeaderExtension(id: 15, value: [1])]) == .twoByte(appBits: 0, [RTPHeaderExtension(id: 15, value: [1])]))
        #expect(RTPHeaderExtensionBlock.automatic([RTPHeaderExtension(id: 1, value: [])]) == .twoByte(appBits: 0, [RTPHeaderExtension(id: 1, value: [])]))
    }

    @Test func bufferTooSmall() {
        let packet = RTPPacket(header: RTPHeader(payloadType: pt(0), sequenceNumber: SequenceNumber(0), timestamp: 0, ssrc: SSRC(0)), payload: [1, 2, 3])
        var buffer = [UInt8](repeating: 0, count: 14)
        buffer.withUnsafeMutableBytes { b in
            var w = ByteWriter(b)
            #expect(throws: RTPError.bufferTooSmall) { try packet.write(to: &w) }
        }
    }

    @Test func absSendTimeConversions() throws {
        // 1.5 s is 1.5 * 2^18 in 6.18 fixed point.
        #expect(AbsSendTime(nanoseconds: 1_500_000_000).rawValue == 393_216)
        // Wraps every 64 s.
        #expect(AbsSendTime(nanoseconds: 65_500_000_000).rawValue == AbsSendTime(nanoseconds: 1_500_000_000).rawValue)
        #expect(AbsSendTime(rawValue: 393_216).nanoseconds == 1_500_000_000)
        var buf: [UInt8] = [0, 0, 0]
        buf.withUnsafeMutableBytes { AbsSendTime(rawValue: 0x123456).write(to: $0) }
        #expect(buf == [0x12, 0x34, 0x56])
        #expect(buf.withUnsafeBytes { AbsSendTime.read($0) } == AbsSendTime(rawValue: 0x123456))
        #expect([UInt8]([1, 2]).withUnsafeBytes { AbsSendTime.read($0) } == nil)
        var two: [UInt8] = [0, 0]
        two.withUnsafeMutableBytes { TransportSequenceNumber.write(0xBEEF, to: $0) }
        #expect(two == [0xBE, 0xEF])
        #expect(two.withUnsafeBytes { TransportSequenceNumber.read($0) } == 0xBEEF)
    }
}
