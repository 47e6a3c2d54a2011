import Testing
@testable import Codecs

@Suite("VP8 encoder and decoder")
struct VP8Tests {
    @Test("320x240 at 500 kbps round-trips with luma PSNR above 30 dB")
    func roundTripPSNR() throws {
        let frames = cameraFrames(width: 320, height: 240, count: 30)
        let encoder = try VP8Encoder(configuration: .camera(width: 320, height: 240, targetBitrate: 500))
        let encoded = try encodeAll(encoder, frames)
        #expect(encoded.count == frames.count)
        #expect(encoded.first?.info.isKeyframe == true)
        #expect(encoded.dropFirst().allSatisfy { !$0.info.isKeyframe })

        let decoder = try VP8Decoder()
        var decoded = I420Frame(width: 320, height: 240)
        var psnrY: [Double] = [], psnrAll: [Double] = []
        for (i, e) in encoded.enumerated() {
            #expect(try decoder.decode(e.bytes, into: &decoded))
            let p = try #require(VideoQuality.psnr(frames[i], decoded))
            psnrY.append(p.y); psnrAll.append(p.overall)
        }
        let meanY = psnrY.reduce(0, +) / Double(psnrY.count)
        let meanAll = psnrAll.reduce(0, +) / Double(psnrAll.count)
        #expect(meanY > 30, "mean luma PSNR \(meanY) dB")
        #expect(meanAll > 30, "mean overall PSNR \(meanAll) dB")
        #expect(psnrY.min()! > 25, "worst frame \(psnrY.min()!) dB")
        // Rate control lands near the target over one second at 30 fps.
        let kbps = Double(encoded.reduce(0) { $0 + $1.bytes.count } * 8) / 1000
        #expect(kbps > 250 && kbps < 900, "\(kbps) kbit in 1 s")
    }

