import RTCBase
import Testing
@testable import RTP

/// A packet as the tests carry it between packetizer and depacketizer.
struct TestPacket {
    var sequenceNumber: UInt16
    var timestamp: UInt32
    var marker: Bool
    var payload: [UInt8]
}

/// A frame whose first bytes are a VP8 keyframe or interframe tag, so the
/// depacketizer's keyframe detection sees something real.
func makeFrame(size: Int, keyFrame: Bool, using rng: inout SplitMix64) -> [UInt8] {
    var frame = [UInt8].random(count: size, using: &rng)
    if size >= 10, keyFrame {
        frame.replaceSubrange(0..<10, with: RFC6386Tests.keyFrame[..<10])
    } else if size >= 1 {
        frame[0] |= 1  // P=1: interframe
    }
    return frame
}

func packetize(
    frames: [[UInt8]], mtu: Int, firstSequence: UInt16, packetizer: inout VP8Packetizer
) throws -> [TestPacket] {
    var out: [TestPacket] = []
    var seq = firstSequence
    for (index, frame) in frames.enumerated() {
        let payloads = try packetizer.packetize(frame: frame, maxPayloadSize: mtu)
        for (i, p) in payloads.enumerated() {
            out.append(TestPacket(sequenceNumber: seq, timestamp: UInt32(index) * 3000, marker: i == payloads.count - 1, payload: p))
            seq &+= 1
        }
    }
    return out
}

func depacketize(_ packets: [TestPacket], into d: inout VP8Depacketizer, flush: Bool = true) throws -> [VP8Depacketizer.Event] {
    var events: [VP8Depacketizer.Event] = []
    for p in packets {
        try p.payload.withUnsafeBytes { b in
            try d.push(sequenceNumber: SequenceNumber(p.sequenceNumber), timestamp: p.timestamp, marker: p.marker, payload: b)
        }
        while let e = d.pollEvent() { events.append(e) }
    }
    if flush {
        d.flush()
        while let e = d.pollEvent() { events.append(e) }
    }
    return events
}

extension VP8Depacketizer.Event {
    var frame: VP8Frame? { if case .frame(let f) = self { return f } else { return nil } }
}

@Suite struct VP8PacketizerTests {
    @Test(arguments: [12, 13, 50, 100, 1200])
    func splitsEveryFrameSizeWithinTheLimit(_ mtu: Int) throws {
        var rng = SplitMix64(seed: UInt64(mtu))
        var packetizer = VP8Packetizer(pictureID: 0x7FFE)
        let headerLength = 4  // X + I with a 15-bit PictureID
        let capacity = mtu - headerLength
        // Random sizes plus the edges: 1 byte, exactly one packet, one over,
        // exactly k packets, and one over k.
        var sizes = (0..<40).map { _ in Int.random(in: 1...5000, using: &rng) }
        sizes += [1, capacity - 1, capacity, capacity + 1, 3 * capacity, 3 * capacity + 1, 3 * capacity - 1]
        for size in sizes where size > 0 {
            let frame = [UInt8].random(count: size, using: &rng)
            let expectedPictureID = packetizer.pictureID
            let payloads = try packetizer.packetize(frame: frame, maxPayloadSize: mtu)
            #expect(payloads.count == (size + capacity - 1) / capacity, "size \(size)")
            var data: [UInt8] = []
            for (i, p) in payloads.enumerated() {
                #expect(p.count <= mtu)
                let d = try VP8PayloadDescriptor(parsing: p)
                #expect(d.startOfPartition == (i == 0))
                #expect(d.partitionIndex == 0)
                #expect(d.pictureID == expectedPictureID)
                #expect(d.length == headerLength)
                data += p[d.length...]
            }
            #expect(data == frame)
            // Balanced: sizes differ by at most one byte.
            let lengths = payloads.map(\.count)
            #expect(lengths.max()! - lengths.min()! <= 1)
        }
    }

    @Test func pictureIDWrapsAndShortFormIsSupported() throws {
        var long = VP8Packetizer(pictureID: 0x7FFF)
        _ = try long.packetize(frame: [1], maxPayloadSize: 100)
        #expect(long.pictureID == 0)
        var short = VP8Packetizer(pictureID: 0x7F, longPictureID: false)
        let p = try short.packetize(frame: [1, 2, 3], maxPayloadSize: 100)
        #expect(p == [[0x90, 0x80, 0x7F, 1, 2, 3]])
        #expect(short.pictureID == 0)
        var none = VP8Packetizer(usesPictureID: false)
        #expect(try none.packetize(frame: [9], maxPayloadSize: 2) == [[0x10, 9]])
    }

