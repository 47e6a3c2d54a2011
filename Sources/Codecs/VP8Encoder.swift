internal import CVPX

/// Temporal scalability for VP8: how many temporal layers the stream has.
/// With more than one layer the encoder follows the standard WebRTC
/// patterns so an SFU can drop the upper layers (RFC 7741 §4.2, TID field):
/// - `.two`: layer ids repeat 0, 1 (each layer at half the frame rate).
/// - `.three`: layer ids repeat 0, 2, 1, 2 (TL0 at 1/4, TL0+TL1 at 1/2 rate).
///
/// Reference structure (VP8 buffers LAST, GOLDEN, ALTREF): TL0 frames
/// reference and refresh only LAST; TL1 frames reference LAST and GOLDEN and
/// refresh GOLDEN; TL2 frames reference all three and refresh ALTREF. So a
/// frame never references a higher layer, and dropping TL2 (or TL1 + TL2)
/// leaves a decodable stream. Upper-layer frames also do not update the
/// entropy context, which dropped frames would otherwise leave stale.
///
/// vpxenc has no temporal-layer options; this matches libvpx's
/// `vpx_temporal_svc_encoder` modes "2-layer, 2-frame period" and
/// "3-layer, 4-frame period (0-2-1-2)" (`ts_number_layers`,
/// `ts_periodicity`, `ts_layer_id`, `ts_rate_decimator`).
public enum TemporalLayering: Int, Sendable, CaseIterable {
    case single = 1
    case two = 2
    case three = 3

    /// Layer id of each frame in one period of the pattern.
    public var pattern: [Int] { (0..<period).map(layerID(at:)) }

    /// Frames in one period of the pattern.
    public var period: Int {
        switch self {
        case .single: 1
        case .two: 2
        case .three: 4
        }
    }

    /// Layer id of the frame at `position` (0..<period) in the pattern.
    /// (A switch rather than an array: no allocation on the per-frame path.)
    public func layerID(at position: Int) -> Int {
        switch self {
        case .single: 0
        case .two: position & 1
        case .three: position & 1 == 1 ? 2 : (position & 2 == 2 ? 1 : 0)   // 0, 2, 1, 2
        }
    }

    /// Cumulative share of the target bitrate for layers 0...n (WebRTC's
    /// default split: 2 layers 60/40, 3 layers 40/20/40).
    public var cumulativeBitrateShare: [Double] {
        switch self {
        case .single: [1.0]
        case .two: [0.6, 1.0]
        case .three: [0.4, 0.6, 1.0]
        }
    }
}

/// libvpx's VP8 screen-content modes (`--screen-content-mode`).
public enum ScreenContentMode: UInt32, Sendable {
    case off = 0
    case on = 1
    /// Screen content with more aggressive rate control (frame dropping and
    /// quality ramp-up tuned for slides and scrolling).
    case onAggressiveRateControl = 2
}

/// VP8 encoder settings. Each field maps 1:1 onto a `vpxenc` option (given
/// per field); `vpxencArguments` renders them. Always one-pass realtime
/// (`--rt`, `VPX_DL_REALTIME`) with `--lag-in-frames=0`: a call cannot wait
/// for future frames.
///
/// Example, the defaults: `--codec=vp8 --rt --cpu-used=-6 --end-usage=cbr
/// --target-bitrate=500 --lag-in-frames=0 --threads=1 --error-resilient=1
/// --min-q=2 --max-q=56 --undershoot-pct=100 --overshoot-pct=15
/// --buf-sz=1000 --buf-initial-sz=500 --buf-optimal-sz=600 --drop-frame=0
/// --disable-kf --token-parts=0 --static-thresh=0 --noise-sensitivity=0
/// --screen-content-mode=0 --timebase=1/90000 --fps=30/1`.
public struct VP8EncoderConfiguration: Sendable, Equatable {
    public enum RateControl: Sendable, Equatable {
        /// `--end-usage=cbr` (VPX_CBR), what WebRTC uses.
        case cbr
        /// `--end-usage=vbr` (VPX_VBR).
        case vbr
    }