    @Test("temporal layer ids follow the WebRTC patterns", arguments: TemporalLayering.allCases)
    func temporalLayerPattern(layering: TemporalLayering) throws {
        var config = VP8EncoderConfiguration(width: 160, height: 120, targetBitrate: 300)
        config.temporalLayers = layering
        let encoder = try VP8Encoder(configuration: config)
        let encoded = try encodeAll(encoder, cameraFrames(width: 160, height: 120, count: 12))
        let ids = encoded.map(\.info.temporalLayerID)
        let expected = (0..<12).map { layering.pattern[$0 % layering.pattern.count] }
        #expect(ids == expected)
        if layering == .three { #expect(Array(ids.prefix(4)) == [0, 2, 1, 2]) }
        // Base-layer frames other than the keyframe are not layer syncs;
        // the first TL1/TL2 frames after the keyframe are (they can only
        // reference the keyframe); later ones reference their own layer.
        let syncs = encoded.map(\.info.isLayerSync)
        #expect(syncs[0] == true)
        if layering == .three {
            #expect(Array(syncs.prefix(8)) == [true, true, true, false, false, false, false, false])
        } else if layering == .two {
            #expect(Array(syncs.prefix(4)) == [true, true, false, false])
        }
        // Only top-layer frames are droppable by the encoder's own account.
        if layering != .single {
            for e in encoded.dropFirst() where e.info.temporalLayerID < layering.rawValue - 1 {
                #expect(!e.info.isDroppable)
            }
        }
    }

    @Test("dropping upper temporal layers leaves a decodable stream")
    func droppingLayersDecodes() throws {
        var config = VP8EncoderConfiguration(width: 160, height: 120, targetBitrate: 400)
        config.temporalLayers = .three
        let frames = cameraFrames(width: 160, height: 120, count: 24)
        let encoder = try VP8Encoder(configuration: config)
        let encoded = try encodeAll(encoder, frames)
        for maxLayer in 0...2 {
            let decoder = try VP8Decoder()
            var out = I420Frame(width: 160, height: 120)
            var worst = Double.infinity
            for (i, e) in encoded.enumerated() where e.info.temporalLayerID <= maxLayer {
                #expect(try decoder.decode(e.bytes, into: &out))
                worst = min(worst, try #require(VideoQuality.psnr(frames[i], out)).y)
            }
            #expect(worst > 24, "TL0...\(maxLayer): worst luma PSNR \(worst)")
        }
    }

    @Test("periodic layer sync frames reference only the base layer")
    func layerSyncInterval() throws {
        var config = VP8EncoderConfiguration(width: 160, height: 120, targetBitrate: 300)
        config.temporalLayers = .two
        config.layerSyncInterval = 3
        let frames = cameraFrames(width: 160, height: 120, count: 20)
        let encoded = try encodeAll(try VP8Encoder(configuration: config), frames)
        let tl1 = encoded.filter { $0.info.temporalLayerID == 1 }
        // After 3 non-sync TL1 frames the 4th is a sync: pattern S N N N S N N N ...
        #expect(tl1.map(\.info.isLayerSync) == [true, false, false, false, true, false, false, false, true, false])
        // A receiver that joins TL1 at a later sync frame decodes fine: feed
        // TL0 only, then everything from the second TL1 sync on.
        let switchIndex = try #require(encoded.indices.filter {
            encoded[$0].info.temporalLayerID == 1 && encoded[$0].info.isLayerSync
        }.dropFirst().first)
        let decoder = try VP8Decoder()
        var out = I420Frame(width: 160, height: 120)
        for (i, e) in encoded.enumerated() where e.info.temporalLayerID == 0 || i >= switchIndex {
            try decoder.decode(e.bytes, into: &out)
            if i >= switchIndex { #expect(try #require(VideoQuality.psnr(frames[i], out)).y > 24) }
        }
    }

    @Test("keyframe on demand, and with temporal layers the pattern restarts")
    func keyframeOnDemand() throws {
        let frames = cameraFrames(width: 160, height: 120, count: 12)
        let plain = try encodeAll(try VP8Encoder(configuration: .camera(width: 160, height: 120, targetBitrate: 300)),
                                  frames, keyframeAt: [5, 9])
        #expect(plain.indices.filter { plain[$0].info.isKeyframe } == [0, 5, 9])

        var config = VP8EncoderConfiguration(width: 160, height: 120, targetBitrate: 300)
        config.temporalLayers = .three
        let layered = try encodeAll(try VP8Encoder(configuration: config), frames, keyframeAt: [6])
        #expect(layered.indices.filter { layered[$0].info.isKeyframe } == [0, 6])
        #expect(layered.map(\.info.temporalLayerID) == [0, 2, 1, 2, 0, 2, 0, 2, 1, 2, 0, 2])

        // The forceKeyframe parameter does the same for one call.
        let encoder = try VP8Encoder(configuration: .camera(width: 160, height: 120, targetBitrate: 300))
        var buffer: [UInt8] = []
        _ = try encoder.encode(frames[0], pts: 0, into: &buffer)
        let second = try #require(try encoder.encode(frames[1], pts: 3000, forceKeyframe: true, into: &buffer))
        #expect(second.isKeyframe && second.byteCount == buffer.count)
        #expect(try VP8FrameHeader(parsing: buffer).isKeyframe)
    }

    @Test("lowering the target bitrate shrinks the frames")
    func bitrateChange() throws {
        let frames = cameraFrames(width: 320, height: 240, count: 50)
        let encoder = try VP8Encoder(configuration: .camera(width: 320, height: 240, targetBitrate: 1200))
        let encoded = try encodeAll(encoder, frames, bitrateChange: (at: 25, kbps: 200))
        #expect(encoder.configuration.targetBitrate == 200)
        func meanSize(_ r: Range<Int>) -> Double { Double(encoded[r].reduce(0) { $0 + $1.bytes.count }) / Double(r.count) }
        let before = meanSize(10..<25), after = meanSize(38..<50)
        #expect(after < before * 0.5, "mean frame size \(before) → \(after) bytes")
        #expect(throws: VP8EncoderError.invalidConfiguration(.targetBitrate)) { try encoder.setTargetBitrate(0) }
    }

    @Test("screen-share settings encode screen content compactly and sharply")
    func screenShare() throws {
        var source = ScreenSource(width: 320, height: 240)
        var frames: [I420Frame] = []
        for _ in 0..<12 { var f = I420Frame(width: 320, height: 240); source.nextFrame(into: &f); frames.append(f) }
        var config = VP8EncoderConfiguration.screenShare(width: 320, height: 240, targetBitrate: 400)
        config.tokenPartitionsLog2 = 2
        config.threads = 2
        let encoded = try encodeAll(try VP8Encoder(configuration: config), frames)
        #expect(encoded.count >= 8)
        let decoder = try VP8Decoder(threads: 2)
        var out = I420Frame(width: 320, height: 240)
        var last: Double = 0
        for e in encoded { try decoder.decode(e.bytes, into: &out) }
        if let lastEncoded = encoded.last {
            let index = Int(lastEncoded.info.pts / 3000)
            last = try #require(VideoQuality.psnr(frames[index], out)).y
        }
        #expect(last > 28, "last frame luma PSNR \(last)")
        #expect(config.vpxencArguments.contains("--screen-content-mode=1"))
    }

    @Test("configuration maps onto vpxenc options")
    func vpxencMapping() {
        var c = VP8EncoderConfiguration(width: 640, height: 360, targetBitrate: 1500)
        c.cpuUsed = -8
        let args = c.vpxencArguments
        for expected in ["--rt", "--cpu-used=-8", "--end-usage=cbr", "--target-bitrate=1500", "--lag-in-frames=0",
                         "--threads=1", "--error-resilient=1", "--disable-kf"] {
            #expect(args.contains(expected), "\(expected)")
        }
        c.keyframeInterval = 300
        #expect(c.vpxencArguments.contains("--kf-max-dist=300"))
    }

    @Test("bad encoder input yields typed errors")
    func encoderErrors() throws {
        #expect(throws: VP8EncoderError.invalidConfiguration(.dimensions)) {
            try VP8Encoder(configuration: .camera(width: 0, height: 240, targetBitrate: 500))
        }
        var c = VP8EncoderConfiguration(width: 160, height: 120)
        c.cpuUsed = 17
        #expect(throws: VP8EncoderError.invalidConfiguration(.cpuUsed)) { try VP8Encoder(configuration: c) }
        c.cpuUsed = 4; c.tokenPartitionsLog2 = 4
        #expect(throws: VP8EncoderError.invalidConfiguration(.tokenPartitions)) { try VP8Encoder(configuration: c) }

        let encoder = try VP8Encoder(configuration: .camera(width: 160, height: 120, targetBitrate: 300))
        let wrong = I420Frame(width: 320, height: 240)
        #expect(throws: VP8EncoderError.frameSizeMismatch(expectedWidth: 160, expectedHeight: 120, width: 320, height: 240)) {
            try encoder.encode(wrong, pts: 0) { _ in }
        }
    }

    @Test("decoder waits for a keyframe, and after a loss until the next one")
    func needsKeyframe() throws {
        let frames = cameraFrames(width: 160, height: 120, count: 8)
        let encoded = try encodeAll(try VP8Encoder(configuration: .camera(width: 160, height: 120, targetBitrate: 300)),
                                    frames, keyframeAt: [6])
        let decoder = try VP8Decoder()
        var out = I420Frame(width: 160, height: 120)
        // A fresh decoder refuses an inter frame.
        #expect(throws: VP8DecoderError.needsKeyframe) { try decoder.decode(encoded[1].bytes, into: &out) }
        try decoder.decode(encoded[0].bytes, into: &out)
        #expect(!decoder.needsKeyframe)
        try decoder.decode(encoded[1].bytes, into: &out)
        decoder.frameLost()                                    // frame 2 never arrives
        #expect(decoder.needsKeyframe)
        for i in 3..<6 {
            #expect(throws: VP8DecoderError.needsKeyframe) { try decoder.decode(encoded[i].bytes, into: &out) }
        }
        #expect(try decoder.decode(encoded[6].bytes, into: &out))
        #expect(!decoder.needsKeyframe)
        #expect(try decoder.decode(encoded[7].bytes, into: &out))
        #expect(try #require(VideoQuality.psnr(frames[7], out)).y > 25)
        #expect(decoder.rejectedFrameCount == 4)
    }

    @Test("corrupt or truncated VP8 payloads yield typed errors, never a crash")
    func corruptPayloads() throws {
        let frames = cameraFrames(width: 160, height: 120, count: 4)
        let encoded = try encodeAll(try VP8Encoder(configuration: .camera(width: 160, height: 120, targetBitrate: 300)), frames)
        var out = I420Frame(width: 160, height: 120)

        let decoder = try VP8Decoder()
        #expect(throws: VP8DecoderError.emptyFrame) { try decoder.decode([], into: &out) }
        #expect(throws: VP8DecoderError.malformedHeader(.tooShort)) { try decoder.decode([0x10, 0x02], into: &out) }
        var badStart = encoded[0].bytes
        badStart[3] = 0x00
        #expect(throws: VP8DecoderError.malformedHeader(.missingStartCode)) { try decoder.decode(badStart, into: &out) }
        // The first partition size claims more than the frame holds.
        let truncated = Array(encoded[0].bytes.prefix(40))
        #expect(throws: VP8DecoderError.malformedHeader(.firstPartitionOverrun)) { try decoder.decode(truncated, into: &out) }

        // Token data cut off: libvpx reports an error or corruption, and the
        // decoder then needs a keyframe.
        let key = encoded[0].bytes
        let header = try VP8FrameHeader(parsing: key)
        let cut = Array(key.prefix(10 + header.firstPartitionSize + 3))
        #expect(throws: VP8DecoderError.self) { try decoder.decode(cut, into: &out) }
        #expect(decoder.needsKeyframe)
        #expect(throws: VP8DecoderError.needsKeyframe) { try decoder.decode(encoded[1].bytes, into: &out) }
        try decoder.decode(key, into: &out)
        try decoder.decode(encoded[1].bytes, into: &out)

        // Random damage: any outcome but a crash; the decoder stays usable.
        var rng = SystemRandomNumberGenerator()
        var seed: UInt64 = 0x1234_5678
        for trial in 0..<150 {
            var damaged = encoded[trial % 4].bytes
            seed = seed &* 6364136223846793005 &+ 1442695040888963407
            let flips = 1 + Int(seed >> 60)
            for f in 0..<flips {
                let position = Int((seed >> UInt64(8 + f)) % UInt64(damaged.count))
                damaged[position] ^= UInt8(truncatingIfNeeded: seed >> UInt64(f * 3)) | 1
            }
            if trial % 5 == 0 { damaged = Array(damaged.prefix(Int.random(in: 1...damaged.count, using: &rng))) }
            _ = try? decoder.decode(damaged, into: &out)
        }
        try decoder.decode(key, into: &out)
        #expect(try #require(VideoQuality.psnr(frames[0], out)).y > 25)
    }

    @Test("frame header parser reads keyframe size and rejects garbage")
    func frameHeader() throws {
        let encoded = try encodeAll(try VP8Encoder(configuration: .camera(width: 176, height: 144, targetBitrate: 200)),
                                    cameraFrames(width: 176, height: 144, count: 2))
        let key = try VP8FrameHeader(parsing: encoded[0].bytes)
        #expect(key.isKeyframe && key.showFrame && key.width == 176 && key.height == 144)
        let inter = try VP8FrameHeader(parsing: encoded[1].bytes)
        #expect(!inter.isKeyframe && inter.width == nil)
        #expect(throws: VP8FrameHeader.ParseError.invalidVersion) { try VP8FrameHeader(parsing: [0x0f, 0, 0]) }
    }
}
