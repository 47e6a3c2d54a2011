import Codecs

/// Named figures of one run (one bitrate, or one loss rate), one sample per
/// repetition; reports use the median.
public struct BenchRow: Sendable {
    public enum Kind: String, Sendable { case vp8, opus, vp8Loss = "vp8-loss", opusLoss = "opus-loss" }
    public var kind: Kind
    public var width = 0
    public var height = 0
    public var frameRate = 0
    public var frames = 0
    public var channels = 0
    public var targetKbps = 0
    public var cpuUsed = 0
    public var threads = 0
    public var lossPercent: Double = 0
    public private(set) var samples: [String: [Double]] = [:]

    public init(kind: Kind) { self.kind = kind }

    public mutating func record(_ key: String, _ value: Double) { samples[key, default: []].append(value) }

    /// Median over repetitions, nil if never recorded.
    public func value(_ key: String) -> Double? { samples[key].flatMap(VideoStatistics.median) }
}

/// Metric names (CSV columns). "mem" = frames/samples in memory, codec calls
/// only; "file" = Parley's file→file path; "tool.reported" = the figure the
/// tool prints for its codec calls; "tool.process" = the whole tool process.
public enum Metric {
    public static let parleyEncodeMemWallFPS = "parley_encode_mem_wall_fps"
    public static let parleyEncodeMemCPUFPS = "parley_encode_mem_cpu_fps"
    public static let parleyEncodeFileWallFPS = "parley_encode_file_wall_fps"
    public static let parleyEncodeFileCPUFPS = "parley_encode_file_cpu_fps"
    public static let vpxencReportedFPS = "vpxenc_reported_fps"
    public static let vpxencProcessWallFPS = "vpxenc_process_wall_fps"
    public static let vpxencProcessCPUFPS = "vpxenc_process_cpu_fps"
    public static let parleyDecodeMemWallFPS = "parley_decode_mem_wall_fps"
    public static let parleyDecodeMemCPUFPS = "parley_decode_mem_cpu_fps"
    public static let parleyDecodeFileWallFPS = "parley_decode_file_wall_fps"
    public static let parleyDecodeFileCPUFPS = "parley_decode_file_cpu_fps"
    public static let vpxdecReportedFPS = "vpxdec_reported_fps"
    public static let vpxdecProcessWallFPS = "vpxdec_process_wall_fps"
    public static let vpxdecProcessCPUFPS = "vpxdec_process_cpu_fps"
    public static let parleyKbps = "parley_kbps"
    public static let parleyPSNRY = "parley_psnr_y"
    public static let parleyPSNR = "parley_psnr"
    public static let vpxencKbps = "vpxenc_kbps"
    public static let vpxencPSNRY = "vpxenc_psnr_y"
    public static let vpxencPSNR = "vpxenc_psnr"

    public static let parleyEncodeMemWallRT = "parley_encode_mem_wall_rt"
    public static let parleyEncodeMemCPURT = "parley_encode_mem_cpu_rt"
    public static let parleyEncodeFileWallRT = "parley_encode_file_wall_rt"
    public static let parleyEncodeFileCPURT = "parley_encode_file_cpu_rt"
    public static let opusencProcessWallRT = "opusenc_process_wall_rt"
    public static let opusencProcessCPURT = "opusenc_process_cpu_rt"
    public static let parleyDecodeMemWallRT = "parley_decode_mem_wall_rt"
    public static let parleyDecodeMemCPURT = "parley_decode_mem_cpu_rt"
    public static let parleyDecodeFileWallRT = "parley_decode_file_wall_rt"
    public static let parleyDecodeFileCPURT = "parley_decode_file_cpu_rt"
    public static let opusdecProcessWallRT = "opusdec_process_wall_rt"
    public static let opusdecProcessCPURT = "opusdec_process_cpu_rt"
    public static let parleySNR = "parley_snr"
    public static let opusencKbps = "opusenc_kbps"
    public static let opusencSNR = "opusenc_snr"

