import Codecs

/// An encoded Opus stream: packets in one byte arena.
public struct EncodedAudio: Sendable {
    public var bytes: [UInt8] = []
    public var packetRanges: [Range<Int>] = []
    public var samplesPerPacket = 960
    public var lookahead = 0

    public var packetCount: Int { packetRanges.count }
    public var durationSeconds: Double { Double(packetCount * samplesPerPacket) / 48_000 }
    public var kbps: Double { durationSeconds > 0 ? Double(bytes.count * 8) / durationSeconds / 1000 : 0 }

    public func packet(_ i: Int) -> ArraySlice<UInt8> { bytes[packetRanges[i]] }
}

/// Parley's side of the Opus measurements.
public enum AudioBench {
    /// Trims interleaved audio to whole frames.
    static func frameCount(samples: Int, channels: Int, samplesPerChannel: Int) -> Int {
        samples / (channels * samplesPerChannel)
    }

    /// Encodes PCM held in memory, timing only the encode calls (and the
    /// copy of each packet into the arena).
    public static func encode(_ pcm: [Int16], configuration: OpusEncoderConfiguration)
        throws(CodecBenchError) -> (EncodedAudio, Elapsed) {
        let encoder: OpusAudioEncoder
        do { encoder = try OpusAudioEncoder(configuration: configuration) } catch { throw .audio(error) }
        let step = encoder.samplesPerFrame
        let count = pcm.count / step
        var out = EncodedAudio()
        out.samplesPerPacket = encoder.samplesPerChannel
        out.lookahead = encoder.lookahead
        out.bytes.reserveCapacity(count * 1276)
        out.packetRanges.reserveCapacity(count)
        let (_, elapsed) = try Clock.measure { () throws(CodecBenchError) in
            let failure: OpusCodecError? = pcm.withUnsafeBufferPointer { all in
                for i in 0..<count {
                    do throws(OpusCodecError) {
                        try encoder.encode(UnsafeBufferPointer(rebasing: all[(i * step)..<((i + 1) * step)])) { packet in
                            let start = out.bytes.count
                            out.bytes.append(contentsOf: packet)
                            out.packetRanges.append(start..<out.bytes.count)
                        }
                    } catch { return error }
                }
                return nil
            }
            if let failure { throw .audio(failure) }
        }
        return (out, elapsed)
    }

    /// Decodes every packet, timing only the decode calls (PCM not copied).
    public static func decode(_ stream: EncodedAudio, channels: Int) throws(CodecBenchError) -> Elapsed {
        let decoder: OpusAudioDecoder
        do { decoder = try OpusAudioDecoder(channels: channels) } catch { throw .audio(error) }
        let (_, elapsed) = try Clock.measure { () throws(CodecBenchError) in
            let failure: OpusCodecError? = stream.bytes.withUnsafeBytes { raw in
                for range in stream.packetRanges {
                    do throws(OpusCodecError) { _ = try decoder.decode(UnsafeRawBufferPointer(rebasing: raw[range])) { $0.count } }
                    catch { return error }
                }
                return nil
            }
            if let failure { throw .audio(failure) }
        }
        return elapsed
    }

    /// Decodes the stream to PCM (not timed).
    public static func decodeAll(_ stream: EncodedAudio, channels: Int) throws(CodecBenchError) -> [Int16] {
        let decoder: OpusAudioDecoder
        do { decoder = try OpusAudioDecoder(channels: channels) } catch { throw .audio(error) }
        var pcm: [Int16] = []
        pcm.reserveCapacity(stream.packetCount * stream.samplesPerPacket * channels)
        for i in 0..<stream.packetCount {
            do { try decoder.decode(Array(stream.packet(i)), appendingTo: &pcm) } catch { throw .audio(error) }
        }
        return pcm
    }

    /// SNR of decoded audio against the reference, after finding the codec
    /// delay. The decoder's output lags by the encoder lookahead (minus the
    /// pre-skip a file decoder already trimmed), so the search covers the
    /// lookahead plus 10 ms, over the first 0.2 s.
    public static func snr(reference: [Int16], decoded: [Int16], channels: Int, lookahead: Int) -> Double {
        AudioQuality.compare(reference: reference, decoded: decoded, channels: channels,
                             maxDelay: lookahead + 480, searchWindow: 9600)?.snr ?? -.infinity
    }

