internal import COpus

/// Opus encoder settings (RFC 6716), at 48 kHz, int16 interleaved input.
/// Each maps onto an `opusenc` (opus-tools) option; `opusencArguments`
/// renders them. Options opusenc lacks go through its generic
/// `--set-ctl-int REQUEST=VALUE` with the libopus request number.
public struct OpusEncoderConfiguration: Sendable, Equatable {
    public enum Application: Int32, Sendable {
        /// OPUS_APPLICATION_VOIP: speech intelligibility first (WebRTC).
        case voip = 2048
        /// OPUS_APPLICATION_AUDIO: fidelity first (music).
        case audio = 2049
        /// OPUS_APPLICATION_RESTRICTED_LOWDELAY: CELT only, lowest delay.
        case restrictedLowDelay = 2051
    }

    public enum FrameDuration: Int, Sendable, CaseIterable {
        case ms10 = 10, ms20 = 20, ms40 = 40, ms60 = 60
        /// Samples per channel at 48 kHz.
        public var samplesPerChannel: Int { rawValue * 48 }
    }

    public enum BitrateMode: Sendable, Equatable {
        /// `--vbr` (OPUS_SET_VBR(1), unconstrained).
        case vbr
        /// `--cvbr` (VBR with OPUS_SET_VBR_CONSTRAINT(1); libopus default).
        case constrainedVBR
        /// `--hard-cbr` (OPUS_SET_VBR(0)).
        case cbr
    }

    public enum Signal: Int32, Sendable {
        /// OPUS_AUTO: let the encoder classify (opusenc default).
        case auto = -1000
        /// `--speech` (OPUS_SIGNAL_VOICE).
        case voice = 3001
        /// `--music` (OPUS_SIGNAL_MUSIC).
        case music = 3002
    }

    /// `--set-ctl-int 4000=<raw>` (OPUS_SET_APPLICATION; opusenc creates
    /// its encoder as `audio`).
    public var application: Application = .voip
    /// 1 or 2. opusenc takes it from the input WAV.
    public var channels: Int = 1
    /// `--bitrate=bitrate/1000` (opusenc takes kbit/s; this is bit/s).
    public var bitrate: Int = 32_000
    /// `--comp`, 0...10.
    public var complexity: Int = 9
    /// `--framesize` (10, 20, 40, 60).
    public var frameDuration: FrameDuration = .ms20
    /// `--set-ctl-int 4012=1` (OPUS_SET_INBAND_FEC): LBRR copies of the
    /// previous frame so a lost packet can be rebuilt from the next one.
    public var inbandFEC: Bool = false
    /// `--set-ctl-int 4016=1` (OPUS_SET_DTX): 1–2 byte packets in silence.
    public var dtx: Bool = false
    /// `--expect-loss`, 0...100: tunes FEC and robustness.
    public var expectedPacketLossPercent: Int = 0
    public var bitrateMode: BitrateMode = .vbr
    public var signal: Signal = .auto

    public init(application: Application = .voip, channels: Int = 1, bitrate: Int = 32_000,
                frameDuration: FrameDuration = .ms20) {
        self.application = application
        self.channels = channels
        self.bitrate = bitrate
        self.frameDuration = frameDuration
    }

    /// The equivalent `opusenc` arguments (without input/output).
    public var opusencArguments: [String] {
        var a = ["--bitrate", "\(Double(bitrate) / 1000)", "--comp", "\(complexity)",
                 "--framesize", "\(frameDuration.rawValue)", "--expect-loss", "\(expectedPacketLossPercent)"]
        switch bitrateMode {
        case .vbr: a.append("--vbr")
        case .constrainedVBR: a.append("--cvbr")
        case .cbr: a.append("--hard-cbr")
        }
        switch signal {
        case .auto: break
        case .voice: a.append("--speech")
        case .music: a.append("--music")
        }
        a += ["--set-ctl-int", "4000=\(application.rawValue)"]
        if inbandFEC { a += ["--set-ctl-int", "4012=1"] }
        if dtx { a += ["--set-ctl-int", "4016=1"] }
        return a
    }