    /// `--width` / `--height` (vpxenc takes them from the Y4M header).
    public var width: Int
    public var height: Int
    /// `--target-bitrate`, kilobits per second. Changeable while encoding
    /// with `VP8Encoder.setTargetBitrate(_:)`.
    public var targetBitrate: Int = 500
    /// `--end-usage`.
    public var rateControl: RateControl = .cbr
    /// `--cpu-used`, -16...16: higher is faster and worse; a negative value
    /// fixes the speed at its magnitude instead of letting libvpx adapt it
    /// to the deadline.
    public var cpuUsed: Int = -6
    /// `--min-q` / `--max-q`, 0...63.
    public var minQuantizer: Int = 2
    public var maxQuantizer: Int = 56
    /// `--undershoot-pct` / `--overshoot-pct`.
    public var undershootPercent: Int = 100
    public var overshootPercent: Int = 15
    /// `--buf-sz` / `--buf-initial-sz` / `--buf-optimal-sz`, milliseconds.
    public var bufferSize: Int = 1000
    public var bufferInitialSize: Int = 500
    public var bufferOptimalSize: Int = 600
    /// `--drop-frame`: buffer level (percent) under which frames are
    /// dropped; 0 never drops.
    public var dropFrameThreshold: Int = 0
    /// `--error-resilient=1`: reset entropy per frame so loss does not
    /// poison later frames' probabilities (VPX_ERROR_RESILIENT_DEFAULT).
    public var errorResilient: Bool = true
    /// nil: `--disable-kf` (keyframes only on demand, WebRTC style);
    /// n: `--kf-max-dist=n` (automatic keyframe at least every n frames).
    public var keyframeInterval: Int? = nil
    /// `--threads`.
    public var threads: Int = 1
    /// `--token-parts`: log2 of the number of DCT token partitions, 0...3
    /// (1, 2, 4 or 8 partitions; lets decoders use threads).
    public var tokenPartitionsLog2: Int = 0
    /// `--static-thresh`: macroblocks whose change is below this are
    /// skipped; helps static screen content.
    public var staticThreshold: Int = 0
    /// `--noise-sensitivity`, 0...6 (temporal denoiser).
    public var noiseSensitivity: Int = 0
    /// `--screen-content-mode`.
    public var screenContentMode: ScreenContentMode = .off
    /// `--max-intra-rate` (percent of the per-frame budget a keyframe may
    /// use); nil leaves libvpx's default.
    public var maxIntraBitratePercent: Int? = nil
    /// Temporal layers (no vpxenc option; see `TemporalLayering`).
    public var temporalLayers: TemporalLayering = .single
    /// With temporal layers: an upper-layer frame is made a layer-sync frame
    /// (references only TL0) when that layer has gone this many frames
    /// without one, so an SFU can switch up without waiting for a keyframe.
    /// nil: only the first upper-layer frames after a keyframe are syncs.
    public var layerSyncInterval: Int? = nil
    /// `--timebase=1/timebaseDenominator`: units of `pts` and `duration`.
    /// 90000 matches the RTP video clock.
    public var timebaseDenominator: Int = 90_000
    /// `--fps=frameRate/1`: the nominal rate, used for the default duration.
    public var frameRate: Int = 30

    public init(width: Int, height: Int, targetBitrate: Int = 500) {
        self.width = width
        self.height = height
        self.targetBitrate = targetBitrate
    }

    /// Camera defaults (what the init gives).
    public static func camera(width: Int, height: Int, targetBitrate: Int) -> Self {
        Self(width: width, height: height, targetBitrate: targetBitrate)
    }

    /// Screen sharing: screen-content mode, a static threshold so unchanged
    /// blocks cost nothing, a keyframe budget cap, and frame dropping
    /// allowed (a late slide is better than a blurry one).
    public static func screenShare(width: Int, height: Int, targetBitrate: Int) -> Self {
        var c = Self(width: width, height: height, targetBitrate: targetBitrate)
        c.screenContentMode = .on
        c.staticThreshold = 100
        c.maxIntraBitratePercent = 900
        c.cpuUsed = -8
        c.maxQuantizer = 52
        return c
    }

