/// The scriptable summary lines and the small statistics behind them.
///
/// Line forms (one per comparison, fixed so scripts can split on them):
///
///     vp8 encode 1280x720@30 1500kbps: parley 212.4 fps, vpxenc 215.0 fps, ratio 0.988
///     opus encode 48000Hz stereo 64kbps: parley 140.2x realtime, opusenc 132.0x realtime, ratio 1.062
public enum SummaryLine {
    /// `parley / tool`: above 1 means Parley is faster (or better). Zero
    /// or non-finite inputs give nil (nothing meaningful to compare).
    public static func ratio(parley: Double, tool: Double) -> Double? {
        guard parley.isFinite, tool.isFinite, parley >= 0, tool > 0 else { return nil }
        return parley / tool
    }

    /// `vp8 <operation> WxH@FPS Bkbps: parley X fps, <tool> Y fps, ratio R`.
    public static func video(operation: String, width: Int, height: Int, frameRate: Int, kbps: Int,
                             parleyFPS: Double, tool: String, toolFPS: Double) -> String {
        "vp8 \(operation) \(width)x\(height)@\(frameRate) \(kbps)kbps: parley \(fixed(parleyFPS, 1)) fps, "
            + "\(tool) \(fixed(toolFPS, 1)) fps, ratio \(ratioText(parley: parleyFPS, tool: toolFPS))"
    }

    /// `opus <operation> 48000Hz <layout> Bkbps: parley Xx realtime, <tool> Yx realtime, ratio R`.
    public static func audio(operation: String, sampleRate: Int, channels: Int, kbps: Int,
                             parleyRealtime: Double, tool: String, toolRealtime: Double) -> String {
        "opus \(operation) \(sampleRate)Hz \(channelLayout(channels)) \(kbps)kbps: "
            + "parley \(fixed(parleyRealtime, 1))x realtime, \(tool) \(fixed(toolRealtime, 1))x realtime, "
            + "ratio \(ratioText(parley: parleyRealtime, tool: toolRealtime))"
    }

    /// `vp8 quality WxH@FPS Bkbps: parley PSNR-Y a dB PSNR b dB at c kbps, vpxenc PSNR-Y ... at ... kbps`.
    public static func videoQuality(width: Int, height: Int, frameRate: Int, kbps: Int,
                                    parley: VideoQualityFigures, tool: String, toolFigures: VideoQualityFigures) -> String {
        func side(_ q: VideoQualityFigures) -> String {
            "PSNR-Y \(fixed(q.psnrY, 2)) dB PSNR \(fixed(q.psnrOverall, 2)) dB at \(fixed(q.achievedKbps, 1)) kbps"
        }
        let head = "vp8 quality \(width)x\(height)@\(frameRate) \(kbps)kbps: parley \(side(parley))"
        // Without the tool run (--no-tools) there is no other side to print.
        return toolFigures.psnrY.isNaN ? head : head + ", \(tool) \(side(toolFigures))"
    }

    /// `opus quality 48000Hz stereo 64kbps: parley SNR a dB at b kbps, opusenc SNR c dB at d kbps`.
    public static func audioQuality(sampleRate: Int, channels: Int, kbps: Int, parleySNR: Double, parleyKbps: Double,
                                    tool: String, toolSNR: Double, toolKbps: Double) -> String {
        "opus quality \(sampleRate)Hz \(channelLayout(channels)) \(kbps)kbps: "
            + "parley SNR \(fixed(parleySNR, 2)) dB at \(fixed(parleyKbps, 1)) kbps"
            + (toolSNR.isNaN ? "" : ", \(tool) SNR \(fixed(toolSNR, 2)) dB at \(fixed(toolKbps, 1)) kbps")
    }

    static func channelLayout(_ channels: Int) -> String { channels == 1 ? "mono" : channels == 2 ? "stereo" : "\(channels)ch" }

    static func ratioText(parley: Double, tool: Double) -> String {
        ratio(parley: parley, tool: tool).map { fixed($0, 3) } ?? "n/a"
    }
}

/// Quality and rate of one encoded stream.
public struct VideoQualityFigures: Sendable, Equatable {
    /// Mean over frames of the luma PSNR, dB (frames identical to the
    /// source count as `VideoStatistics.psnrCap`).
    public var psnrY: Double
    /// Mean over frames of the all-planes PSNR, dB.
    public var psnrOverall: Double
    /// Encoded bytes × 8 / duration, kbit/s.
    public var achievedKbps: Double

    public init(psnrY: Double, psnrOverall: Double, achievedKbps: Double) {
        self.psnrY = psnrY
        self.psnrOverall = psnrOverall
        self.achievedKbps = achievedKbps
    }
}

public enum VideoStatistics {
    /// PSNR of a frame identical to its source is infinite; averaged as this.
    public static let psnrCap = 100.0

    public static func capped(_ psnr: Double) -> Double { psnr.isFinite ? min(psnr, psnrCap) : psnrCap }

    /// The median (mean of the middle two for an even count); nil if empty.
    public static func median(_ values: [Double]) -> Double? {
        guard !values.isEmpty else { return nil }
        let s = values.sorted()
        let mid = s.count / 2
        return s.count % 2 == 1 ? s[mid] : (s[mid - 1] + s[mid]) / 2
    }

    public static func mean(_ values: [Double]) -> Double? {
        values.isEmpty ? nil : values.reduce(0, +) / Double(values.count)
    }
}

/// `x` with exactly `digits` decimals ("212.4"), without Foundation.
/// Non-finite values print as "inf"/"nan".
public func fixed(_ x: Double, _ digits: Int) -> String {
    guard x.isFinite else { return x.isNaN ? "nan" : (x > 0 ? "inf" : "-inf") }
    var scale = 1.0
    for _ in 0..<digits { scale *= 10 }
    let scaled = (abs(x) * scale).rounded()
    guard scaled < 9e15 else { return "\(x)" }
    let n = Int64(scaled)
    let p = Int64(scale)
    let whole = n / p, frac = n % p
    let sign = x < 0 && n != 0 ? "-" : ""
    guard digits > 0 else { return "\(sign)\(whole)" }
    var f = String(frac)
    while f.count < digits { f = "0" + f }
    return "\(sign)\(whole).\(f)"
}
