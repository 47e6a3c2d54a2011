import Codecs
import RTCBase
import RTP
import Testing
@testable import Recording

/// Garbage, stray sources and misuse: counted and skipped, never a crash,
/// never a broken file.
@Suite("Recording robustness")
struct RobustnessTests {
    /// Malformed RTP and payloads for the track's SSRC, and random bytes.
    static func garbage(ssrc: UInt32, payloadType: UInt8, sequenceNumber: UInt16, timestamp: UInt32,
                        kind: RecordingKind, random: inout SplitMix64) throws -> [[UInt8]] {
        var out: [[UInt8]] = []
        let header = try rtpPacket(ssrc: ssrc, sequenceNumber: sequenceNumber, timestamp: timestamp,
                                   payloadType: payloadType, payload: [1, 2, 3, 4])
        out.append([])                                   // nothing
        out.append(Array(header.prefix(11)))             // shorter than the fixed header
        var v1 = header; v1[0] = 0x40                    // version 1
        out.append(v1)
        var csrc = header; csrc[0] = 0x8F                // 15 CSRCs announced, none there
        out.append(csrc)
        var ext = header; ext[0] = 0x90                  // extension announced, cut short
        out.append(ext)
        var pad = header; pad[0] = 0xA0; pad[pad.count - 1] = 200 // padding longer than the packet
        out.append(pad)
        // A well-formed header with a payload the codec's format rejects.
        let badPayloads: [[UInt8]]
        switch kind {
        case .vp8:
            // X=1 but no extension byte; X=1, I=1, M=1 with a one-byte PictureID.
            badPayloads = [[0x80], [0x90, 0x80, 0x81]]
        case .opus:
            // Code 3 with M=0 (R5); code 1 with an odd length (R3); code 2 whose
            // first frame is longer than the packet (R4).
            badPayloads = [[0xFB, 0x00], [0xF9, 1, 2, 3], [0xFA, 200, 1, 2]]
        }
        for payload in badPayloads {
            out.append(try rtpPacket(ssrc: ssrc, sequenceNumber: sequenceNumber &+ 10_000, timestamp: timestamp,
                                     payloadType: payloadType, payload: payload))
        }
        for _ in 0..<4 {
            let n = Int.random(in: 1...300, using: &random)
            out.append((0..<n).map { _ in UInt8.random(in: 0...255, using: &random) })
        }
        return out
    }

    @Test("garbage among a VP8 stream is counted and skipped; the file stays whole and decodable")
    func vp8Garbage() throws {
        let dir = try TemporaryDirectory()
        let path = dir.file("garbage.ivf")
        let recorder = try TrackRecorder(kind: .vp8, path: path)
        let publisher = try VideoPublisher(ssrc: 0x600D, sequenceNumber: 9, timestamp: 9)
        var random = SplitMix64(seed: 99)
        var sent: [SentVideoFrame] = []
        var now = Instant.zero
        var malformed = 0
        for i in 0..<60 {
            let (frame, packets) = try publisher.nextFrame()
            sent.append(frame)
            for p in packets { recorder.append(rtp: p, arrival: now) }
            if i % 10 == 5 {
                let junk = try Self.garbage(ssrc: 0x600D, payloadType: 96, sequenceNumber: publisher.sequenceNumber,
                                            timestamp: publisher.currentTimestamp, kind: .vp8, random: &random)
                for g in junk { recorder.append(rtp: g, arrival: now) }
                malformed += 8
            }
            now += .milliseconds(33)
        }
        let summary = try recorder.close()
        #expect(summary.frames == 60, "\(summary)")
        #expect(summary.droppedFrames == 0)
        #expect(summary.malformedPackets >= malformed)
        let (_, frames) = try readIVF(path)
        let written = matchWrittenFrames(frames, to: sent)
        try expectDecodable(written, frames, sent: sent)
        try expectPlayable(path, codec: "vp8", seconds: 2.0)
    }

    @Test("garbage among an Opus stream is counted and skipped; ffmpeg still decodes silently")
    func opusGarbage() throws {
        let dir = try TemporaryDirectory()
        let path = dir.file("garbage.opus")
        let recorder = try TrackRecorder(kind: .opus, path: path)
        let publisher = try AudioPublisher(ssrc: 0xBAD, sequenceNumber: 1, timestamp: 1)
        var random = SplitMix64(seed: 5)
        var now = Instant.zero
        var malformed = 0
        for i in 0..<150 {
            let (_, rtp) = try publisher.nextPacket()
            recorder.append(rtp: rtp, arrival: now)
            if i % 25 == 3 {
                let junk = try Self.garbage(ssrc: 0xBAD, payloadType: 111, sequenceNumber: publisher.sequenceNumber,
                                            timestamp: publisher.timestamp, kind: .opus, random: &random)
                for g in junk { recorder.append(rtp: g, arrival: now) }
                malformed += 9
            }
            now += .milliseconds(20)
        }
        let summary = try recorder.close()
        #expect(summary.frames == 150, "\(summary)")
        #expect(summary.malformedPackets >= malformed)
        let stream = try OggOpusStream(parsing: MediaFile.readAll(path: path))
        #expect(stream.lastGranulePosition == 150 * 960)
        try expectPlayable(path, codec: "opus", seconds: 3.0)
    }

