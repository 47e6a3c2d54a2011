import RTCBase
import Testing
@testable import RTP

/// VP8 payload descriptor (RFC 7741 §4.2), table-driven over every
/// combination of the optional fields.
@Suite struct RFC7741Tests {
    struct Case: CustomStringConvertible, Sendable {
        var x, i, m, l, t, k: Bool
        var n = false, s = true
        var pid: UInt8 = 0
        var description: String { "X\(x.b)I\(i.b)M\(m.b)L\(l.b)T\(t.b)K\(k.b)N\(n.b)S\(s.b)PID\(pid)" }

        static let pictureID7: UInt16 = 0x5A
        static let pictureID15: UInt16 = 0x6ABC
        static let tl0: UInt8 = 0xC3
        static let tid: UInt8 = 2
        static let keyIndex: UInt8 = 0x15

        /// The descriptor written by hand from the §4.2 diagram, plus which
        /// field each byte belongs to (for the truncation cases).
        var bytes: [(UInt8, VP8DescriptorField)] {
            var out: [(UInt8, VP8DescriptorField)] = []
            out.append(((x ? 0x80 : 0) | (n ? 0x20 : 0) | (s ? 0x10 : 0) | pid, .required))
            guard x else { return out }
            out.append(((i ? 0x80 : 0) | (l ? 0x40 : 0) | (t ? 0x20 : 0) | (k ? 0x10 : 0), .extendedControlBits))
            if i {
                if m {
                    out.append((0x80 | UInt8(Self.pictureID15 >> 8), .pictureID))
                    out.append((UInt8(Self.pictureID15 & 0xFF), .extendedPictureID))
                } else {
                    out.append((UInt8(Self.pictureID7), .pictureID))
                }
            }
            if l { out.append((Self.tl0, .tl0PicIndex)) }
            if t || k {
                out.append(((t ? Self.tid << 6 | 0x20 : 0) | (k ? Self.keyIndex : 0), .temporalLayerKeyIndex))
            }
            return out
        }
    }

    static let cases: [Case] = {
        var out: [Case] = []
        // X=0: only N, S, PID vary.
        for n in [false, true] { for s in [false, true] { for pid: UInt8 in [0, 1, 7] {
            out.append(Case(x: false, i: false, m: false, l: false, t: false, k: false, n: n, s: s, pid: pid))
        } } }
        // X=1: all 16 I/L/T/K combinations, with and without M.
        for bits in 0..<32 {
            out.append(Case(x: true, i: bits & 1 != 0, m: bits & 16 != 0, l: bits & 2 != 0, t: bits & 4 != 0,
                            k: bits & 8 != 0, n: bits % 3 == 0, s: bits % 2 == 0, pid: UInt8(bits % 8)))
        }
        return out
    }()

    @Test(arguments: cases)
    func parseBuildIdentical(_ c: Case) throws {
        let descriptor = c.bytes.map(\.0)
        let payload = descriptor + [0xAA, 0xBB]
        let d = try VP8PayloadDescriptor(parsing: payload)
        #expect(d.length == descriptor.count)
        #expect(d.nonReference == c.n)
        #expect(d.startOfPartition == c.s)
        #expect(d.partitionIndex == c.pid)
        #expect(d.pictureID == (c.x && c.i ? (c.m ? Case.pictureID15 : Case.pictureID7) : nil))
        #expect(d.longPictureID == (c.x && c.i ? c.m : true))
        #expect(d.tl0PicIndex == (c.x && c.l ? Case.tl0 : nil))
        #expect(d.temporalLayerID == (c.x && c.t ? Case.tid : nil))
        #expect(d.layerSync == (c.x && c.t))
        #expect(d.keyIndex == (c.x && c.k ? Case.keyIndex : nil))
        #expect(try d.serialized() == descriptor)
        try payload.withUnsafeBytes { b in
            let layout = try VP8DescriptorLayout(parsing: b)
            #expect(layout.length == descriptor.count)
            #expect(layout.pictureID(in: b) == d.pictureID)
            #expect(layout.tl0PicIndex(in: b) == d.tl0PicIndex)
        }
    }