    @Test func temporalLayersAndTL0PicIndex() throws {
        var packetizer = VP8Packetizer(pictureID: 10, tl0PicIndex: 5)
        let pattern: [UInt8] = [0, 2, 1, 2, 0, 2]
        var tl0PerFrame: [UInt8?] = []
        for (i, tid) in pattern.enumerated() {
            let payloads = try packetizer.packetize(
                frame: [UInt8](repeating: UInt8(i), count: 30), maxPayloadSize: 20,
                options: .init(temporalLayerID: tid, layerSync: tid == 1, nonReference: tid == 2))
            #expect(payloads.count == 3)
            var tl0s: Set<UInt8?> = []
            for p in payloads {
                let d = try VP8PayloadDescriptor(parsing: p)
                #expect(d.temporalLayerID == tid)
                #expect(d.nonReference == (tid == 2))
                #expect(d.layerSync == (tid == 1))
                #expect(d.pictureID == UInt16(10 + i))
                tl0s.insert(d.tl0PicIndex)
            }
            #expect(tl0s.count == 1, "one TL0PICIDX per frame")
            tl0PerFrame.append(tl0s.first ?? nil)
        }
        // Base-layer frames advance TL0PICIDX; upper layers repeat the last.
        #expect(tl0PerFrame == [5, 5, 5, 5, 6, 6])
        #expect(packetizer.nextTL0PicIndex == 7)
    }

    @Test func errors() {
        var p = VP8Packetizer()
        #expect(throws: VP8Error.emptyFrame) { try p.packetize(frame: [], maxPayloadSize: 100) }
        #expect(throws: VP8Error.payloadSizeTooSmall) { try p.packetize(frame: [1], maxPayloadSize: 4) }
        #expect(p.pictureID == 0, "failed frames do not consume a PictureID")
    }
}

@Suite struct VP8DepacketizerTests {
    static func frames(count: Int, using rng: inout SplitMix64) -> [[UInt8]] {
        (0..<count).map { i in makeFrame(size: Int.random(in: 1...3000, using: &rng), keyFrame: i % 10 == 0, using: &rng) }
    }

    @Test(arguments: [60, 200, 1200])
    func roundTripInOrder(_ mtu: Int) throws {
        var rng = SplitMix64(seed: 1)
        var frames = Self.frames(count: 30, using: &rng)
        // Edges: smaller than one packet, and exactly at / either side of
        // one and two packets' worth (4 descriptor bytes per packet).
        let capacity = mtu - 4
        frames += [1, capacity - 1, capacity, capacity + 1, 2 * capacity, 2 * capacity + 1].map {
            makeFrame(size: $0, keyFrame: false, using: &rng)
        }
        var packetizer = VP8Packetizer(pictureID: 100)
        let packets = try packetize(frames: frames, mtu: mtu, firstSequence: 65500, packetizer: &packetizer)
        var d = VP8Depacketizer()
        let out = try depacketize(packets, into: &d).compactMap(\.frame)
        #expect(out.count == frames.count)
        #expect(out.map(\.data) == frames)
        #expect(out.map(\.timestamp) == frames.indices.map { UInt32($0) * 3000 })
        #expect(out.map(\.isKeyFrame) == frames.indices.map { $0 < 30 && $0 % 10 == 0 })
        #expect(out.map(\.pictureID) == frames.indices.map { UInt16(100 + $0) })
        #expect(out.map { Int($0.lastSequenceNumber.rawValue &- $0.firstSequenceNumber.rawValue) + 1 }.reduce(0, +) == packets.count)
        #expect(out[0].keyFrameHeader == VP8KeyFrameHeader(width: 640, height: 480, verticalScale: 1))
        #expect(out[1].keyFrameHeader == nil)
        #expect(!d.needsKeyFrame)
        #expect(d.pendingPacketCount == 0)
    }

    @Test func reorderingWithinTheWindow() throws {
        var rng = SplitMix64(seed: 2)
        let frames = Self.frames(count: 40, using: &rng)
        var packetizer = VP8Packetizer()
        var packets = try packetize(frames: frames, mtu: 300, firstSequence: 65000, packetizer: &packetizer)
        // Shuffle within blocks of 6: no packet moves more than 5 places,
        // inside the window of 10.
        for start in stride(from: 0, to: packets.count, by: 6) {
            packets[start..<min(start + 6, packets.count)].shuffle(using: &rng)
        }
        #expect(packets.first?.sequenceNumber != 65000, "the very first packet arrives late too")
        var d = VP8Depacketizer(reorderWindow: 10)
        let events = try depacketize(packets, into: &d, flush: false)
        let early = events.compactMap(\.frame)
        // Without a flush, all but possibly the last frame are out already.
        #expect(early.count >= frames.count - 1)
        #expect(early.map(\.data) == Array(frames.prefix(early.count)), "in order and intact")
        d.flush()
        var all = events
        while let e = d.pollEvent() { all.append(e) }
        #expect(all.compactMap(\.frame).map(\.data) == frames, "every frame, in order")
        #expect(all.filter { $0.frame == nil }.map(String.init(describing:)) == [])
    }