    /// The same settings as `vpxenc` arguments (without input/output).
    public var vpxencArguments: [String] {
        var a = ["--codec=vp8", "--rt", "--passes=1", "--cpu-used=\(cpuUsed)",
                 "--end-usage=\(rateControl == .cbr ? "cbr" : "vbr")",
                 "--target-bitrate=\(targetBitrate)", "--lag-in-frames=0", "--threads=\(threads)",
                 "--error-resilient=\(errorResilient ? 1 : 0)", "--min-q=\(minQuantizer)", "--max-q=\(maxQuantizer)",
                 "--undershoot-pct=\(undershootPercent)", "--overshoot-pct=\(overshootPercent)",
                 "--buf-sz=\(bufferSize)", "--buf-initial-sz=\(bufferInitialSize)",
                 "--buf-optimal-sz=\(bufferOptimalSize)", "--drop-frame=\(dropFrameThreshold)"]
        if let k = keyframeInterval { a.append("--kf-max-dist=\(k)") } else { a.append("--disable-kf") }
        a += ["--token-parts=\(tokenPartitionsLog2)", "--static-thresh=\(staticThreshold)",
              "--noise-sensitivity=\(noiseSensitivity)", "--screen-content-mode=\(screenContentMode.rawValue)"]
        if let m = maxIntraBitratePercent { a.append("--max-intra-rate=\(m)") }
        a += ["--timebase=1/\(timebaseDenominator)", "--fps=\(frameRate)/1",
              "--width=\(width)", "--height=\(height)"]
        return a
    }

    func validate() throws(VP8EncoderError) {
        guard (1...16_383).contains(width), (1...16_383).contains(height) else { throw .invalidConfiguration(.dimensions) }
        guard (1...1_000_000).contains(targetBitrate) else { throw .invalidConfiguration(.targetBitrate) }
        guard (-16...16).contains(cpuUsed) else { throw .invalidConfiguration(.cpuUsed) }
        guard (0...63).contains(minQuantizer), (0...63).contains(maxQuantizer), minQuantizer <= maxQuantizer else {
            throw .invalidConfiguration(.quantizer)
        }
        guard (1...64).contains(threads) else { throw .invalidConfiguration(.threads) }
        guard (0...3).contains(tokenPartitionsLog2) else { throw .invalidConfiguration(.tokenPartitions) }
        guard timebaseDenominator > 0, (1...1000).contains(frameRate) else { throw .invalidConfiguration(.timing) }
        guard keyframeInterval.map({ $0 >= 1 }) ?? true, layerSyncInterval.map({ $0 >= 1 }) ?? true,
              (0...100).contains(dropFrameThreshold), (0...6).contains(noiseSensitivity), staticThreshold >= 0,
              undershootPercent >= 0, overshootPercent >= 0, bufferSize > 0, bufferInitialSize > 0,
              bufferOptimalSize > 0, maxIntraBitratePercent.map({ $0 >= 0 }) ?? true
        else { throw .invalidConfiguration(.rateControl) }
    }
}

public enum VP8EncoderError: Error, Equatable, Sendable {
    public enum ConfigurationIssue: Sendable, Equatable {
        case dimensions, targetBitrate, cpuUsed, quantizer, threads, tokenPartitions, timing, rateControl
    }
    case invalidConfiguration(ConfigurationIssue)
    /// The frame handed to `encode` is not the configured size.
    case frameSizeMismatch(expectedWidth: Int, expectedHeight: Int, width: Int, height: Int)
    /// libvpx returned this `vpx_codec_err_t`.
    case libvpx(code: Int32)
}

/// What the encoder says about one encoded frame; what the RTP packetizer
/// needs for the VP8 payload descriptor (RFC 7741 §4.2).
public struct EncodedFrameInfo: Sendable, Equatable {
    public var isKeyframe: Bool
    /// Presentation time and duration in the configured timebase.
    public var pts: Int64
    public var duration: Int
    /// TID: 0 for the base layer (and always 0 for keyframes).
    public var temporalLayerID: Int
    /// Y bit (RFC 7741 §4.2): the frame depends only on base-layer (TID 0)
    /// frames, so a receiver can start forwarding/decoding its layer here.
    /// Computed from the references actually used, not assumed from the
    /// pattern. Keyframes report true (they depend on nothing); other TID 0
    /// frames report false.
    public var isLayerSync: Bool
    /// No later frame references this one (libvpx VPX_FRAME_IS_DROPPABLE).
    public var isDroppable: Bool
    /// Size of the encoded bytes.
    public var byteCount: Int
}

