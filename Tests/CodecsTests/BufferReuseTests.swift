import Testing
@testable import Codecs

/// Steady-state encode/decode reuses its buffers. (Zero mallocs per frame
/// in release builds was measured with a malloc-counting preload; a count
/// inside this test process is not reliable, so these tests check the
/// observable part: the caller's buffers are never reallocated.)
@Suite("Buffer reuse in steady state")
struct BufferReuseTests {
    func baseAddress(_ a: [UInt8]) -> UnsafeRawPointer? { a.withUnsafeBytes { $0.baseAddress } }

    @Test("VP8 encode(into:) and decode(into:) keep writing into the same storage")
    func vp8Reuse() throws {
        var config = VP8EncoderConfiguration(width: 160, height: 120, targetBitrate: 300)
        config.temporalLayers = .three
        let encoder = try VP8Encoder(configuration: config)
        let decoder = try VP8Decoder()
        var source = CameraSource(width: 160, height: 120)
        var frame = I420Frame(width: 160, height: 120)
        var decoded = I420Frame(width: 160, height: 120)
        var packet: [UInt8] = []
        packet.reserveCapacity(64 * 1024)
        let packetBase = baseAddress(packet)
        let frameBase = baseAddress(frame.storage), decodedBase = baseAddress(decoded.storage)
        for i in 0..<20 {
            source.nextFrame(into: &frame)
            let info = try #require(try encoder.encode(frame, pts: Int64(i * 3000), into: &packet))
            #expect(info.byteCount == packet.count)
            #expect(try decoder.decode(packet, into: &decoded))
            #expect(baseAddress(packet) == packetBase)
            #expect(baseAddress(frame.storage) == frameBase)
            #expect(baseAddress(decoded.storage) == decodedBase)
        }
    }

    @Test("Opus encode(into:) and decode(appendingTo:) keep writing into the same storage")
    func opusReuse() throws {
        let encoder = try OpusAudioEncoder(configuration: OpusEncoderConfiguration(channels: 2, bitrate: 48_000))
        let decoder = try OpusAudioDecoder(channels: 2)
        var music = MusicSource(channels: 2)
        var pcm = [Int16](repeating: 0, count: encoder.samplesPerFrame)
        var packet: [UInt8] = []
        packet.reserveCapacity(4000)
        var out: [Int16] = []
        out.reserveCapacity(OpusAudioDecoder.maxSamplesPerChannel * 2)
        let packetBase = baseAddress(packet)
        let outBase = out.withUnsafeBytes { $0.baseAddress }
        for i in 0..<30 {
            music.fill(&pcm)
            try encoder.encode(pcm, into: &packet)
            out.removeAll(keepingCapacity: true)
            #expect(try decoder.decode(i % 7 == 3 ? nil : packet, appendingTo: &out) == 960)
            #expect(baseAddress(packet) == packetBase)
            #expect(out.withUnsafeBytes { $0.baseAddress } == outBase)
        }
    }
}
