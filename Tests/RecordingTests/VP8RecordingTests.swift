import Codecs
import RTCBase
import RTP
import Testing
@testable import Recording

/// VP8 over RTP into IVF, checked by reading the file back, decoding it
/// with libvpx and with FFmpeg, and asking ffprobe.
@Suite("VP8 recording to IVF")
struct VP8RecordingTests {
    static let frameTime = Duration.nanoseconds(1_000_000_000 / 30)

    @Test("a clean stream is written whole, with 90 kHz pts, and ffmpeg decodes it")
    func cleanStream() throws {
        let dir = try TemporaryDirectory()
        let path = dir.file("clean.ivf")
        let recorder = try TrackRecorder(kind: .vp8, path: path)
        #expect(recorder.needsKeyFrame)
        // Sequence numbers and timestamps wrap during the recording.
        let publisher = try VideoPublisher(ssrc: 0x1111, sequenceNumber: 65_400, timestamp: UInt32.max - 90_000)
        var sent: [SentVideoFrame] = []
        var now = Instant.seconds(100)
        for _ in 0..<150 {
            let (frame, packets) = try publisher.nextFrame()
            sent.append(frame)
            for p in packets { recorder.append(rtp: p, arrival: now) }
            now += Self.frameTime
        }
        #expect(!recorder.needsKeyFrame)
        let summary = try recorder.close()
        #expect(summary.frames == 150)
        #expect(summary.droppedFrames == 0 && summary.lostPackets == 0 && summary.malformedPackets == 0)
        #expect(abs(summary.durationSeconds - 5.0) < 0.001)

        let (header, frames) = try readIVF(path)
        #expect(header.isVP8 && header.width == 160 && header.height == 120)
        #expect(header.timebaseDenominator == 90_000 && header.timebaseNumerator == 1)
        // The field libvpx calls the frame count holds the duration in
        // timebase units, which is how FFmpeg reads it (see VP8TrackWriter.finish).
        #expect(header.frameCount == 150 * 3000)
        #expect(summary.bytes == (try MediaFile.readAll(path: path)).count)
        #expect(frames.map(\.pts) == (0..<150).map { Int64($0 * 3000) })
        let written = matchWrittenFrames(frames, to: sent)
        #expect(written == Array(0..<150))
        try expectPlayable(path, codec: "vp8", seconds: 5.0)
        let info = try #require(try probe(path))
        #expect(info.width == 160 && info.height == 120)
    }

    @Test("5 % loss with reordering: only decodable frames are written, PLI recovers, the duration stays right")
    func lossAndReordering() throws {
        let dir = try TemporaryDirectory()
        let path = dir.file("lossy.ivf")
        let recorder = try TrackRecorder(kind: .vp8, path: path)
        let publisher = try VideoPublisher(ssrc: 0xABCD_0001, sequenceNumber: 1000, timestamp: 5_000_000)
        var link = SimulatedLink(seed: 7, lossRate: 0.05, maximumJitter: .milliseconds(12))
        var reorder = ReorderCounter()
        var sent: [SentVideoFrame] = []
        var now = Instant.seconds(10)
        var lastRequest = -100
        var keyFrameRequests = 0
        let frameCount = 240
        // Run a little past the last frame so everything in flight lands.
        for i in 0..<(frameCount + 3) {
            if i < frameCount {
                // The SFU relays the recorder's PLI; a keyframe comes about one RTT (~100 ms) later.
                if recorder.needsKeyFrame, i - lastRequest >= 4, i > 0 {
                    publisher.requestKeyFrame()
                    lastRequest = i
                    keyFrameRequests += 1
                }
                let (frame, packets) = try publisher.nextFrame()
                sent.append(frame)
                for (k, p) in packets.enumerated() { link.send(p, at: now + .microseconds(Int64(300 * k))) }
            }
            now += Self.frameTime
            for (bytes, arrival) in link.deliver(until: now) {
                reorder.observe(bytes)
                recorder.append(rtp: bytes, arrival: arrival)
            }
        }
        let summary = try recorder.close()
        #expect(link.lost > 0 && reorder.reordered > 0, "lost \(link.lost), reordered \(reorder.reordered)")
        #expect(keyFrameRequests > 0)
        #expect(summary.lostPackets > 0)
        #expect(summary.droppedFrames > 0)
        #expect(summary.frames > frameCount / 3, "\(summary.frames) frames written")
        #expect(summary.frames + summary.droppedFrames <= frameCount)

        let (_, frames) = try readIVF(path)
        #expect(frames.count == summary.frames)
        let written = matchWrittenFrames(frames, to: sent)
        try expectDecodable(written, frames, sent: sent)
        // pts come from the RTP timestamps, gaps of dropped frames included.
        if let first = written.first {
            for (index, frame) in zip(written, frames) {
                #expect(frame.pts == Int64((index - first) * 3000), "frame \(index): pts \(frame.pts)")
            }
            let media = Double(frameCount - first) / 30
            #expect(abs(summary.durationSeconds - media) <= 0.1 * media)
            try expectPlayable(path, codec: "vp8", seconds: media)
        }
    }