    /// Parley's file→file encode, the counterpart of one opusenc run: read
    /// and parse the WAV file, encode, write Ogg Opus.
    public static func encodeFile(input: String, output: String, configuration: OpusEncoderConfiguration)
        throws(CodecBenchError) -> Elapsed {
        let (_, elapsed) = try Clock.measure { () throws(CodecBenchError) in
            do {
                let wav = try WAVAudio(parsing: try MediaFile.readAll(path: input))
                let encoder = try OpusAudioEncoder(configuration: configuration)
                let writer = try OggOpusFileWriter(
                    path: output, head: OpusHead(channels: configuration.channels, preSkip: encoder.lookahead))
                let step = encoder.samplesPerFrame
                let count = wav.samples.count / step
                var writeError: OggOpusFileError?
                let failure: OpusCodecError? = wav.samples.withUnsafeBufferPointer { all in
                    for i in 0..<count {
                        do throws(OpusCodecError) {
                            try encoder.encode(UnsafeBufferPointer(rebasing: all[(i * step)..<((i + 1) * step)])) { packet in
                                do throws(OggOpusFileError) {
                                    try writer.write(packet: packet, samples: encoder.samplesPerChannel)
                                } catch { writeError = error }
                            }
                        } catch { return error }
                        if writeError != nil { break }
                    }
                    return nil
                }
                if let failure { throw failure }
                if let writeError { throw writeError }
                try writer.finish(originalSampleCount: count * encoder.samplesPerChannel)
            } catch let e as OpusCodecError { throw .audio(e) }
            catch let e as FileIOError { throw .file(e) }
            catch { throw .input("\(input): \(error)") }
        }
        return elapsed
    }

    /// Parley's file→file decode, the counterpart of one opusdec run: read
    /// and parse the Ogg Opus file, decode, write WAV.
    public static func decodeFile(input: String, output: String) throws(CodecBenchError) -> Elapsed {
        let (_, elapsed) = try Clock.measure { () throws(CodecBenchError) in
            do {
                let stream = try OggOpusStream(parsing: try MediaFile.readAll(path: input))
                let decoder = try OpusAudioDecoder(channels: stream.head.channels)
                let writer = try WAVFileWriter(path: output, format: WAVFormat(channels: stream.head.channels))
                var writeError: FileIOError?
                for packet in stream.packets {
                    let failure: OpusCodecError? = packet.bytes.withUnsafeBytes { raw in
                        do throws(OpusCodecError) {
                            try decoder.decode(raw) { pcm in
                                do throws(FileIOError) { try writer.write(pcm) } catch { writeError = error }
                            }
                        } catch { return error }
                        return nil
                    }
                    if let failure { throw failure }
                    if let writeError { throw writeError }
                }
                try writer.finish()
            } catch let e as OpusCodecError { throw .audio(e) }
            catch let e as FileIOError { throw .file(e) }
            catch { throw .input("\(input): \(error)") }
        }
        return elapsed
    }
}

/// opusenc / opusdec runs. Neither prints a usable speed figure (opusenc's
/// "Runtime" is whole seconds), so the child's rusage CPU time and wall
/// clock are what we have.
public enum OpusTools {
    static func encode(input: String, output: String, configuration: OpusEncoderConfiguration,
                       workDirectory: String) throws(CodecBenchError) -> Elapsed {
        do { return try Tool.run("opusenc", ["--quiet"] + configuration.opusencArguments + [input, output],
                                 workDirectory: workDirectory).elapsed } catch { throw .tool(error) }
    }

    /// `--no-dither`: Parley writes the decoder's int16 output as is, so
    /// the tool should not add dither noise (or spend time on it).
    static func decode(input: String, output: String, workDirectory: String) throws(CodecBenchError) -> Elapsed {
        do { return try Tool.run("opusdec", ["--quiet", "--no-dither", input, output],
                                 workDirectory: workDirectory).elapsed } catch { throw .tool(error) }
    }
}
