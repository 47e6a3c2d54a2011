import Codecs
import Testing
@testable import CodecBench

@Suite struct SimulatedLinkTests {
    func deliveries(seed: UInt64, loss: Double, reorder: Double, count: Int = 2000) -> [Int] {
        var link = SimulatedLink<Int>(lossRate: loss, reorderRate: reorder, seed: seed)
        var out: [Int] = []
        for i in 0..<count { out += link.send(i) }
        return out + link.flush()
    }

    @Test func sameSeedSameArrivals() {
        let a = deliveries(seed: 7, loss: 0.1, reorder: 0.05)
        #expect(a == deliveries(seed: 7, loss: 0.1, reorder: 0.05))
        #expect(a != deliveries(seed: 8, loss: 0.1, reorder: 0.05))
    }

    @Test func lossRateIsRoughlyTheRequestedShare() {
        var link = SimulatedLink<Int>(lossRate: 0.2, seed: 3)
        var delivered = 0
        for i in 0..<10_000 { delivered += link.send(i).count }
        #expect(link.dropped + delivered == 10_000)
        #expect((1800...2200).contains(link.dropped))
    }

    @Test func noLossNoReorderIsTheIdentity() {
        #expect(deliveries(seed: 1, loss: 0, reorder: 0) == Array(0..<2000))
    }

    @Test func reorderingSwapsNeighboursAndLosesNothing() {
        let a = deliveries(seed: 5, loss: 0, reorder: 0.1)
        #expect(a != Array(0..<2000))
        #expect(a.sorted() == Array(0..<2000))
        // A held packet comes right after its successor: never more than one late.
        for (position, packet) in a.enumerated() { #expect(abs(position - packet) <= 1) }
    }
}

@Suite struct LossRoundTripTests {
    static func frames(_ count: Int, width: Int = 160, height: Int = 120) -> [I420Frame] {
        var source = CameraSource(width: width, height: height)
        var frame = I420Frame(width: width, height: height)
        return (0..<count).map { _ in source.nextFrame(into: &frame); return frame }
    }

    @Test func zeroLossMatchesTheLosslessPath() throws {
        let video = Self.frames(30)
        let config = VP8EncoderConfiguration(width: 160, height: 120, targetBitrate: 300)
        let (stream, _) = try VideoBench.encode(video, configuration: config)
        let lossless = try VideoBench.quality(of: stream, sources: video, frameRate: 30)
        let result = try LossRoundTrip.video(frames: video, configuration: config, lossRate: 0, reorderRate: 0,
                                             seed: 1, keyframeRequestDelayFrames: 3)
        #expect(result.packetsLost == 0)
        #expect(result.keyframeRequests == 0)
        #expect(result.framesDecoded == 30)
        #expect(result.framesFrozen == 0)
        #expect(abs(result.psnrY - lossless.psnrY) < 1e-9)
        #expect(abs(result.psnrOverall - lossless.psnrOverall) < 1e-9)
        #expect(lossless.psnrY > 25)
    }

    @Test func twentyPercentLossRecoversThroughKeyframeRequests() throws {
        let video = Self.frames(90)
        let config = VP8EncoderConfiguration(width: 160, height: 120, targetBitrate: 300)
        let result = try LossRoundTrip.video(frames: video, configuration: config, lossRate: 0.2, reorderRate: 0.01,
                                             seed: 42, keyframeRequestDelayFrames: 3, mtu: 400)
        #expect(result.packetsLost > 0)
        #expect(result.keyframeRequests >= 1)
        #expect(result.keyframesSent >= 1)
        #expect(result.framesDecodedAfterFirstRequest > 0)
        #expect(result.framesFrozen > 0)
        let clean = try LossRoundTrip.video(frames: video, configuration: config, lossRate: 0, reorderRate: 0,
                                            seed: 42, keyframeRequestDelayFrames: 3, mtu: 400)
        #expect(result.psnrY < clean.psnrY)
        #expect(result.psnrY > 10)
    }

    @Test func lossRunsAreDeterministic() throws {
        let video = Self.frames(40)
        let config = VP8EncoderConfiguration(width: 160, height: 120, targetBitrate: 300)
        let a = try LossRoundTrip.video(frames: video, configuration: config, lossRate: 0.1, reorderRate: 0.02,
                                        seed: 9, keyframeRequestDelayFrames: 2, mtu: 400)
        let b = try LossRoundTrip.video(frames: video, configuration: config, lossRate: 0.1, reorderRate: 0.02,
                                        seed: 9, keyframeRequestDelayFrames: 2, mtu: 400)
        #expect(a == b)
    }

    static func speech(seconds: Double) -> [Int16] {
        var source = SpeechSource(channels: 1)
        var pcm = [Int16](repeating: 0, count: Int(seconds * 48_000))
        source.fill(&pcm)
        return pcm
    }

    @Test func opusFECBeatsConcealmentAtTenPercentLoss() throws {
        let pcm = Self.speech(seconds: 6)
        let config = OpusEncoderConfiguration(application: .voip, channels: 1, bitrate: 32_000)
        let result = try LossRoundTrip.audio(pcm: pcm, configuration: config, lossRate: 0.1, reorderRate: 0, seed: 4)
        #expect(result.packetsLost > 0)
        #expect(result.recoveredByFEC > 0)
        #expect(result.snrFEC > result.snrPLC + 0.5)
    }

    @Test func opusWithoutLossPlaysTheSameBothWays() throws {
        let pcm = Self.speech(seconds: 2)
        let config = OpusEncoderConfiguration(application: .voip, channels: 1, bitrate: 32_000)
        let result = try LossRoundTrip.audio(pcm: pcm, configuration: config, lossRate: 0, reorderRate: 0.05, seed: 4)
        #expect(result.packetsLost == 0)
        #expect(result.recoveredByFEC == 0)
        #expect(result.snrFEC == result.snrPLC)
        #expect(result.snrFEC > 0)
    }
}