    public static let lossPSNRY = "loss_psnr_y"
    public static let lossPSNR = "loss_psnr"
    public static let framesDecoded = "frames_decoded"
    public static let framesFrozen = "frames_frozen"
    public static let keyframeRequests = "keyframe_requests"
    public static let packetsSent = "packets_sent"
    public static let packetsLost = "packets_lost"
    public static let snrFEC = "snr_fec"
    public static let snrPLC = "snr_plc"
    public static let recoveredByFEC = "recovered_by_fec"

    /// CSV column order.
    public static let all = [
        parleyEncodeMemWallFPS, parleyEncodeMemCPUFPS, parleyEncodeFileWallFPS, parleyEncodeFileCPUFPS,
        vpxencReportedFPS, vpxencProcessWallFPS, vpxencProcessCPUFPS,
        parleyDecodeMemWallFPS, parleyDecodeMemCPUFPS, parleyDecodeFileWallFPS, parleyDecodeFileCPUFPS,
        vpxdecReportedFPS, vpxdecProcessWallFPS, vpxdecProcessCPUFPS,
        parleyKbps, parleyPSNRY, parleyPSNR, vpxencKbps, vpxencPSNRY, vpxencPSNR,
        parleyEncodeMemWallRT, parleyEncodeMemCPURT, parleyEncodeFileWallRT, parleyEncodeFileCPURT,
        opusencProcessWallRT, opusencProcessCPURT,
        parleyDecodeMemWallRT, parleyDecodeMemCPURT, parleyDecodeFileWallRT, parleyDecodeFileCPURT,
        opusdecProcessWallRT, opusdecProcessCPURT, parleySNR, opusencKbps, opusencSNR,
        lossPSNRY, lossPSNR, framesDecoded, framesFrozen, keyframeRequests, packetsSent, packetsLost,
        snrFEC, snrPLC, recoveredByFEC,
    ]
}

/// Everything one `parley bench codec` run measured.
public struct CodecBenchReport: Sendable {
    public var options: CodecBenchOptions
    public var rows: [BenchRow] = []

    /// The scriptable lines: speed comparisons, then quality.
    public func summaryLines() -> [String] {
        var speed: [String] = [], quality: [String] = []
        let cpu = options.clock == .cpu
        for row in rows {
            switch row.kind {
            case .vp8:
                let enc = cpu ? (Metric.parleyEncodeFileCPUFPS, Metric.vpxencProcessCPUFPS)
                              : (Metric.parleyEncodeMemWallFPS, Metric.vpxencReportedFPS)
                let dec = cpu ? (Metric.parleyDecodeFileCPUFPS, Metric.vpxdecProcessCPUFPS)
                              : (Metric.parleyDecodeMemWallFPS, Metric.vpxdecReportedFPS)
                if let p = row.value(enc.0), let t = row.value(enc.1) {
                    speed.append(SummaryLine.video(operation: "encode", width: row.width, height: row.height,
                                                   frameRate: row.frameRate, kbps: row.targetKbps,
                                                   parleyFPS: p, tool: "vpxenc", toolFPS: t))
                }
                if let p = row.value(dec.0), let t = row.value(dec.1) {
                    speed.append(SummaryLine.video(operation: "decode", width: row.width, height: row.height,
                                                   frameRate: row.frameRate, kbps: row.targetKbps,
                                                   parleyFPS: p, tool: "vpxdec", toolFPS: t))
                }
                if let py = row.value(Metric.parleyPSNRY), let po = row.value(Metric.parleyPSNR),
                   let pk = row.value(Metric.parleyKbps) {
                    let tool = VideoQualityFigures(psnrY: row.value(Metric.vpxencPSNRY) ?? .nan,
                                                   psnrOverall: row.value(Metric.vpxencPSNR) ?? .nan,
                                                   achievedKbps: row.value(Metric.vpxencKbps) ?? .nan)
                    quality.append(SummaryLine.videoQuality(
                        width: row.width, height: row.height, frameRate: row.frameRate, kbps: row.targetKbps,
                        parley: VideoQualityFigures(psnrY: py, psnrOverall: po, achievedKbps: pk),
                        tool: "vpxenc", toolFigures: tool))
                }
            case .opus:
                let enc = cpu ? (Metric.parleyEncodeFileCPURT, Metric.opusencProcessCPURT)
                              : (Metric.parleyEncodeFileWallRT, Metric.opusencProcessWallRT)
                let dec = cpu ? (Metric.parleyDecodeFileCPURT, Metric.opusdecProcessCPURT)
                              : (Metric.parleyDecodeFileWallRT, Metric.opusdecProcessWallRT)
                if let p = row.value(enc.0), let t = row.value(enc.1) {
                    speed.append(SummaryLine.audio(operation: "encode", sampleRate: 48_000, channels: row.channels,
                                                   kbps: row.targetKbps, parleyRealtime: p, tool: "opusenc",
                                                   toolRealtime: t))
                }
                if let p = row.value(dec.0), let t = row.value(dec.1) {
                    speed.append(SummaryLine.audio(operation: "decode", sampleRate: 48_000, channels: row.channels,
                                                   kbps: row.targetKbps, parleyRealtime: p, tool: "opusdec",
                                                   toolRealtime: t))
                }
                if let ps = row.value(Metric.parleySNR), let pk = row.value(Metric.parleyKbps) {
                    quality.append(SummaryLine.audioQuality(
                        sampleRate: 48_000, channels: row.channels, kbps: row.targetKbps, parleySNR: ps,
                        parleyKbps: pk, tool: "opusenc", toolSNR: row.value(Metric.opusencSNR) ?? .nan,
                        toolKbps: row.value(Metric.opusencKbps) ?? .nan))
                }
            case .vp8Loss, .opusLoss:
                break
            }
        }
        return speed + quality
    }