/// One encoded frame handed to the `encode` closure. `bytes` points into
/// libvpx's output buffer and is only valid inside that closure.
public struct EncodedVideoFrame {
    public var info: EncodedFrameInfo
    public var bytes: UnsafeRawBufferPointer
}

/// A VP8 encoder (libvpx) for realtime use. Owns its libvpx context and
/// frees it in `deinit`; not thread-safe (use from one task at a time).
public final class VP8Encoder {
    public private(set) var configuration: VP8EncoderConfiguration
    private let context: UnsafeMutablePointer<vpx_codec_ctx_t>
    private let config: UnsafeMutablePointer<vpx_codec_enc_cfg_t>
    private let image: UnsafeMutablePointer<vpx_image_t>

    // Temporal-layer bookkeeping: which layer's frame each reference buffer
    // (LAST, GOLDEN, ALTREF) holds, the position in the pattern, and frames
    // since each layer's last sync frame.
    private var bufferLayer: (Int, Int, Int) = (0, 0, 0)
    private var patternIndex = 0
    private var framesSinceSync: (Int, Int, Int) = (0, 0, 0)
    private var keyframePending = false

    public init(configuration: VP8EncoderConfiguration) throws(VP8EncoderError) {
        try configuration.validate()
        // All libvpx setup happens on locals first: stored properties are set
        // only once nothing can fail, so a throw never reaches `deinit`.
        let context = UnsafeMutablePointer<vpx_codec_ctx_t>.allocate(capacity: 1)
        context.initialize(to: vpx_codec_ctx_t())
        let config = UnsafeMutablePointer<vpx_codec_enc_cfg_t>.allocate(capacity: 1)
        config.initialize(to: vpx_codec_enc_cfg_t())
        let image = UnsafeMutablePointer<vpx_image_t>.allocate(capacity: 1)
        image.initialize(to: vpx_image_t())
        func fail(_ status: vpx_codec_err_t, initialized: Bool) -> VP8EncoderError {
            if initialized { vpx_codec_destroy(context) }
            context.deallocate(); config.deallocate(); image.deallocate()
            return .libvpx(code: Int32(status.rawValue))
        }

        let iface = vpx_codec_vp8_cx()
        var status = vpx_codec_enc_config_default(iface, config, 0)
        if status == VPX_CODEC_OK {
            Self.apply(configuration, to: config)
            status = shim_vpx_codec_enc_init(context, iface, config, 0)
        }
        guard status == VPX_CODEC_OK else { throw fail(status, initialized: false) }
        let controls: [vpx_codec_err_t] = [
            shim_vp8_set_cpuused(context, Int32(configuration.cpuUsed)),
            shim_vp8_set_static_threshold(context, UInt32(configuration.staticThreshold)),
            shim_vp8_set_token_partitions(context, Int32(configuration.tokenPartitionsLog2)),
            shim_vp8_set_noise_sensitivity(context, UInt32(configuration.noiseSensitivity)),
            shim_vp8_set_screen_content_mode(context, configuration.screenContentMode.rawValue),
            configuration.maxIntraBitratePercent.map { shim_vp8_set_max_intra_bitrate_pct(context, UInt32($0)) }
                ?? VPX_CODEC_OK,
        ]
        if let failed = controls.first(where: { $0 != VPX_CODEC_OK }) { throw fail(failed, initialized: true) }
        self.configuration = configuration
        self.context = context
        self.config = config
        self.image = image
    }

    deinit {
        vpx_codec_destroy(context)
        context.deallocate()
        config.deallocate()
        image.deallocate()
    }