    @Test("random bytes alone never crash either recorder", arguments: [RecordingKind.vp8, .opus])
    func onlyGarbage(kind: RecordingKind) throws {
        let dir = try TemporaryDirectory()
        let recorder = try TrackRecorder(kind: kind, path: dir.file("noise"))
        var random = SplitMix64(seed: 1234)
        for i in 0..<3000 {
            var bytes = (0..<Int.random(in: 0...400, using: &random)).map { _ in UInt8.random(in: 0...255, using: &random) }
            // Half of them look like RTP version 2 of one source with
            // sequential numbers, so they pass probation and reach the
            // payload parsers, the reassembler and the timeline.
            if i % 2 == 0, bytes.count >= 12 {
                bytes[0] = 0x80 | (bytes[0] & 0x30)
                bytes[1] = 96 | (bytes[1] & 0x80)
                bytes[2] = UInt8(truncatingIfNeeded: i >> 9)
                bytes[3] = UInt8(truncatingIfNeeded: i >> 1)
                bytes[8...11] = [0, 0, 0, 7]
            }
            recorder.append(rtp: bytes, arrival: .milliseconds(Int64(i)))
        }
        let summary = try recorder.close()
        #expect(summary.malformedPackets + summary.ignoredPackets + summary.lostPackets > 0)
    }

    @Test("one stray packet with a new SSRC does not end the current source")
    func straySourceIsIgnored() throws {
        let dir = try TemporaryDirectory()
        let path = dir.file("stray.ivf")
        let recorder = try TrackRecorder(kind: .vp8, path: path)
        let publisher = try VideoPublisher(ssrc: 1, sequenceNumber: 0, timestamp: 0)
        var now = Instant.zero
        for i in 0..<30 {
            let (_, packets) = try publisher.nextFrame()
            for p in packets { recorder.append(rtp: p, arrival: now) }
            if i == 10 {
                let stray = try rtpPacket(ssrc: 0xDEAD_BEEF, sequenceNumber: 4, timestamp: 4, marker: true,
                                          payloadType: 96, payload: [0x10, 0x00, 0x00, 0x00])
                recorder.append(rtp: stray, arrival: now)
            }
            now += .milliseconds(33)
        }
        let summary = try recorder.close()
        #expect(summary.frames == 30 && summary.droppedFrames == 0)
    }

    @Test("a payload type filter ignores other payload types (RTX, FEC) on the same SSRC")
    func payloadTypeFilter() throws {
        let dir = try TemporaryDirectory()
        let recorder = try TrackRecorder(kind: .opus, path: dir.file("pt.opus"), payloadType: PayloadType(rawValue: 111))
        let publisher = try AudioPublisher(ssrc: 3, sequenceNumber: 0, timestamp: 0)
        for i in 0..<50 {
            let (_, rtp) = try publisher.nextPacket()
            recorder.append(rtp: rtp, arrival: .milliseconds(Int64(20 * i)))
            var other = rtp
            other[1] = 63
            recorder.append(rtp: other, arrival: .milliseconds(Int64(20 * i)))
        }
        let summary = try recorder.close()
        #expect(summary.frames == 50 && summary.ignoredPackets == 50)
    }

    @Test("close is idempotent, appends after close are ignored, an unwritable path throws")
    func lifecycle() throws {
        let dir = try TemporaryDirectory()
        let recorder = try TrackRecorder(kind: .opus, path: dir.file("a.opus"))
        let publisher = try AudioPublisher(ssrc: 3, sequenceNumber: 0, timestamp: 0)
        for i in 0..<10 { recorder.append(rtp: try publisher.nextPacket().rtp, arrival: .milliseconds(Int64(20 * i))) }
        let first = try recorder.close()
        recorder.append(rtp: try publisher.nextPacket().rtp, arrival: .seconds(1))
        #expect(try recorder.close() == first)
        #expect(first.frames == 10)
        #expect(throws: RecordingError.self) { try TrackRecorder(kind: .vp8, path: dir.file("missing/dir/x.ivf")) }
        // A recording of one packet (the source never passed probation) still has it.
        let single = try TrackRecorder(kind: .opus, path: dir.file("one.opus"))
        single.append(rtp: try publisher.nextPacket().rtp, arrival: .zero)
        #expect(try single.close().frames == 1)
    }
}

@Suite("Media timeline")
struct MediaTimelineTests {
    @Test("timestamps place packets; wraps are steps; resets and leaps fall back to arrival time")
    func placement() {
        var t = MediaTimeline(clockRate: 48_000)
        #expect(t.place(timestamp: UInt32.max - 479, arrival: .milliseconds(0), minimumAdvance: 960) == 0)
        // Across the 32-bit wrap: a plain 20 ms step.
        #expect(t.place(timestamp: 480, arrival: .milliseconds(20), minimumAdvance: 960) == 960)
        // A 1 s DTX gap that took 1 s to arrive is media time.
        #expect(t.place(timestamp: 480 + 48_960, arrival: .milliseconds(1040), minimumAdvance: 960) == 49_920)
        // A leap far beyond the arrival gap: placed by arrival (20 ms).
        #expect(t.place(timestamp: 2_000_000_000, arrival: .milliseconds(1060), minimumAdvance: 960) == 50_880)
        // Backwards: at least the previous packet's duration later.
        #expect(t.place(timestamp: 5, arrival: .milliseconds(1060), minimumAdvance: 960) == 51_840)
        // A new source: the arrival gap (100 ms) decides.
        t.markDiscontinuity()
        #expect(t.place(timestamp: 5, arrival: .milliseconds(1160), minimumAdvance: 960) == 56_640)
        #expect(t.place(timestamp: 965, arrival: .milliseconds(1180), minimumAdvance: 960) == 57_600)
    }
}
