import Testing
import RTCBase
@testable import SRTP

/// Receiver rules (replay, window, tampering, malformed input) and the
/// in-place API, on Parley ↔ Parley and Parley ↔ libsrtp.
@Suite struct SRTPContextTests {
    static func pair(_ profile: SRTPProfile, window: Int = 1024) throws -> (SRTPContext, SRTPContext) {
        let key = masterKey(for: profile, seed: 11)
        return (
            try SRTPContext(profile: profile, masterKey: key),
            try SRTPContext(profile: profile, masterKey: key, replayWindowSize: window)
        )
    }

    @Test(arguments: SRTPProfile.allCases)
    func replayIsRejectedAndStateKept(profile: SRTPProfile) throws {
        let (sender, receiver) = try Self.pair(profile)
        let first = try sender.protectRTP(makeRTP(sequence: 10, ssrc: 5, payload: [1, 2, 3]))
        let second = try sender.protectRTP(makeRTP(sequence: 11, ssrc: 5, payload: [4, 5, 6]))
        _ = try receiver.unprotectRTP(first)
        #expect(throws: SRTPError.replayed) { try receiver.unprotectRTP(first) }
        #expect(try receiver.unprotectRTP(second) == makeRTP(sequence: 11, ssrc: 5, payload: [4, 5, 6]))
        #expect(throws: SRTPError.replayed) { try receiver.unprotectRTP(second) }

        let report = try sender.protectRTCP(makeRTCP(ssrc: 5, blocks: 1, tail: [9]))
        _ = try receiver.unprotectRTCP(report)
        #expect(throws: SRTPError.replayed) { try receiver.unprotectRTCP(report) }
    }

    @Test(arguments: SRTPProfile.allCases)
    func tamperedPacketsAreRejectedAndChangeNothing(profile: SRTPProfile) throws {
        let (sender, receiver) = try Self.pair(profile)
        let plain = makeRTP(
            sequence: 500, ssrc: 77, csrcs: [1], extensionWords: [0x1122_3344], payload: Array(0..<40))
        let protected = try sender.protectRTP(plain)
        // Header (sequence number, extension), payload and tag alike.
        for position in [3, 17, 22, 30, protected.count - 1] {
            var packet = protected
            packet[position] ^= 0x80
            let original = packet
            #expect(throws: SRTPError.authenticationFailed) { try inPlace(&packet, receiver.unprotectRTP) }
            #expect(packet == original, "buffer changed at \(position)")
        }
        #expect(receiver.inboundRolloverCounter(for: SSRC(77)) == nil)
        #expect(try receiver.unprotectRTP(protected) == plain)

        // A packet from a different key never authenticates.
        let stranger = try SRTPContext(profile: profile, masterKey: masterKey(for: profile, seed: 99))
        #expect(throws: SRTPError.authenticationFailed) {
            try receiver.unprotectRTP(stranger.protectRTP(makeRTP(sequence: 501, ssrc: 77, payload: [0])))
        }