    private static func apply(_ c: VP8EncoderConfiguration, to cfg: UnsafeMutablePointer<vpx_codec_enc_cfg_t>) {
        cfg.pointee.g_w = UInt32(c.width)
        cfg.pointee.g_h = UInt32(c.height)
        cfg.pointee.g_timebase = vpx_rational(num: 1, den: Int32(clamping: c.timebaseDenominator))
        cfg.pointee.g_threads = UInt32(c.threads)
        cfg.pointee.g_error_resilient = c.errorResilient ? vpx_codec_er_flags_t(VPX_ERROR_RESILIENT_DEFAULT) : 0
        cfg.pointee.g_lag_in_frames = 0
        cfg.pointee.g_pass = VPX_RC_ONE_PASS
        cfg.pointee.rc_end_usage = c.rateControl == .cbr ? VPX_CBR : VPX_VBR
        cfg.pointee.rc_min_quantizer = UInt32(c.minQuantizer)
        cfg.pointee.rc_max_quantizer = UInt32(c.maxQuantizer)
        cfg.pointee.rc_undershoot_pct = UInt32(c.undershootPercent)
        cfg.pointee.rc_overshoot_pct = UInt32(c.overshootPercent)
        cfg.pointee.rc_buf_sz = UInt32(c.bufferSize)
        cfg.pointee.rc_buf_initial_sz = UInt32(c.bufferInitialSize)
        cfg.pointee.rc_buf_optimal_sz = UInt32(c.bufferOptimalSize)
        cfg.pointee.rc_dropframe_thresh = UInt32(c.dropFrameThreshold)
        cfg.pointee.rc_resize_allowed = 0
        if let k = c.keyframeInterval {
            cfg.pointee.kf_mode = VPX_KF_AUTO
            cfg.pointee.kf_min_dist = 0
            cfg.pointee.kf_max_dist = UInt32(k)
        } else {
            cfg.pointee.kf_mode = VPX_KF_DISABLED
        }
        applyBitrate(c.targetBitrate, layering: c.temporalLayers, to: cfg)
        let pattern = c.temporalLayers.pattern
        cfg.pointee.ts_number_layers = UInt32(c.temporalLayers.rawValue)
        cfg.pointee.ts_periodicity = UInt32(pattern.count)
        withUnsafeMutableBytes(of: &cfg.pointee.ts_layer_id) { raw in
            let ids = raw.bindMemory(to: UInt32.self)
            for i in 0..<ids.count { ids[i] = 0 }
            for (i, layer) in pattern.enumerated() { ids[i] = UInt32(layer) }
        }
        withUnsafeMutableBytes(of: &cfg.pointee.ts_rate_decimator) { raw in
            let d = raw.bindMemory(to: UInt32.self)
            for i in 0..<d.count { d[i] = 0 }
            // Layer i runs at 1/2^(layers-1-i) of the full frame rate.
            for i in 0..<c.temporalLayers.rawValue { d[i] = UInt32(1 << (c.temporalLayers.rawValue - 1 - i)) }
        }
    }

    private static func applyBitrate(_ kbps: Int, layering: TemporalLayering,
                                     to cfg: UnsafeMutablePointer<vpx_codec_enc_cfg_t>) {
        cfg.pointee.rc_target_bitrate = UInt32(kbps)
        withUnsafeMutableBytes(of: &cfg.pointee.ts_target_bitrate) { raw in
            let rates = raw.bindMemory(to: UInt32.self)
            for i in 0..<rates.count { rates[i] = 0 }
            for (i, share) in layering.cumulativeBitrateShare.enumerated() {
                rates[i] = UInt32(max(1, Int((Double(kbps) * share).rounded())))
            }
        }
    }

    /// Changes the target bitrate (kbps) from the next frame on, as a
    /// bandwidth estimator would (`vpx_codec_enc_config_set`).
    public func setTargetBitrate(_ kbps: Int) throws(VP8EncoderError) {
        guard (1...1_000_000).contains(kbps) else { throw .invalidConfiguration(.targetBitrate) }
        Self.applyBitrate(kbps, layering: configuration.temporalLayers, to: config)
        let status = vpx_codec_enc_config_set(context, config)
        guard status == VPX_CODEC_OK else { throw .libvpx(code: Int32(status.rawValue)) }
        configuration.targetBitrate = kbps
    }