    func validate() throws(OpusCodecError) {
        guard channels == 1 || channels == 2 else { throw .invalidConfiguration(.channels) }
        guard (500...512_000).contains(bitrate) else { throw .invalidConfiguration(.bitrate) }
        guard (0...10).contains(complexity) else { throw .invalidConfiguration(.complexity) }
        guard (0...100).contains(expectedPacketLossPercent) else { throw .invalidConfiguration(.packetLoss) }
    }
}

public enum OpusCodecError: Error, Sendable, Equatable {
    public enum ConfigurationIssue: Sendable, Equatable { case channels, bitrate, complexity, packetLoss }
    case invalidConfiguration(ConfigurationIssue)
    /// The PCM buffer does not hold exactly one frame (samples × channels).
    case wrongFrameSize(expectedSamples: Int, actualSamples: Int)
    /// A frame size the decoder cannot produce (not a multiple of 2.5 ms or
    /// over 120 ms).
    case invalidDecodeLength
    /// libopus returned this error code (OPUS_BAD_ARG = -1,
    /// OPUS_BUFFER_TOO_SMALL = -2, OPUS_INTERNAL_ERROR = -3,
    /// OPUS_INVALID_PACKET = -4, ...).
    case libopus(code: Int32)
}

/// An Opus encoder at 48 kHz. Owns the libopus state (freed in `deinit`)
/// and one packet buffer reused for every frame.
public final class OpusAudioEncoder {
    public let configuration: OpusEncoderConfiguration
    /// Encoder delay in samples per channel at 48 kHz: the Ogg Opus
    /// pre-skip (RFC 7845 §4.2) and the offset to align decoded audio.
    public let lookahead: Int
    private let encoder: OpaquePointer
    private let packet: UnsafeMutableRawBufferPointer

    /// Largest packet libopus can produce for up to 120 ms (RFC 6716 §3.2.5
    /// caps a frame at 1275 bytes; up to 6 frames plus framing).
    static let maxPacketBytes = 1275 * 6 + 7

    public init(configuration: OpusEncoderConfiguration) throws(OpusCodecError) {
        try configuration.validate()
        var error: Int32 = 0
        guard let encoder = opus_encoder_create(48_000, Int32(configuration.channels),
                                                configuration.application.rawValue, &error),
              error == OPUS_OK
        else { throw .libopus(code: error) }
        let c = configuration
        let results: [Int32] = [
            shim_opus_set_bitrate(encoder, Int32(c.bitrate)),
            shim_opus_set_complexity(encoder, Int32(c.complexity)),
            shim_opus_set_inband_fec(encoder, c.inbandFEC ? 1 : 0),
            shim_opus_set_dtx(encoder, c.dtx ? 1 : 0),
            shim_opus_set_packet_loss_perc(encoder, Int32(c.expectedPacketLossPercent)),
            shim_opus_set_vbr(encoder, c.bitrateMode == .cbr ? 0 : 1),
            shim_opus_set_vbr_constraint(encoder, c.bitrateMode == .constrainedVBR ? 1 : 0),
            shim_opus_set_signal(encoder, c.signal.rawValue),
        ]
        var lookahead: Int32 = 0
        let lookaheadStatus = shim_opus_get_lookahead(encoder, &lookahead)
        if let failed = (results + [lookaheadStatus]).first(where: { $0 != OPUS_OK }) {
            opus_encoder_destroy(encoder)
            throw .libopus(code: failed)
        }
        self.configuration = configuration
        self.encoder = encoder
        self.lookahead = Int(lookahead)
        self.packet = .allocate(byteCount: Self.maxPacketBytes, alignment: 8)
    }

    deinit {
        opus_encoder_destroy(encoder)
        packet.deallocate()
    }

    /// Samples per channel in one frame.
    public var samplesPerChannel: Int { configuration.frameDuration.samplesPerChannel }
    /// Interleaved samples one `encode` call takes.
    public var samplesPerFrame: Int { samplesPerChannel * configuration.channels }

