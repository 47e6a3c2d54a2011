import Testing
@testable import Codecs

@Suite("Opus encoder and decoder")
struct OpusTests {
    /// Encodes and decodes, returning reference and decoded PCM.
    func roundTrip(_ config: OpusEncoderConfiguration, frames: Int,
                   fill: (inout [Int16]) -> Void) throws -> (AudioQuality.Comparison, OpusAudioEncoder) {
        let encoder = try OpusAudioEncoder(configuration: config)
        let (pcm, packets) = try encodeAudio(encoder, frames: frames, fill: fill)
        let decoder = try OpusAudioDecoder(channels: config.channels)
        var decoded: [Int16] = []
        for p in packets { try decoder.decode(p, appendingTo: &decoded) }
        #expect(decoded.count == pcm.count)
        let cmp = try #require(AudioQuality.compare(reference: pcm, decoded: decoded, channels: config.channels,
                                                    maxDelay: 600))
        return (cmp, encoder)
    }

    @Test("a 440 Hz tone at 64 kbit/s round-trips with SNR above 15 dB")
    func toneRoundTrip() throws {
        var tone = ToneSource(channels: 1)
        let (cmp, encoder) = try roundTrip(OpusEncoderConfiguration(application: .audio, bitrate: 64_000), frames: 50) {
            tone.fill(&$0)
        }
        #expect(cmp.snr > 15, "SNR \(cmp.snr) dB")
        #expect(cmp.correlation > 0.98)
        // A pure tone aligns equally well one period later, so the delay is
        // checked modulo the period (48000 / 440 ≈ 109.1 samples).
        let offset = Double(cmp.delay - encoder.lookahead).truncatingRemainder(dividingBy: 48_000.0 / 440)
        #expect(abs(offset) < 2 || abs(offset) > 107, "delay \(cmp.delay), lookahead \(encoder.lookahead)")
    }

    // SILK (the speech mode) is not waveform-exact: it matches the spectrum
    // and pitch, so the check is a correlation of 0.8, not an SNR.
    @Test("speech-like audio (VoIP, 32 kbit/s) keeps its waveform: correlation above 0.8")
    func speechRoundTrip() throws {
        var speech = SpeechSource(channels: 1)
        let (cmp, encoder) = try roundTrip(OpusEncoderConfiguration(application: .voip, bitrate: 32_000), frames: 100) {
            speech.fill(&$0)
        }
        #expect(cmp.correlation > 0.8, "correlation \(cmp.correlation), SNR \(cmp.snr)")
        #expect(abs(cmp.delay - encoder.lookahead) < 48, "delay \(cmp.delay)")
    }

    @Test("stereo music at 96 kbit/s: correlation above 0.95, SNR above 15 dB, delay = lookahead")
    func musicRoundTrip() throws {
        var music = MusicSource(channels: 2)
        var config = OpusEncoderConfiguration(application: .audio, channels: 2, bitrate: 96_000)
        config.signal = .music
        let (cmp, encoder) = try roundTrip(config, frames: 75) { music.fill(&$0) }
        #expect(cmp.correlation > 0.95, "correlation \(cmp.correlation), SNR \(cmp.snr)")
        #expect(cmp.snr > 15)
        // Decoded audio lags the input by exactly the encoder lookahead
        // (the Ogg pre-skip).
        #expect(cmp.delay == encoder.lookahead, "delay \(cmp.delay), lookahead \(encoder.lookahead)")
    }

    @Test("every frame duration and application encodes and decodes the right length",
          arguments: OpusEncoderConfiguration.FrameDuration.allCases)
    func frameDurations(duration: OpusEncoderConfiguration.FrameDuration) throws {
        for application in [OpusEncoderConfiguration.Application.voip, .audio, .restrictedLowDelay] {
            for channels in [1, 2] {
                let config = OpusEncoderConfiguration(application: application, channels: channels, bitrate: 48_000,
                                                      frameDuration: duration)
                let encoder = try OpusAudioEncoder(configuration: config)
                #expect(encoder.samplesPerChannel == duration.rawValue * 48)
                var music = MusicSource(channels: channels)
                let (_, packets) = try encodeAudio(encoder, frames: 5) { music.fill(&$0) }
                let decoder = try OpusAudioDecoder(channels: channels)
                var out: [Int16] = []
                for p in packets {
                    let n = try decoder.decode(p, appendingTo: &out)
                    #expect(n == duration.rawValue * 48)
                }
                #expect(out.count == 5 * duration.rawValue * 48 * channels)
                #expect(decoder.lastPacketDuration == duration.rawValue * 48)
            }
        }
    }

    @Test("packet-loss concealment fills a lost packet with audio of the right length")
    func concealment() throws {
        var speech = SpeechSource()
        let encoder = try OpusAudioEncoder(configuration: OpusEncoderConfiguration(bitrate: 24_000))
        let (_, packets) = try encodeAudio(encoder, frames: 20) { speech.fill(&$0) }
        let decoder = try OpusAudioDecoder(channels: 1)
        var out: [Int16] = []
        for (i, p) in packets.enumerated() {
            let n = try decoder.decode(i == 10 ? nil : p, appendingTo: &out)
            #expect(n == 960)
        }
        #expect(out.count == 20 * 960)
        let n = try decoder.conceal(samplesPerChannel: 480) { $0.count }
        #expect(n == 480)
        #expect(throws: OpusCodecError.invalidDecodeLength) { try decoder.conceal(samplesPerChannel: 100) { _ in } }
    }

    @Test("in-band FEC rebuilds a lost packet from the next one, closer to the original than PLC")
    func fecRecovery() throws {
        var config = OpusEncoderConfiguration(application: .voip, bitrate: 32_000)
        config.inbandFEC = true
        config.expectedPacketLossPercent = 20
        var speech = SpeechSource()
        let encoder = try OpusAudioEncoder(configuration: config)
        let (_, packets) = try encodeAudio(encoder, frames: 60) { speech.fill(&$0) }

        // Reference: everything received.
        let clean = try OpusAudioDecoder(channels: 1)
        var reference: [Int16] = []
        for p in packets { try clean.decode(p, appendingTo: &reference) }

        var fecScores: [Double] = [], plcScores: [Double] = []
        for lost in stride(from: 12, to: 58, by: 9) {
            let withFEC = try OpusAudioDecoder(channels: 1), withPLC = try OpusAudioDecoder(channels: 1)
            var a: [Int16] = [], b: [Int16] = []
            for (i, p) in packets.enumerated() {
                if i == lost {
                    let n = try withFEC.recover(from: packets[i + 1], samplesPerChannel: 960, appendingTo: &a)
                    #expect(n == 960)
                    try withPLC.decode(nil, appendingTo: &b)
                } else {
                    try withFEC.decode(p, appendingTo: &a)
                    try withPLC.decode(p, appendingTo: &b)
                }
            }
            #expect(a.count == reference.count && b.count == reference.count)
            let segment = (lost * 960)..<((lost + 1) * 960)
            func error(_ x: [Int16]) -> Double {
                segment.reduce(0.0) { $0 + pow2(Double(x[$1]) - Double(reference[$1])) }
            }
            fecScores.append(error(a)); plcScores.append(error(b))
        }
        #expect(fecScores.reduce(0, +) < plcScores.reduce(0, +), "FEC error \(fecScores), PLC error \(plcScores)")
    }

    @Test("DTX sends tiny packets during silence")
    func dtx() throws {
        var config = OpusEncoderConfiguration(application: .voip, bitrate: 24_000)
        config.dtx = true
        let encoder = try OpusAudioEncoder(configuration: config)
        let (_, packets) = try encodeAudio(encoder, frames: 40) { buffer in
            for i in buffer.indices { buffer[i] = 0 }
        }
        // After ~200 ms of silence Opus sends 1–2 byte packets, with an
        // occasional full packet (every 400 ms) to keep comfort noise going.
        let tiny = packets.suffix(20).filter { $0.count <= 2 }.count
        #expect(tiny >= 15, "\(packets.map(\.count))")
        #expect(encoder.isInDTX)
    }

    @Test("bad input yields typed errors")
    func errors() throws {
        #expect(throws: OpusCodecError.invalidConfiguration(.channels)) {
            try OpusAudioEncoder(configuration: OpusEncoderConfiguration(channels: 3))
        }
        #expect(throws: OpusCodecError.invalidConfiguration(.bitrate)) {
            try OpusAudioEncoder(configuration: OpusEncoderConfiguration(bitrate: 10))
        }
        let encoder = try OpusAudioEncoder(configuration: OpusEncoderConfiguration())
        var packet: [UInt8] = []
        #expect(throws: OpusCodecError.wrongFrameSize(expectedSamples: 960, actualSamples: 100)) {
            try encoder.encode([Int16](repeating: 0, count: 100), into: &packet)
        }
        let decoder = try OpusAudioDecoder(channels: 1)
        var out: [Int16] = []
        // TOC code 3 with a frame count of 0 is invalid (RFC 6716 §3.2.5).
        #expect(throws: OpusCodecError.libopus(code: -4)) { try decoder.decode([0x03, 0x00], appendingTo: &out) }
        #expect(throws: OpusCodecError.libopus(code: -4)) { try decoder.decode([], appendingTo: &out) }
        #expect(throws: OpusCodecError.invalidConfiguration(.channels)) { try OpusAudioDecoder(channels: 0) }
    }

    @Test("configuration maps onto opusenc options")
    func opusencMapping() {
        var c = OpusEncoderConfiguration(application: .voip, channels: 1, bitrate: 32_000)
        c.inbandFEC = true; c.dtx = true; c.expectedPacketLossPercent = 10
        let args = c.opusencArguments.joined(separator: " ")
        #expect(args.contains("--bitrate 32.0"))
        #expect(args.contains("--framesize 20"))
        #expect(args.contains("--expect-loss 10"))
        #expect(args.contains("--set-ctl-int 4000=2048"))
        #expect(args.contains("--set-ctl-int 4012=1"))
        #expect(args.contains("--set-ctl-int 4016=1"))
    }
}

func pow2(_ x: Double) -> Double { x * x }