    /// Makes the next encoded frame a keyframe (e.g. on PLI/FIR).
    public func requestKeyframe() { keyframePending = true }

    /// Quantizer (0...63) libvpx chose for the last frame.
    public var lastQuantizer: Int {
        var q: Int32 = -1
        _ = shim_vp8_get_last_quantizer_64(context, &q)
        return Int(q)
    }

    /// Encodes one frame and calls `output` for the encoded frame (once, or
    /// not at all if rate control dropped the frame). Returns the number of
    /// frames delivered. No allocation per call: the frame's planes are
    /// wrapped in place and `output` sees libvpx's buffer.
    ///
    /// - Parameters:
    ///   - pts: presentation time in the configured timebase.
    ///   - duration: in the timebase; nil means one frame at `frameRate`.
    ///   - forceKeyframe: `VPX_EFLAG_FORCE_KF` for this frame.
    @discardableResult
    public func encode(_ frame: borrowing I420Frame, pts: Int64, duration: Int? = nil, forceKeyframe: Bool = false,
                       output: (EncodedVideoFrame) -> Void) throws(VP8EncoderError) -> Int {
        guard frame.width == configuration.width, frame.height == configuration.height else {
            throw .frameSizeMismatch(expectedWidth: configuration.width, expectedHeight: configuration.height,
                                     width: frame.width, height: frame.height)
        }
        let wantKeyframe = forceKeyframe || keyframePending
        let layering = configuration.temporalLayers
        if wantKeyframe { patternIndex = 0 }
        let plan = planFrame(layering: layering)
        var flags = plan.flags
        if wantKeyframe { flags |= Int(VPX_EFLAG_FORCE_KF) }
        if layering != .single {
            let status = shim_vp8_set_temporal_layer_id(context, Int32(plan.layer))
            guard status == VPX_CODEC_OK else { throw .libvpx(code: Int32(status.rawValue)) }
        }
        let frameDuration = duration ?? max(1, configuration.timebaseDenominator / configuration.frameRate)

        let status: vpx_codec_err_t = frame.storage.withUnsafeBufferPointer { buffer in
            let base = UnsafeMutablePointer(mutating: buffer.baseAddress!)
            _ = vpx_img_wrap(image, VPX_IMG_FMT_I420, UInt32(frame.width), UInt32(frame.height), 1, base)
            image.pointee.planes.0 = base
            image.pointee.planes.1 = base + frame.offsetU
            image.pointee.planes.2 = base + frame.offsetV
            image.pointee.stride.0 = Int32(frame.strideY)
            image.pointee.stride.1 = Int32(frame.strideUV)
            image.pointee.stride.2 = Int32(frame.strideUV)
            // libvpx copies the picture into its own lookahead buffer here,
            // so the wrapped storage need not outlive this call.
            return vpx_codec_encode(context, image, pts, UInt(frameDuration), vpx_enc_frame_flags_t(flags),
                                    UInt(VPX_DL_REALTIME))
        }
        guard status == VPX_CODEC_OK else { throw .libvpx(code: Int32(status.rawValue)) }
        keyframePending = false

        var delivered = 0
        var iterator: vpx_codec_iter_t? = nil
        while let packet = vpx_codec_get_cx_data(context, &iterator) {
            guard packet.pointee.kind == VPX_CODEC_CX_FRAME_PKT else { continue }
            let data = packet.pointee.data.frame
            let isKey = data.flags & vpx_codec_frame_flags_t(VPX_FRAME_IS_KEY) != 0
            var info = EncodedFrameInfo(
                isKeyframe: isKey, pts: data.pts, duration: Int(data.duration),
                temporalLayerID: plan.layer, isLayerSync: plan.isSync,
                isDroppable: data.flags & vpx_codec_frame_flags_t(VPX_FRAME_IS_DROPPABLE) != 0,
                byteCount: data.sz)
            if isKey {
                // A keyframe refreshes every buffer with base-layer content.
                info.temporalLayerID = 0
                info.isLayerSync = true
                bufferLayer = (0, 0, 0)
                framesSinceSync = (0, 0, 0)
            } else if layering != .single {
                commit(plan)
            }
            output(EncodedVideoFrame(info: info, bytes: UnsafeRawBufferPointer(start: data.buf, count: data.sz)))
            delivered += 1
        }
        if layering != .single { patternIndex = (patternIndex + 1) % layering.period }
        return delivered
    }