    /// Changes the bitrate (bit/s) from the next frame on.
    public func setBitrate(_ bitsPerSecond: Int) throws(OpusCodecError) {
        guard (500...512_000).contains(bitsPerSecond) else { throw .invalidConfiguration(.bitrate) }
        let status = shim_opus_set_bitrate(encoder, Int32(bitsPerSecond))
        guard status == OPUS_OK else { throw .libopus(code: status) }
    }

    /// Changes the expected loss (tunes FEC) from the next frame on.
    public func setExpectedPacketLoss(percent: Int) throws(OpusCodecError) {
        guard (0...100).contains(percent) else { throw .invalidConfiguration(.packetLoss) }
        let status = shim_opus_set_packet_loss_perc(encoder, Int32(percent))
        guard status == OPUS_OK else { throw .libopus(code: status) }
    }

    /// Encodes exactly one frame of interleaved int16 PCM and calls `body`
    /// with the packet (valid only inside `body`). With DTX, a packet of 1–2
    /// bytes means "silence, need not be sent" (RFC 6716 §2.1.9).
    public func encode<R>(_ pcm: UnsafeBufferPointer<Int16>,
                          _ body: (UnsafeRawBufferPointer) -> R) throws(OpusCodecError) -> R {
        guard pcm.count == samplesPerFrame, let base = pcm.baseAddress else {
            throw .wrongFrameSize(expectedSamples: samplesPerFrame, actualSamples: pcm.count)
        }
        let n = opus_encode(encoder, base, Int32(samplesPerChannel),
                            packet.baseAddress!.assumingMemoryBound(to: UInt8.self), Int32(packet.count))
        guard n > 0 else { throw .libopus(code: n) }
        return body(UnsafeRawBufferPointer(rebasing: packet[0..<Int(n)]))
    }

    /// Encodes one frame into `output` (contents replaced, capacity reused)
    /// and returns the packet size.
    @discardableResult
    public func encode(_ pcm: [Int16], into output: inout [UInt8]) throws(OpusCodecError) -> Int {
        output.removeAll(keepingCapacity: true)
        let result: Result<Int, OpusCodecError> = pcm.withUnsafeBufferPointer { samples in
            do throws(OpusCodecError) {
                return .success(try encode(samples) { bytes in output.append(contentsOf: bytes); return bytes.count })
            } catch { return .failure(error) }
        }
        return try result.get()
    }

    /// Whether the encoder is currently in DTX (sending silence frames).
    public var isInDTX: Bool {
        var on: Int32 = 0
        _ = shim_opus_get_in_dtx(encoder, &on)
        return on != 0
    }
}

/// An Opus decoder at 48 kHz, int16 interleaved output, with packet-loss
/// concealment and in-band FEC recovery (RFC 6716 §4.4, §2.1.7).
public final class OpusAudioDecoder {
    public let channels: Int
    private let decoder: OpaquePointer
    /// 120 ms at 48 kHz per channel: the longest a packet can decode to.
    public static let maxSamplesPerChannel = 5760
    private let pcm: UnsafeMutableBufferPointer<Int16>

    public init(channels: Int) throws(OpusCodecError) {
        guard channels == 1 || channels == 2 else { throw .invalidConfiguration(.channels) }
        var error: Int32 = 0
        guard let decoder = opus_decoder_create(48_000, Int32(channels), &error), error == OPUS_OK else {
            throw .libopus(code: error)
        }
        self.channels = channels
        self.decoder = decoder
        self.pcm = .allocate(capacity: Self.maxSamplesPerChannel * channels)
        pcm.initialize(repeating: 0)
    }

    deinit {
        opus_decoder_destroy(decoder)
        pcm.deallocate()
    }

    /// Samples per channel of the last decoded packet (what PLC or FEC
    /// should produce for a packet lost after it).
    public var lastPacketDuration: Int {
        var n: Int32 = 0
        _ = shim_opus_decoder_get_last_packet_duration(decoder, &n)
        return Int(n)
    }

    /// Decodes a packet and calls `body` with the interleaved PCM (valid
    /// only inside `body`). Returns what `body` returns.
    public func decode<R>(_ packet: UnsafeRawBufferPointer,
                          _ body: (UnsafeBufferPointer<Int16>) -> R) throws(OpusCodecError) -> R {
        guard packet.count > 0, let base = packet.baseAddress else { throw .libopus(code: OPUS_INVALID_PACKET) }
        return try run(base.assumingMemoryBound(to: UInt8.self), Int32(packet.count),
                       frameSize: Self.maxSamplesPerChannel, fec: false, body)
    }