    @Test func lossDropsOnlyTheDamagedFrames() throws {
        var rng = SplitMix64(seed: 3)
        let frames = Self.frames(count: 30, using: &rng)
        var packetizer = VP8Packetizer()
        let packets = try packetize(frames: frames, mtu: 400, firstSequence: 10, packetizer: &packetizer)
        // Lose: the first packet of frame 3, the marker packet of frame 5,
        // a middle packet of frame 12, and all of frame 20.
        func indices(ofFrame f: Int) -> [Int] { packets.indices.filter { packets[$0].timestamp == UInt32(f) * 3000 } }
        var lost: Set<Int> = []
        for f in [3, 5, 12] { #expect(indices(ofFrame: f).count >= 3, "frame \(f) should span packets") }
        lost.insert(indices(ofFrame: 3).first!)
        lost.insert(indices(ofFrame: 5).last!)
        lost.insert(indices(ofFrame: 12)[1])
        lost.formUnion(indices(ofFrame: 20))
        let received = packets.indices.filter { !lost.contains($0) }.map { packets[$0] }
        var d = VP8Depacketizer(reorderWindow: 5)
        let events = try depacketize(received, into: &d)
        let out = events.compactMap(\.frame)
        let expected = (0..<30).filter { ![3, 5, 12, 20].contains($0) }
        #expect(out.map(\.timestamp) == expected.map { UInt32($0) * 3000 })
        #expect(out.map(\.data) == expected.map { frames[$0] })
        let dropped = events.compactMap { e -> UInt32? in if case .frameDropped(let ts) = e { return ts } else { return nil } }
        #expect(dropped == [3, 5, 12].map { UInt32($0) * 3000 })
        let lostCount = events.reduce(0) { n, e in if case .packetsLost(_, let c) = e { return n + c } else { return n } }
        #expect(lostCount == lost.count)
        // Frame 20 had no keyframe after it until 20 itself... keyframes are
        // every 10th frame, and frame 20 (a keyframe) was lost, so a keyframe
        // is still needed at the end.
        #expect(d.needsKeyFrame)
    }

    @Test func needsKeyFrameClearsOnKeyFrame() throws {
        var rng = SplitMix64(seed: 4)
        let frames = Self.frames(count: 12, using: &rng)
        var packetizer = VP8Packetizer()
        let packets = try packetize(frames: frames, mtu: 1200, firstSequence: 0, packetizer: &packetizer)
        var d = VP8Depacketizer(reorderWindow: 2)
        #expect(d.needsKeyFrame)
        // Drop one packet of frame 2; frames 3…9 still come out, frame 10 is a keyframe.
        let lostIndex = packets.firstIndex { $0.timestamp == 6000 }!
        var received = packets
        received.remove(at: lostIndex)
        var sawNeed = false
        for p in received {
            try p.payload.withUnsafeBytes { try d.push(sequenceNumber: SequenceNumber(p.sequenceNumber), timestamp: p.timestamp, marker: p.marker, payload: $0) }
            while let e = d.pollEvent() {
                if let f = e.frame, f.timestamp > 6000, f.timestamp < 30000 { sawNeed = sawNeed || d.needsKeyFrame }
            }
        }
        d.flush()
        #expect(sawNeed)
        #expect(!d.needsKeyFrame)
    }

    @Test func duplicatesAndLatePacketsAreIgnored() throws {
        var rng = SplitMix64(seed: 5)
        let frames = Self.frames(count: 5, using: &rng)
        var packetizer = VP8Packetizer()
        let packets = try packetize(frames: frames, mtu: 500, firstSequence: 300, packetizer: &packetizer)
        var doubled: [TestPacket] = []
        for p in packets { doubled += [p, p] }
        doubled.append(packets[0])  // late: already output
        var d = VP8Depacketizer()
        let out = try depacketize(doubled, into: &d)
        #expect(out.compactMap(\.frame).map(\.data) == frames)
        #expect(out.count == frames.count)
    }

    @Test func trailingIncompleteFrameIsDroppedOnFlush() throws {
        var rng = SplitMix64(seed: 6)
        let frames = [makeFrame(size: 900, keyFrame: true, using: &rng), makeFrame(size: 900, keyFrame: false, using: &rng)]
        var packetizer = VP8Packetizer()
        let packets = try packetize(frames: frames, mtu: 200, firstSequence: 0, packetizer: &packetizer)
        var d = VP8Depacketizer()
        let events = try depacketize(Array(packets.dropLast()), into: &d)
        #expect(events.compactMap(\.frame).map(\.data) == [frames[0]])
        #expect(events.last == .frameDropped(timestamp: 3000))
    }

    @Test func frameWithoutMarkerEndsAtTimestampChange() throws {
        var d = VP8Depacketizer()
        let packets = [
            TestPacket(sequenceNumber: 1, timestamp: 100, marker: false, payload: [0x10, 0x01, 0xAA]),
            TestPacket(sequenceNumber: 2, timestamp: 100, marker: false, payload: [0x00, 0xBB]),
            TestPacket(sequenceNumber: 3, timestamp: 200, marker: true, payload: [0x10, 0x01, 0xCC]),
        ]
        let frames = try depacketize(packets, into: &d).compactMap(\.frame)
        #expect(frames.map(\.data) == [[0x01, 0xAA, 0xBB], [0x01, 0xCC]])
    }
}