    @Test("a new SSRC mid-stream (renegotiation) continues the file: rebased pts, stragglers of the old one ignored")
    func ssrcChange() throws {
        let dir = try TemporaryDirectory()
        let path = dir.file("renegotiated.ivf")
        let recorder = try TrackRecorder(kind: .vp8, path: path)
        let first = try VideoPublisher(ssrc: 0x0A0A_0A0A, sequenceNumber: 40_000, timestamp: 3_000_000_000)
        let second = try VideoPublisher(ssrc: 0x0B0B_0B0B, sequenceNumber: 7, timestamp: 123_456)
        var link = SimulatedLink(seed: 11, lossRate: 0, maximumJitter: .milliseconds(8))
        var sent: [SentVideoFrame] = []
        var now = Instant.seconds(1)
        var stragglers: [[UInt8]] = []
        for i in 0..<(180 + 2) {
            if i < 180 {
                let publisher = i < 90 ? first : second
                var (frame, packets) = try publisher.nextFrame()
                frame.stream = i < 90 ? 0 : 1
                sent.append(frame)
                // The old source's last frame is held back by the network
                // until the new source is flowing.
                if i == 89 { stragglers = packets } else {
                    for p in packets { link.send(p, at: now) }
                }
            }
            now += Self.frameTime
            for (bytes, arrival) in link.deliver(until: now) { recorder.append(rtp: bytes, arrival: arrival) }
            if i == 93 { for p in stragglers { recorder.append(rtp: p, arrival: now) } }
        }
        let summary = try recorder.close()
        #expect(sent[90].isKeyFrame, "a new encoder starts with a keyframe")
        // All of the first source but its held-back last frame, all of the second.
        #expect(summary.frames == 179, "\(summary)")
        #expect(summary.ignoredPackets == stragglers.count)

        let (header, frames) = try readIVF(path)
        #expect(header.width == 160 && header.height == 120)
        let written = matchWrittenFrames(frames, to: sent)
        try expectDecodable(written, frames, sent: sent)
        let pts = frames.map(\.pts)
        #expect(zip(pts, pts.dropFirst()).allSatisfy { $0 < $1 }, "pts not increasing")
        // Within each source pts step by the timestamps; across the switch by
        // about the time that passed (two frame times: frame 89 is missing).
        #expect(pts[88] == 88 * 3000 && pts[89] > pts[88])
        let step = pts[89] - pts[88]
        #expect(step > 3000 && step < 9000, "step across the switch \(step)")
        #expect(pts[178] - pts[89] == 89 * 3000)
        try expectPlayable(path, codec: "vp8", seconds: 6.0)
    }