    /// Packet-loss concealment: synthesizes `samplesPerChannel` samples
    /// (a multiple of 2.5 ms, i.e. of 120) for a lost packet.
    public func conceal<R>(samplesPerChannel: Int,
                           _ body: (UnsafeBufferPointer<Int16>) -> R) throws(OpusCodecError) -> R {
        guard samplesPerChannel > 0, samplesPerChannel % 120 == 0, samplesPerChannel <= Self.maxSamplesPerChannel
        else { throw .invalidDecodeLength }
        return try run(nil, 0, frameSize: samplesPerChannel, fec: false, body)
    }

    /// Rebuilds the lost packet *before* `nextPacket` from the FEC (LBRR)
    /// data carried in `nextPacket` (decode_fec = 1). `samplesPerChannel`
    /// is the lost packet's duration. If `nextPacket` has no FEC data,
    /// libopus falls back to concealment. Decode `nextPacket` normally
    /// afterwards.
    public func recover<R>(from nextPacket: UnsafeRawBufferPointer, samplesPerChannel: Int,
                           _ body: (UnsafeBufferPointer<Int16>) -> R) throws(OpusCodecError) -> R {
        guard samplesPerChannel > 0, samplesPerChannel % 120 == 0, samplesPerChannel <= Self.maxSamplesPerChannel
        else { throw .invalidDecodeLength }
        guard nextPacket.count > 0, let base = nextPacket.baseAddress else { throw .libopus(code: OPUS_INVALID_PACKET) }
        return try run(base.assumingMemoryBound(to: UInt8.self), Int32(nextPacket.count),
                       frameSize: samplesPerChannel, fec: true, body)
    }

    private func run<R>(_ data: UnsafePointer<UInt8>?, _ length: Int32, frameSize: Int, fec: Bool,
                        _ body: (UnsafeBufferPointer<Int16>) -> R) throws(OpusCodecError) -> R {
        let n = opus_decode(decoder, data, length, pcm.baseAddress!, Int32(frameSize), fec ? 1 : 0)
        guard n >= 0 else { throw .libopus(code: n) }
        return body(UnsafeBufferPointer(rebasing: pcm[0..<(Int(n) * channels)]))
    }

    /// Decodes `packet` (or conceals a loss when `packet` is nil, using the
    /// last packet's duration) and appends the PCM to `output`. Returns
    /// samples per channel produced.
    @discardableResult
    public func decode(_ packet: [UInt8]?, appendingTo output: inout [Int16]) throws(OpusCodecError) -> Int {
        let channels = self.channels
        guard let packet else {
            let duration = lastPacketDuration > 0 ? lastPacketDuration : 960
            return try conceal(samplesPerChannel: duration) { output.append(contentsOf: $0); return $0.count / channels }
        }
        let result: Result<Int, OpusCodecError> = packet.withUnsafeBytes { raw in
            do throws(OpusCodecError) {
                return .success(try decode(raw) { output.append(contentsOf: $0); return $0.count / channels })
            } catch { return .failure(error) }
        }
        return try result.get()
    }

    /// FEC recovery of the packet before `nextPacket`, appended to `output`.
    @discardableResult
    public func recover(from nextPacket: [UInt8], samplesPerChannel: Int,
                        appendingTo output: inout [Int16]) throws(OpusCodecError) -> Int {
        let channels = self.channels
        let result: Result<Int, OpusCodecError> = nextPacket.withUnsafeBytes { raw in
            do throws(OpusCodecError) {
                return .success(try recover(from: raw, samplesPerChannel: samplesPerChannel) {
                    output.append(contentsOf: $0); return $0.count / channels
                })
            } catch { return .failure(error) }
        }
        return try result.get()
    }

    /// Forgets all state (e.g. on a stream switch).
    public func reset() { _ = shim_opus_decoder_reset(decoder) }
}