    @Test(arguments: cases)
    func truncatedDescriptorsNameTheMissingField(_ c: Case) {
        let fields = c.bytes
        for cut in 0..<fields.count {
            let prefix = fields[..<cut].map(\.0)
            #expect(throws: VP8Error.truncated(fields[cut].1), "\(c) cut at \(cut)") {
                try VP8PayloadDescriptor(parsing: prefix)
            }
        }
    }

    @Test(arguments: cases.filter { $0.x && $0.i })
    func rewritePictureIDAndTL0InPlace(_ c: Case) throws {
        var payload = c.bytes.map(\.0) + [0x11, 0x22, 0x33]
        let before = payload
        try payload.withUnsafeMutableBytes { b in
            let layout = try VP8DescriptorLayout(parsing: UnsafeRawBufferPointer(b))
            try layout.setPictureID(0x7FFF, in: b)
            if c.l {
                try layout.setTL0PicIndex(0x01, in: b)
            } else {
                #expect(throws: VP8Error.missingField(.tl0PicIndex)) { try layout.setTL0PicIndex(1, in: b) }
            }
        }
        let d = try VP8PayloadDescriptor(parsing: payload)
        // The field keeps its length: 7 bits keep the low 7.
        #expect(d.pictureID == (c.m ? 0x7FFF : 0x7F))
        #expect(d.longPictureID == c.m)
        #expect(d.tl0PicIndex == (c.l ? 0x01 : nil))
        #expect(d.length == c.bytes.count)
        #expect(payload.count == before.count)
        #expect(Array(payload.suffix(3)) == [0x11, 0x22, 0x33])
        // Everything but the rewritten bytes is untouched.
        for (index, (_, field)) in c.bytes.enumerated()
        where ![.pictureID, .extendedPictureID, .tl0PicIndex].contains(field) {
            #expect(payload[index] == before[index])
        }
    }

    @Test func rewriteWithoutPictureIDFails() throws {
        var payload: [UInt8] = [0x10, 0x00]
        try payload.withUnsafeMutableBytes { b in
            let layout = try VP8DescriptorLayout(parsing: UnsafeRawBufferPointer(b))
            #expect(throws: VP8Error.missingField(.pictureID)) { try layout.setPictureID(1, in: b) }
        }
    }

    @Test func ignoredBitsAreIgnored() throws {
        // K=1 only: TID and Y bits present in the octet must be ignored;
        // reserved bits in both octets too.
        let d = try VP8PayloadDescriptor(parsing: [0x80 | 0x40 | 0x08 | 0x10, 0x10 | 0x0F, 0xE0 | 0x03])
        #expect(d.temporalLayerID == nil)
        #expect(!d.layerSync)
        #expect(d.keyIndex == 3)
        #expect(d.startOfPartition)
        #expect(try d.serialized() == [0x90, 0x10, 0x03])
    }

    @Test func buildRejectsOutOfRangeFields() {
        #expect(throws: VP8Error.invalidValue) { try VP8PayloadDescriptor(partitionIndex: 8).serialized() }
        #expect(throws: VP8Error.invalidValue) { try VP8PayloadDescriptor(pictureID: 0x80, longPictureID: false).serialized() }
        #expect(throws: VP8Error.invalidValue) { try VP8PayloadDescriptor(pictureID: 0x8000).serialized() }
        #expect(throws: VP8Error.invalidValue) { try VP8PayloadDescriptor(temporalLayerID: 4).serialized() }
        #expect(throws: VP8Error.invalidValue) { try VP8PayloadDescriptor(keyIndex: 32).serialized() }
    }
}

private extension Bool {
    var b: Int { self ? 1 : 0 }
}