    /// The loss round-trip table (empty without `--loss`).
    public func lossTable() -> [String] {
        let video = rows.filter { $0.kind == .vp8Loss }, audio = rows.filter { $0.kind == .opusLoss }
        var lines: [String] = []
        if !video.isEmpty {
            lines.append("vp8 loss round trip at \(video[0].width)x\(video[0].height) \(video[0].targetKbps)kbps, "
                + "keyframe on request after \(options.keyframeRequestDelayMilliseconds) ms "
                + "(PSNR of the shown picture, frozen frames count):")
            lines.append("  loss%   PSNR-Y   PSNR   decoded  frozen  kf-requests  pkts-lost/sent")
            for r in video {
                lines.append("  \(pad(fixed(r.lossPercent, 1), 5))  \(pad(fixed(r.value(Metric.lossPSNRY) ?? 0, 2), 7))"
                    + "  \(pad(fixed(r.value(Metric.lossPSNR) ?? 0, 2), 6))  \(pad(fixed(r.value(Metric.framesDecoded) ?? 0, 0), 7))"
                    + "  \(pad(fixed(r.value(Metric.framesFrozen) ?? 0, 0), 6))  \(pad(fixed(r.value(Metric.keyframeRequests) ?? 0, 0), 11))"
                    + "  \(fixed(r.value(Metric.packetsLost) ?? 0, 0))/\(fixed(r.value(Metric.packetsSent) ?? 0, 0))")
            }
        }
        if !audio.isEmpty {
            lines.append("opus loss round trip (SNR in dB; FEC = in-band FEC then PLC, PLC = concealment only):")
            lines.append("  loss%   SNR-FEC  SNR-PLC  fec-recovered  pkts-lost/sent")
            for r in audio {
                lines.append("  \(pad(fixed(r.lossPercent, 1), 5))  \(pad(fixed(r.value(Metric.snrFEC) ?? 0, 2), 7))"
                    + "  \(pad(fixed(r.value(Metric.snrPLC) ?? 0, 2), 7))  \(pad(fixed(r.value(Metric.recoveredByFEC) ?? 0, 0), 13))"
                    + "  \(fixed(r.value(Metric.packetsLost) ?? 0, 0))/\(fixed(r.value(Metric.packetsSent) ?? 0, 0))")
            }
        }
        return lines
    }

    /// One CSV row per run (bitrate or loss rate), all medians.
    public func csv() -> String {
        var out = "codec,width,height,fps,frames,channels,target_kbps,cpu_used,threads,loss_pct,"
            + Metric.all.joined(separator: ",") + "\n"
        for r in rows {
            var fields = [r.kind.rawValue, "\(r.width)", "\(r.height)", "\(r.frameRate)", "\(r.frames)", "\(r.channels)",
                          "\(r.targetKbps)", "\(r.cpuUsed)", "\(r.threads)", fixed(r.lossPercent, 1)]
            for m in Metric.all { fields.append(r.value(m).map { fixed($0, 3) } ?? "") }
            out += fields.joined(separator: ",") + "\n"
        }
        return out
    }
}

