import Codecs
import RTCBase
import RTP

/// One RTP packet on the simulated link (header fields + payload).
struct LinkPacket: Sendable {
    var sequenceNumber: UInt16
    var timestamp: UInt32
    var marker: Bool
    var payload: [UInt8]
}

/// Result of one VP8 loss round trip.
public struct VideoLossResult: Sendable, Equatable {
    public var lossRate: Double
    /// Mean per-frame PSNR of what the receiver shows at each frame time
    /// (a frozen picture is compared with the source frame of that time).
    public var psnrY: Double
    public var psnrOverall: Double
    public var framesDecoded: Int
    /// Frame times at which no new picture was shown.
    public var framesFrozen: Int
    public var keyframeRequests: Int
    public var keyframesSent: Int
    /// Frames decoded after the first keyframe request: recovery worked.
    public var framesDecodedAfterFirstRequest: Int
    public var packetsSent: Int
    public var packetsLost: Int
}

/// Result of one Opus loss round trip: the same arrivals played out twice,
/// once using in-band FEC for a lost packet when the next one arrived, once
/// with concealment (PLC) only.
public struct AudioLossResult: Sendable, Equatable {
    public var lossRate: Double
    public var snrFEC: Double
    public var snrPLC: Double
    public var packetsSent: Int
    public var packetsLost: Int
    /// Lost packets rebuilt from the next packet's FEC data.
    public var recoveredByFEC: Int
}

/// encode → packetize (RFC 7741 / RFC 7587 payloads) → lossy link →
/// depacketize → decode, with the receiver's repair loop.
public enum LossRoundTrip {
    /// VP8 with keyframe requests: whenever the receiver cannot decode
    /// (a frame dropped by the depacketizer, or the decoder asks for a
    /// keyframe), it asks once (like RTCP PLI, RFC 4585 §6.3.1) and the
    /// sender forces a keyframe `keyframeRequestDelayFrames` frames later
    /// (the round trip). Another request is made only once that keyframe
    /// has been sent, so a lost keyframe is asked for again.
    public static func video(frames: [I420Frame], configuration: VP8EncoderConfiguration, lossRate: Double,
                             reorderRate: Double, seed: UInt64, keyframeRequestDelayFrames: Int, mtu: Int = 1200)
        throws(CodecBenchError) -> VideoLossResult {
        guard let first = frames.first else { throw .input("no frames") }
        let encoder: VP8Encoder, decoder: VP8Decoder
        do { encoder = try VP8Encoder(configuration: configuration) } catch { throw .video(error) }
        do { decoder = try VP8Decoder() } catch { throw .videoDecode(error) }
        var packetizer = VP8Packetizer()
        var depacketizer = VP8Depacketizer()
        var link = SimulatedLink<LinkPacket>(lossRate: lossRate, reorderRate: reorderRate, seed: seed)
        let rtpHeaderBytes = 12
        let ticksPerFrame = 90_000 / configuration.frameRate

        var shown = I420Frame(width: first.width, height: first.height)
        var haveShown = false
        var keyframeDue: Int?
        var requestOutstanding = false
        var result = VideoLossResult(lossRate: lossRate, psnrY: 0, psnrOverall: 0, framesDecoded: 0, framesFrozen: 0,
                                     keyframeRequests: 0, keyframesSent: 0, framesDecodedAfterFirstRequest: 0,
                                     packetsSent: 0, packetsLost: 0)
        var sequence: UInt16 = 0
        var encoded: [UInt8] = []
        encoded.reserveCapacity(1 << 20)
        var ys: [Double] = [], overall: [Double] = []

        func requestKeyframe(at t: Int) {
            guard !requestOutstanding else { return }
            requestOutstanding = true
            keyframeDue = t + keyframeRequestDelayFrames
            result.keyframeRequests += 1
        }

        for (t, frame) in frames.enumerated() {
            let force = t == 0 || (keyframeDue.map { t >= $0 } ?? false)
            let info: EncodedFrameInfo?
            do { info = try encoder.encode(frame, pts: Int64(t * ticksPerFrame), forceKeyframe: force, into: &encoded) }
            catch { throw .video(error) }
            if force, t > 0 {
                keyframeDue = nil
                requestOutstanding = false
                result.keyframesSent += 1
            }

            var arrived: [LinkPacket] = []
            if info != nil {
                let timestamp = UInt32(truncatingIfNeeded: t * ticksPerFrame)
                var packets: [LinkPacket] = []
                let failure: VP8Error? = encoded.withUnsafeBytes { raw in
                    do throws(VP8Error) {
                        try packetizer.packetize(frame: raw, maxPayloadSize: mtu - rtpHeaderBytes) { d, data, last in
                            packets.append(LinkPacket(sequenceNumber: sequence, timestamp: timestamp, marker: last,
                                                      payload: Array(d) + Array(data)))
                            sequence &+= 1
                        }
                    } catch { return error }
                    return nil
                }
                if let failure { throw .input("packetize: \(failure)") }
                for p in packets { arrived += link.send(p) }
            }
            if t == frames.count - 1 { arrived += link.flush() }
            for p in arrived {
                p.payload.withUnsafeBytes { raw in
                    // A malformed descriptor cannot come from our packetizer;
                    // were it to, the packet simply counts as lost.
                    _ = try? depacketizer.push(sequenceNumber: SequenceNumber(p.sequenceNumber), timestamp: p.timestamp,
                                           marker: p.marker, payload: raw)
                }
            }
            if t == frames.count - 1 { depacketizer.flush() }

            var decodedNow = false
            while let event = depacketizer.pollEvent() {
                switch event {
                case .frame(let f):
                    let decoded: Bool = f.data.withUnsafeBytes { raw in
                        do throws(VP8DecoderError) {
                            _ = try decoder.decode(raw) { view in
                                shown.copy(from: view)
                                decodedNow = true
                                haveShown = true
                            }
                            return true
                        } catch { return false }
                    }
                    if decoded {
                        result.framesDecoded += 1
                        if result.keyframeRequests > 0 { result.framesDecodedAfterFirstRequest += 1 }
                    } else {
                        // Undecodable (references lost): ask for a keyframe.
                        requestKeyframe(at: t)
                    }
                case .frameDropped, .packetsLost:
                    decoder.frameLost()
                    requestKeyframe(at: t)
                }
            }
            if !decodedNow { result.framesFrozen += 1 }
            let black = haveShown ? nil : I420Frame(width: first.width, height: first.height)
            let picture = black ?? shown
            if let p = VideoQuality.psnr(picture, frame) {
                ys.append(VideoStatistics.capped(p.y))
                overall.append(VideoStatistics.capped(p.overall))
            }
        }
        result.packetsSent = link.sent
        result.packetsLost = link.dropped
        result.psnrY = VideoStatistics.mean(ys) ?? 0
        result.psnrOverall = VideoStatistics.mean(overall) ?? 0
        return result
    }