    @Test("a new SSRC at another resolution (a renegotiated or switched layer) stays decodable")
    func resolutionChange() throws {
        let dir = try TemporaryDirectory()
        let path = dir.file("resized.ivf")
        let recorder = try TrackRecorder(kind: .vp8, path: path)
        let small = try VideoPublisher(ssrc: 0x51, sequenceNumber: 1, timestamp: 1)
        let large = try VideoPublisher(ssrc: 0x52, sequenceNumber: 2, timestamp: 2, width: 320, height: 240,
                                       bitrate: 400, maxPayloadSize: 1100)
        var sent: [SentVideoFrame] = []
        var now = Instant.zero
        for i in 0..<90 {
            var (frame, packets) = try (i < 45 ? small : large).nextFrame()
            frame.stream = i < 45 ? 0 : 1
            sent.append(frame)
            for p in packets { recorder.append(rtp: p, arrival: now) }
            now += Self.frameTime
        }
        let summary = try recorder.close()
        #expect(summary.frames == 90 && summary.droppedFrames == 0)
        let (header, frames) = try readIVF(path)
        // The header has the first keyframe's size; the decoders follow
        // the size of each keyframe (RFC 6386 §9.1).
        #expect(header.width == 160 && header.height == 120)
        let written = matchWrittenFrames(frames, to: sent)
        try expectDecodable(written, frames, sent: sent)
        try expectPlayable(path, codec: "vp8", seconds: 3.0)
    }

    @Test("joining mid-stream: nothing is written before the first keyframe")
    func startsAtKeyFrame() throws {
        let dir = try TemporaryDirectory()
        let path = dir.file("late-join.ivf")
        let recorder = try TrackRecorder(kind: .vp8, path: path)
        let publisher = try VideoPublisher(ssrc: 42, sequenceNumber: 0, timestamp: 0)
        var sent: [SentVideoFrame] = []
        var now = Instant.zero
        for i in 0..<60 {
            if i == 20 { publisher.requestKeyFrame() }
            let (frame, packets) = try publisher.nextFrame()
            sent.append(frame)
            if i >= 5 { for p in packets { recorder.append(rtp: p, arrival: now) } }
            if i >= 5 && i < 20 { #expect(recorder.needsKeyFrame, "frame \(i)") }
            now += Self.frameTime
        }
        let summary = try recorder.close()
        #expect(summary.frames == 40)
        #expect(summary.droppedFrames == 15)
        let (_, frames) = try readIVF(path)
        let written = matchWrittenFrames(frames, to: sent)
        #expect(written == Array(20..<60))
        #expect(frames.first?.pts == 0)
        try expectDecodable(written, frames, sent: sent)
        try expectPlayable(path, codec: "vp8", seconds: 40.0 / 30)
    }

    @Test("padding-only packets between frames (bandwidth probes) are not taken for loss")
    func paddingOnlyPackets() throws {
        let dir = try TemporaryDirectory()
        let path = dir.file("padding.ivf")
        let recorder = try TrackRecorder(kind: .vp8, path: path)
        let publisher = try VideoPublisher(ssrc: 9, sequenceNumber: 500, timestamp: 0)
        var now = Instant.zero
        for i in 0..<60 {
            let (_, packets) = try publisher.nextFrame()
            for p in packets { recorder.append(rtp: p, arrival: now) }
            if i % 3 == 0 {
                // RFC 3550 §5.1 padding: P bit, no payload, the last frame's timestamp.
                for _ in 0..<2 {
                    let probe = try rtpPacket(ssrc: 9, sequenceNumber: publisher.sequenceNumber,
                                              timestamp: publisher.currentTimestamp &- 3000, payloadType: 96,
                                              payload: [], paddingLength: 200)
                    publisher.sequenceNumber &+= 1
                    recorder.append(rtp: probe, arrival: now)
                }
            }
            now += Self.frameTime
        }
        let summary = try recorder.close()
        #expect(summary.frames == 60)
        #expect(summary.droppedFrames == 0 && summary.lostPackets == 0 && summary.malformedPackets == 0)
        try expectPlayable(path, codec: "vp8", seconds: 2.0)
    }
}