func pad(_ s: String, _ width: Int) -> String { String(repeating: " ", count: max(0, width - s.count)) + s }

extension CodecBenchReport {
    /// Every figure, labelled with what was timed (medians over repetitions).
    public func detailLines() -> [String] {
        var lines: [String] = []
        func f(_ row: BenchRow, _ key: String, _ digits: Int = 1) -> String { row.value(key).map { fixed($0, digits) } ?? "-" }
        for r in rows {
            switch r.kind {
            case .vp8:
                lines.append("vp8 \(r.width)x\(r.height)@\(r.frameRate) \(r.targetKbps)kbps cpu-used \(r.cpuUsed) "
                    + "threads \(r.threads), \(r.frames) frames, median of \(options.repetitions):")
                lines.append("  encode fps  codec calls, frames in memory: parley wall \(f(r, Metric.parleyEncodeMemWallFPS)) "
                    + "cpu \(f(r, Metric.parleyEncodeMemCPUFPS)) | vpxenc self-reported (wall) \(f(r, Metric.vpxencReportedFPS))")
                lines.append("  encode fps  file to file (Y4M in, IVF out):   parley wall \(f(r, Metric.parleyEncodeFileWallFPS)) "
                    + "cpu \(f(r, Metric.parleyEncodeFileCPUFPS)) | vpxenc process wall \(f(r, Metric.vpxencProcessWallFPS)) "
                    + "cpu \(f(r, Metric.vpxencProcessCPUFPS))")
                lines.append("  decode fps  codec calls, frames in memory: parley wall \(f(r, Metric.parleyDecodeMemWallFPS)) "
                    + "cpu \(f(r, Metric.parleyDecodeMemCPUFPS)) | vpxdec --summary (wall) \(f(r, Metric.vpxdecReportedFPS))")
                lines.append("  decode fps  file to null (IVF in, --noblit): parley wall \(f(r, Metric.parleyDecodeFileWallFPS)) "
                    + "cpu \(f(r, Metric.parleyDecodeFileCPUFPS)) | vpxdec process wall \(f(r, Metric.vpxdecProcessWallFPS)) "
                    + "cpu \(f(r, Metric.vpxdecProcessCPUFPS))")
            case .opus:
                lines.append("opus 48000Hz \(SummaryLine.channelLayout(r.channels)) \(r.targetKbps)kbps, "
                    + "median of \(options.repetitions) (x realtime):")
                lines.append("  encode  samples in memory: parley wall \(f(r, Metric.parleyEncodeMemWallRT)) cpu \(f(r, Metric.parleyEncodeMemCPURT))")
                lines.append("  encode  file to file (WAV in, Ogg out): parley wall \(f(r, Metric.parleyEncodeFileWallRT)) "
                    + "cpu \(f(r, Metric.parleyEncodeFileCPURT)) | opusenc process wall \(f(r, Metric.opusencProcessWallRT)) "
                    + "cpu \(f(r, Metric.opusencProcessCPURT))")
                lines.append("  decode  packets in memory: parley wall \(f(r, Metric.parleyDecodeMemWallRT)) cpu \(f(r, Metric.parleyDecodeMemCPURT))")
                lines.append("  decode  file to file (Ogg in, WAV out): parley wall \(f(r, Metric.parleyDecodeFileWallRT)) "
                    + "cpu \(f(r, Metric.parleyDecodeFileCPURT)) | opusdec process wall \(f(r, Metric.opusdecProcessWallRT)) "
                    + "cpu \(f(r, Metric.opusdecProcessCPURT))")
            case .vp8Loss, .opusLoss:
                break
            }
        }
        return lines
    }

    public func writeCSV(to path: String) throws(FileIOError) {
        let sink = try FileSink(path: path)
        try sink.write(Array(csv().utf8))
        sink.close()
    }
}