    /// Opus with in-band FEC (the encoder is told the expected loss so it
    /// spends bits on LBRR, RFC 6716 §2.1.7) and PLC. The receiver is a
    /// jitter buffer deep enough for the link's reordering: it plays packet
    /// n if it arrived; else, in the FEC playout, rebuilds it from packet
    /// n+1's FEC data if that arrived; else conceals.
    public static func audio(pcm: [Int16], configuration: OpusEncoderConfiguration, lossRate: Double,
                             reorderRate: Double, seed: UInt64) throws(CodecBenchError) -> AudioLossResult {
        var config = configuration
        config.inbandFEC = true
        config.expectedPacketLossPercent = max(config.expectedPacketLossPercent, Int((lossRate * 100).rounded(.up)))
        let (stream, _) = try AudioBench.encode(pcm, configuration: config)

        var packetizer = OpusPacketizer()
        var link = SimulatedLink<LinkPacket>(lossRate: lossRate, reorderRate: reorderRate, seed: seed)
        var received = [ArraySlice<UInt8>?](repeating: nil, count: stream.packetCount)
        for i in 0..<stream.packetCount {
            let slice = stream.packet(i)
            let rtp: (timestamp: UInt32, marker: Bool)? = slice.withUnsafeBytes { raw in try? packetizer.packetize(raw) }
            guard let rtp else { throw .input("opus packetize: invalid packet \(i)") }
            let packet = LinkPacket(sequenceNumber: UInt16(truncatingIfNeeded: i), timestamp: rtp.timestamp,
                                    marker: rtp.marker, payload: Array(slice))
            var arrived = link.send(packet)
            if i == stream.packetCount - 1 { arrived += link.flush() }
            for p in arrived {
                // Receive side: validate like OpusDepacketizer, then file
                // by sequence number (the index, no wrap in one run).
                let valid = p.payload.withUnsafeBytes { (try? OpusDepacketizer.depacketize($0)) != nil }
                if valid { received[Int(p.sequenceNumber)] = p.payload[...] }
            }
        }

        let channels = config.channels
        let frameSamples = stream.samplesPerPacket
        func playout(useFEC: Bool) throws(CodecBenchError) -> ([Int16], Int) {
            let decoder: OpusAudioDecoder
            do { decoder = try OpusAudioDecoder(channels: channels) } catch { throw .audio(error) }
            var out: [Int16] = []
            out.reserveCapacity(stream.packetCount * frameSamples * channels)
            var recovered = 0
            for i in 0..<stream.packetCount {
                do {
                    if let p = received[i] {
                        try decoder.decode(Array(p), appendingTo: &out)
                    } else if useFEC, i + 1 < stream.packetCount, let next = received[i + 1] {
                        try decoder.recover(from: Array(next), samplesPerChannel: frameSamples, appendingTo: &out)
                        recovered += 1
                    } else {
                        try decoder.conceal(samplesPerChannel: frameSamples) { out.append(contentsOf: $0) }
                    }
                } catch { throw .audio(error) }
            }
            return (out, recovered)
        }
        let (withFEC, recovered) = try playout(useFEC: true)
        let (plcOnly, _) = try playout(useFEC: false)
        return AudioLossResult(
            lossRate: lossRate,
            snrFEC: AudioBench.snr(reference: pcm, decoded: withFEC, channels: channels, lookahead: stream.lookahead),
            snrPLC: AudioBench.snr(reference: pcm, decoded: plcOnly, channels: channels, lookahead: stream.lookahead),
            packetsSent: link.sent, packetsLost: link.dropped, recoveredByFEC: recovered)
    }
}
