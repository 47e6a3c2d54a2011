import Codecs
import RTCBase
import RTP
import Testing
@testable import Recording

/// Opus over RTP into Ogg Opus, checked by parsing the file back (granule
/// positions, packets), decoding it with FFmpeg, and asking ffprobe.
@Suite("Opus recording to Ogg Opus")
struct OpusRecordingTests {
    static let packetTime = Duration.milliseconds(20)

    /// Granule positions of the pages, in file order, must never decrease.
    func expectMonotonicGranules(_ stream: OggOpusStream, sourceLocation: SourceLocation = #_sourceLocation) {
        let granules = stream.packets.compactMap(\.granulePosition)
        #expect(!granules.isEmpty, sourceLocation: sourceLocation)
        #expect(granules.allSatisfy { $0 >= 0 }, sourceLocation: sourceLocation)
        #expect(zip(granules, granules.dropFirst()).allSatisfy { $0 <= $1 }, "granules \(granules)",
                sourceLocation: sourceLocation)
    }

    /// The real (non-concealment) packets in the file.
    func audioPackets(_ stream: OggOpusStream) -> [[UInt8]] {
        stream.packets.map(\.bytes).filter { !Self.isConcealment($0) }
    }

    /// A code 3 packet with a frame count byte and no frame data: the
    /// recorder's loss-concealment fill.
    static func isConcealment(_ packet: [UInt8]) -> Bool {
        packet.count == 2 && packet[0] & 0x03 == 0x03 && packet[1] & 0xC0 == 0
    }

    @Test("a clean stream: every packet in order, pre-skip 312, stereo head, ffmpeg decodes it")
    func cleanStream() throws {
        let dir = try TemporaryDirectory()
        let path = dir.file("clean.opus")
        let recorder = try TrackRecorder(kind: .opus, path: path)
        #expect(!recorder.needsKeyFrame)
        let publisher = try AudioPublisher(ssrc: 0x5151, sequenceNumber: 65_500, timestamp: UInt32.max - 20_000,
                                           music: true)
        var sent: [[UInt8]] = []
        var now = Instant.seconds(3)
        for _ in 0..<250 {
            let (opus, rtp) = try publisher.nextPacket()
            sent.append(opus)
            recorder.append(rtp: rtp, arrival: now)
            now += Self.packetTime
        }
        let summary = try recorder.close()
        #expect(summary.frames == 250)
        #expect(summary.droppedFrames == 0 && summary.lostPackets == 0 && summary.malformedPackets == 0)
        #expect(abs(summary.durationSeconds - (5.0 - 312.0 / 48_000)) < 0.0001)

        let bytes = try MediaFile.readAll(path: path)
        #expect(summary.bytes == bytes.count)
        let stream = try OggOpusStream(parsing: bytes)
        #expect(stream.head.channels == 2 && stream.head.preSkip == 312)
        #expect(stream.isComplete)
        #expect(stream.packets.map(\.bytes) == sent)
        #expect(stream.lastGranulePosition == 250 * 960)
        expectMonotonicGranules(stream)
        try expectPlayable(path, codec: "opus", seconds: 5.0)
        #expect(try #require(try probe(path)).channels == 2)
    }

    @Test("5 % loss with reordering: packets in sequence order, gaps concealed, duration kept")
    func lossAndReordering() throws {
        let dir = try TemporaryDirectory()
        let path = dir.file("lossy.opus")
        let recorder = try TrackRecorder(kind: .opus, path: path)
        let publisher = try AudioPublisher(ssrc: 0xFEED_F00D, sequenceNumber: 12, timestamp: 777)
        var link = SimulatedLink(seed: 3, lossRate: 0.05, maximumJitter: .milliseconds(45))
        var reorder = ReorderCounter()
        var sent: [[UInt8]] = []
        var delivered: [Int] = []
        var now = Instant.seconds(50)
        let count = 300
        for i in 0..<(count + 5) {
            if i < count {
                let (opus, rtp) = try publisher.nextPacket()
                sent.append(opus)
                link.send(rtp, at: now)
            }
            now += Self.packetTime
            for (bytes, arrival) in link.deliver(until: now) {
                reorder.observe(bytes)
                delivered.append(Int(bytes[2]) << 8 | Int(bytes[3]))
                recorder.append(rtp: bytes, arrival: arrival)
            }
        }
        let summary = try recorder.close()
        #expect(link.lost > 0 && reorder.reordered > 0, "lost \(link.lost), reordered \(reorder.reordered)")
        // Losses before the first and after the last packet that arrived are
        // invisible to a receiver; those between are gaps.
        let span = try #require(delivered.max()) - (try #require(delivered.min())) + 1
        #expect(summary.lostPackets == span - delivered.count)
        #expect(summary.frames == count - link.lost)
        #expect(summary.droppedFrames == 0, "the reorder window covers 45 ms of jitter")

        let stream = try OggOpusStream(parsing: MediaFile.readAll(path: path))
        expectMonotonicGranules(stream)
        // What arrived, in the order it was sent.
        let received = audioPackets(stream)
        var next = 0
        for packet in received {
            guard let i = sent[next...].firstIndex(of: packet) else {
                Issue.record("a packet is out of order or not a sent one")
                break
            }
            next = i + 1
        }
        #expect(received.count == count - link.lost)
        // Concealment fills exactly the lost packets' time (the last one
        // ends at the last packet that arrived).
        #expect(stream.lastGranulePosition <= Int64(count * 960))
        #expect(stream.lastGranulePosition >= Int64((count - 3) * 960))
        try expectPlayable(path, codec: "opus", seconds: Double(count) / 50)
    }

    @Test("a new SSRC mid-stream continues the granule; stragglers of the old SSRC are ignored")
    func ssrcChange() throws {
        let dir = try TemporaryDirectory()
        let path = dir.file("renegotiated.opus")
        let recorder = try TrackRecorder(kind: .opus, path: path)
        let first = try AudioPublisher(ssrc: 1, sequenceNumber: 100, timestamp: 4_000_000_000)
        let second = try AudioPublisher(ssrc: 2, sequenceNumber: 60_000, timestamp: 17)
        var now = Instant.seconds(7)
        var straggler: [UInt8] = []
        for i in 0..<300 {
            let (_, rtp) = try (i < 150 ? first : second).nextPacket()
            if i == 149 { straggler = rtp } else { recorder.append(rtp: rtp, arrival: now) }
            if i == 152 { recorder.append(rtp: straggler, arrival: now) }
            now += Self.packetTime
        }
        let summary = try recorder.close()
        #expect(summary.frames == 299)
        #expect(summary.ignoredPackets == 1)
        let stream = try OggOpusStream(parsing: MediaFile.readAll(path: path))
        expectMonotonicGranules(stream)
        // The missing packet's 20 ms is concealed: the new source starts
        // where the wall clock says it does.
        #expect(abs(Int(stream.lastGranulePosition) - 300 * 960) <= 960, "granule \(stream.lastGranulePosition)")
        try expectPlayable(path, codec: "opus", seconds: 6.0)
    }

    @Test("timestamp jumps within one SSRC (forward 2^30, backward) never make the granule decrease or leap")
    func timestampJumps() throws {
        let dir = try TemporaryDirectory()
        let path = dir.file("jumps.opus")
        let recorder = try TrackRecorder(kind: .opus, path: path)
        let publisher = try AudioPublisher(ssrc: 77, sequenceNumber: 0, timestamp: 1_000_000)
        var now = Instant.zero
        for i in 0..<250 {
            if i == 80 { publisher.timestamp &+= 1 << 30 }
            if i == 160 { publisher.timestamp &-= 5_000_000 }
            let (_, rtp) = try publisher.nextPacket()
            recorder.append(rtp: rtp, arrival: now)
            now += Self.packetTime
        }
        let summary = try recorder.close()
        #expect(summary.frames == 250)
        let stream = try OggOpusStream(parsing: MediaFile.readAll(path: path))
        expectMonotonicGranules(stream)
        #expect(stream.lastGranulePosition == 250 * 960, "no concealment was needed")
        try expectPlayable(path, codec: "opus", seconds: 5.0)
    }

    @Test("a DTX pause (timestamps skip, sequence numbers do not) keeps its length in the file")
    func discontinuousTransmission() throws {
        let dir = try TemporaryDirectory()
        let path = dir.file("dtx.opus")
        let recorder = try TrackRecorder(kind: .opus, path: path)
        let publisher = try AudioPublisher(ssrc: 5, sequenceNumber: 300, timestamp: 0)
        var now = Instant.zero
        for i in 0..<250 {
            let (_, rtp) = try publisher.nextPacket()
            // 1.2 s and then 0.51 s (not a whole number of 20 ms frames,
            // which needs short concealment frames) not sent at all.
            let silent = (60..<120).contains(i)
            if !silent { recorder.append(rtp: rtp, arrival: now) }
            if silent { publisher.sequenceNumber &-= 1 }
            if i == 200 { publisher.timestamp &+= 24_480; now += .milliseconds(510) }
            now += Self.packetTime
        }
        let summary = try recorder.close()
        #expect(summary.frames == 190)
        #expect(summary.lostPackets == 0)
        let stream = try OggOpusStream(parsing: MediaFile.readAll(path: path))
        expectMonotonicGranules(stream)
        #expect(stream.lastGranulePosition == 250 * 960 + 24_480)
        #expect(stream.packets.contains { Self.isConcealment($0.bytes) })
        try expectPlayable(path, codec: "opus", seconds: 5.51)
    }
}