        let report = try sender.protectRTCP(makeRTCP(ssrc: 77, blocks: 2, tail: [1, 2]))
        for position in [1, 8, report.count - profile.rtcpOverhead, report.count - 1] {
            var packet = report
            packet[position] ^= 0x01
            #expect(throws: SRTPError.authenticationFailed) { try receiver.unprotectRTCP(packet) }
        }
        #expect(try receiver.unprotectRTCP(report) == makeRTCP(ssrc: 77, blocks: 2, tail: [1, 2]))
    }

    @Test(arguments: SRTPProfile.allCases)
    func outOfOrderInsideTheWindowAndTooOld(profile: SRTPProfile) throws {
        let (sender, receiver) = try Self.pair(profile, window: 1024)
        #expect(receiver.replayWindowSize == 1024)
        let packets = try (0..<1100).map {
            try sender.protectRTP(makeRTP(sequence: UInt16($0), ssrc: 3, payload: [UInt8(truncatingIfNeeded: $0)]))
        }
        _ = try receiver.unprotectRTP(packets[0])
        _ = try receiver.unprotectRTP(packets[1099])
        // 1099 − 76 = 1023: the oldest index the window still covers.
        #expect(try receiver.unprotectRTP(packets[76]).last == 76)
        #expect(throws: SRTPError.tooOld) { try receiver.unprotectRTP(packets[75]) }
        #expect(throws: SRTPError.tooOld) { try receiver.unprotectRTP(packets[10]) }
        for i in stride(from: 1098, through: 1000, by: -7) {
            #expect(try receiver.unprotectRTP(packets[i]).last == UInt8(truncatingIfNeeded: i))
        }
        #expect(throws: SRTPError.replayed) { try receiver.unprotectRTP(packets[1098]) }
    }

    @Test func smallWindowIsRoundedAndEnforced() throws {
        let (sender, receiver) = try Self.pair(.aeadAES128GCM, window: 50)
        #expect(receiver.replayWindowSize == 64)
        let packets = try (0..<100).map { try sender.protectRTP(makeRTP(sequence: UInt16($0), ssrc: 1, payload: [])) }
        _ = try receiver.unprotectRTP(packets[99])
        #expect(throws: SRTPError.tooOld) { try receiver.unprotectRTP(packets[35]) }
        #expect(try receiver.unprotectRTP(packets[36]).count == 12)
    }

    /// A sender retransmitting an old sequence number after the wrap keeps
    /// that packet's original ROC, so the receiver (here libsrtp with a
    /// fresh session, which only sees the retransmission after the others)
    /// authenticates it.
    @Test func senderKeepsTheIndexOfRetransmissions() throws {
        let key = masterKey(for: .aes128CMHMACSHA1_80, seed: 12)
        let sender = try SRTPContext(profile: .aes128CMHMACSHA1_80, masterKey: key)
        let receiver = try SRTPContext(profile: .aes128CMHMACSHA1_80, masterKey: key)
        for sequence in [UInt16(65_534), 65_535, 0, 1] {
            _ = try receiver.unprotectRTP(sender.protectRTP(makeRTP(sequence: sequence, ssrc: 8, payload: [7])))
        }
        #expect(sender.outboundRolloverCounter(for: SSRC(8)) == 1)
        // 65 533 was never delivered; sent now it must carry ROC 0.
        let late = try sender.protectRTP(makeRTP(sequence: 65_533, ssrc: 8, payload: [6]))
        #expect(try receiver.unprotectRTP(late) == makeRTP(sequence: 65_533, ssrc: 8, payload: [6]))
        #expect(receiver.inboundRolloverCounter(for: SSRC(8)) == 1)
    }

    @Test(arguments: SRTPProfile.allCases)
    func shortAndMalformedPackets(profile: SRTPProfile) throws {
        let (sender, receiver) = try Self.pair(profile)
        #expect(throws: SRTPError.packetTooShort) { try sender.protectRTP([0x80, 0, 0, 1]) }
        #expect(throws: SRTPError.packetTooShort) { try receiver.unprotectRTP([UInt8](repeating: 0x80, count: 12)) }
        #expect(throws: SRTPError.packetTooShort) { try sender.protectRTCP([0x80, 200, 0]) }
        #expect(throws: SRTPError.packetTooShort) { try receiver.unprotectRTCP([UInt8](repeating: 0x80, count: 20)) }
        // Version 1.
        #expect(throws: SRTPError.malformedHeader) { try sender.protectRTP(makeRTP(sequence: 1, ssrc: 1, payload: []).with(0, 0x40)) }
        // Fifteen CSRCs claimed, none present.
        #expect(throws: SRTPError.malformedHeader) { try sender.protectRTP(makeRTP(sequence: 1, ssrc: 1, payload: [1, 2]).with(0, 0x8F)) }
        // Extension length runs past the end.
        let longExtension = makeRTP(sequence: 1, ssrc: 1, extensionWords: [1], payload: []).with(15, 9)
        #expect(throws: SRTPError.malformedHeader) { try sender.protectRTP(longExtension) }

        // No room for the tag.
        var exact = makeRTP(sequence: 1, ssrc: 1, payload: [1, 2, 3])
        #expect(throws: SRTPError.bufferTooSmall) { try inPlace(&exact, sender.protectRTP) }
        #expect(throws: SRTPError.bufferTooSmall) { try inPlace(&exact, sender.protectRTCP) }
        // A length beyond the buffer.
        var small = [UInt8](repeating: 0x80, count: 40)
        #expect(throws: SRTPError.packetTooShort) {
            try inPlace(&small) { (buffer, _) throws(SRTPError) in try receiver.unprotectRTP(buffer, length: 41) }
        }
        #expect(throws: SRTPError.packetTooShort) {
            try inPlace(&small) { (buffer, _) throws(SRTPError) in try sender.protectRTP(buffer, length: -1) }
        }
    }

    /// Random octets must be refused with an error, never trap or allocate
    /// state.
    @Test(arguments: SRTPProfile.allCases)
    func garbageNeverTraps(profile: SRTPProfile) throws {
        let (_, receiver) = try Self.pair(profile)
        var rng = SeededGenerator(seed: 5)
        for _ in 0..<2000 {
            let count = Int.random(in: 0...80, using: &rng)
            var packet = rng.bytes(count)
            if count > 0, Bool.random(using: &rng) { packet[0] = 0x80 | (packet[0] & 0x3F) }
            #expect(throws: SRTPError.self) { try receiver.unprotectRTP(packet) }
            #expect(throws: SRTPError.self) { try receiver.unprotectRTCP(packet) }
        }
    }

    @Test func inPlaceRoundTripUsesTheCallersBuffer() throws {
        let (sender, receiver) = try Self.pair(.aes128CMHMACSHA1_80)
        let plain = makeRTP(sequence: 9, ssrc: 9, csrcs: [1, 2], payload: Array(repeating: 0xAB, count: 100))
        var buffer = plain + [UInt8](repeating: 0, count: SRTPProfile.aes128CMHMACSHA1_80.maxOverhead)
        let length = try buffer.withUnsafeMutableBytes { try sender.protectRTP($0, length: plain.count) }
        #expect(length == plain.count + 10)
        #expect(Array(buffer[0..<20]) == Array(plain[0..<20]))  // header in clear
        #expect(Array(buffer[20..<plain.count]) != Array(plain[20...]))
        let back = try buffer.withUnsafeMutableBytes { try receiver.unprotectRTP($0, length: length) }
        #expect(back == plain.count)
        #expect(Array(buffer[0..<back]) == plain)
    }

    @Test func thirtyTwoBitTagOnRTPEightyOnRTCP() throws {
        let (sender, _) = try Self.pair(.aes128CMHMACSHA1_32)
        let plain = makeRTP(sequence: 1, ssrc: 1, payload: [1])
        #expect(try sender.protectRTP(plain).count == plain.count + 4)
        let report = makeRTCP(ssrc: 1, blocks: 0, tail: [])
        #expect(try sender.protectRTCP(report).count == report.count + 14)
    }

    @Test func removedStreamStartsOver() throws {
        let (sender, receiver) = try Self.pair(.aeadAES128GCM)
        let packet = try sender.protectRTP(makeRTP(sequence: 1, ssrc: 4, payload: [1]))
        _ = try receiver.unprotectRTP(packet)
        receiver.removeStream(SSRC(4))
        #expect(receiver.inboundRolloverCounter(for: SSRC(4)) == nil)
        _ = try receiver.unprotectRTP(packet)
    }

    @Test func dtlsExportSplitsPerRFC5764() throws {
        let material = (0..<56).map { UInt8($0) }
        let (client, server) = try SRTPMasterKey.splitDTLSExport(material, profile: .aeadAES128GCM)
        #expect(client.key == Array(0..<16) && server.key == Array(16..<32))
        #expect(client.salt == Array(32..<44) && server.salt == Array(44..<56))
        let cm = try SRTPMasterKey.splitDTLSExport(Array(0..<60), profile: .aes128CMHMACSHA1_80)
        #expect(cm.client.salt == Array(32..<46) && cm.server.salt == Array(46..<60))
        #expect(throws: SRTPError.invalidKeyLength) {
            try SRTPMasterKey.splitDTLSExport(Array(0..<59), profile: .aes128CMHMACSHA1_80)
        }
        #expect(SRTPProfile(dtlsProfileID: 0x0007) == .aeadAES128GCM)
        #expect(SRTPProfile(dtlsProfileID: 0x0003) == nil)
    }
}

extension Array where Element == UInt8 {
    /// A copy with octet `index` replaced.
    func with(_ index: Int, _ value: UInt8) -> [UInt8] {
        var copy = self
        copy[index] = value
        return copy
    }
}