    /// Encodes one frame into `buffer` (replacing its contents, reusing its
    /// capacity) and returns its info, or nil if the frame was dropped.
    public func encode(_ frame: borrowing I420Frame, pts: Int64, duration: Int? = nil, forceKeyframe: Bool = false,
                       into buffer: inout [UInt8]) throws(VP8EncoderError) -> EncodedFrameInfo? {
        var result: EncodedFrameInfo? = nil
        buffer.removeAll(keepingCapacity: true)
        try encode(frame, pts: pts, duration: duration, forceKeyframe: forceKeyframe) { encoded in
            buffer.append(contentsOf: encoded.bytes)
            result = encoded.info
        }
        return result
    }

    // MARK: temporal layers

    private struct FramePlan {
        var layer: Int
        var isSync: Bool
        var flags: Int
        /// Buffer this frame refreshes: 0 LAST, 1 GOLDEN, 2 ALTREF.
        var updates: Int
    }

    private func layerIn(_ buffer: Int) -> Int {
        switch buffer { case 0: bufferLayer.0; case 1: bufferLayer.1; default: bufferLayer.2 }
    }

    private func sinceSync(_ layer: Int) -> Int {
        switch layer { case 0: framesSinceSync.0; case 1: framesSinceSync.1; default: framesSinceSync.2 }
    }

    private func planFrame(layering: TemporalLayering) -> FramePlan {
        guard layering != .single else { return FramePlan(layer: 0, isSync: false, flags: 0, updates: 0) }
        let layer = layering.layerID(at: patternIndex)
        // References by layer (see TemporalLayering): bit 0 LAST, 1 GOLDEN, 2 ALTREF.
        var references: Int
        let updates: Int
        switch layer {
        case 0: references = 0b001; updates = 0
        case 1: references = 0b011; updates = 1
        default: references = 0b111; updates = 2
        }
        if layer > 0, let interval = configuration.layerSyncInterval, sinceSync(layer) >= interval {
            // Drop references to buffers holding upper-layer frames; LAST
            // always holds TL0, so at least one reference remains.
            for buffer in 1...2 where layerIn(buffer) > 0 { references &= ~(1 << buffer) }
        }
        var isSync = layer > 0
        for buffer in 0...2 where references & (1 << buffer) != 0 && layerIn(buffer) > 0 { isSync = false }

        var flags = 0
        if references & 0b001 == 0 { flags |= Int(VP8_EFLAG_NO_REF_LAST) }
        if references & 0b010 == 0 { flags |= Int(VP8_EFLAG_NO_REF_GF) }
        if references & 0b100 == 0 { flags |= Int(VP8_EFLAG_NO_REF_ARF) }
        if updates != 0 { flags |= Int(VP8_EFLAG_NO_UPD_LAST) }
        if updates != 1 { flags |= Int(VP8_EFLAG_NO_UPD_GF) }
        if updates != 2 { flags |= Int(VP8_EFLAG_NO_UPD_ARF) }
        if layer > 0 { flags |= Int(VP8_EFLAG_NO_UPD_ENTROPY) }
        return FramePlan(layer: layer, isSync: isSync, flags: flags, updates: updates)
    }

    private func commit(_ plan: FramePlan) {
        switch plan.updates {
        case 0: bufferLayer.0 = plan.layer
        case 1: bufferLayer.1 = plan.layer
        default: bufferLayer.2 = plan.layer
        }
        let count = plan.isSync ? 0 : sinceSync(plan.layer) + 1
        switch plan.layer {
        case 0: framesSinceSync.0 = count
        case 1: framesSinceSync.1 = count
        default: framesSinceSync.2 = count
        }
    }
}
