#if canImport(Glibc)
import Glibc
#elseif canImport(Darwin)
import Darwin
#endif
import Codecs

/// Draws the report with gnuplot (Debian `gnuplot-nox`, PNG via the
/// built-in `png` terminal): rate–distortion (PSNR vs bitrate) and speed
/// (fps vs bitrate) for Parley and vpxenc, and with `--loss`, PSNR and SNR
/// vs loss rate.
public enum ReportPlot {
    /// The gnuplot script for `report`, reading the data files named in
    /// `dataFiles` (written by `write`). Exposed for tests.
    public static func script(for report: CodecBenchReport, output: String, speedData: String, lossData: String) -> String {
        let speedRows = report.rows.filter { $0.kind == .vp8 }
        let hasLoss = report.rows.contains { $0.kind == .vp8Loss || $0.kind == .opusLoss }
        let hasVideoLoss = report.rows.contains { $0.kind == .vp8Loss }
        let hasAudioLoss = report.rows.contains { $0.kind == .opusLoss }
        let panels = (speedRows.isEmpty ? 0 : 3) + (hasLoss ? 1 : 0)
        let size = panels == 4 ? "1200,900" : panels == 3 ? "1500,480" : "700,480"
        let layout = panels == 4 ? "2,2" : "1,\(max(1, panels))"
        let clock = report.options.clock == .cpu ? "CPU time, file to file" : "wall clock, codec calls only"
        var first = speedRows.first ?? BenchRow(kind: .vp8)
        if speedRows.isEmpty, let loss = report.rows.first(where: { $0.kind == .vp8Loss }) { first = loss }
        let title = "VP8 \(first.width)x\(first.height)@\(first.frameRate), cpu-used \(report.options.cpuUsed), "
            + "threads \(report.options.threads)"
        var s = """
        set terminal png size \(size) font ",11" noenhanced
        set output '\(output)'
        set datafile separator whitespace
        set grid
        set key top left
        set multiplot layout \(layout) title "parley bench codec: \(title)"

        """
        if !speedRows.isEmpty {
            s += """
            set title "Rate-distortion (PSNR vs achieved bitrate)"
            set xlabel "bitrate (kbit/s)"
            set ylabel "PSNR, all planes (dB)"
            plot '\(speedData)' using 2:3 with linespoints lw 4 pt 7 ps 1.5 title "Parley", \\
                 '' using 4:5 with linespoints lw 2 pt 6 ps 2.5 dt 2 title "vpxenc"
            set title "Speed (\(clock))"
            set xlabel "target bitrate (kbit/s)"
            set ylabel "frames per second"
            set logscale y
            plot '\(speedData)' using 1:6 with linespoints lw 3 pt 7 title "Parley encode", \\
                 '' using 1:7 with linespoints lw 2 pt 6 ps 2 dt 2 title "vpxenc", \\
                 '' using 1:8 with linespoints lw 3 pt 9 title "Parley decode", \\
                 '' using 1:9 with linespoints lw 2 pt 8 ps 2 dt 2 title "vpxdec"
            unset logscale y
            set title "Speed ratio Parley / tool (1 = same speed)"
            set ylabel "ratio"
            set yrange [0:*]
            plot '\(speedData)' using 1:($6/$7) with linespoints lw 3 pt 7 title "encode / vpxenc", \\
                 '' using 1:($8/$9) with linespoints lw 3 pt 9 title "decode / vpxdec", \\
                 1 with lines lc rgb "gray" dt 3 notitle
            set autoscale y

            """
        }
        if hasLoss {
            s += """
            set title "Loss round trip (RTP, keyframe requests / Opus FEC+PLC)"
            set xlabel "packet loss (%)"
            set ylabel "dB"
            set autoscale y
            set key top right

            """
            var plots: [String] = []
            if hasVideoLoss { plots.append("'\(lossData)' using 1:2 with linespoints lw 2 pt 7 title \"VP8 PSNR (shown picture)\"") }
            if hasAudioLoss {
                plots.append("'\(lossData)' using 1:3 with linespoints lw 2 pt 5 title \"Opus SNR, FEC+PLC\"")
                plots.append("'\(lossData)' using 1:4 with linespoints lw 2 pt 9 dt 2 title \"Opus SNR, PLC only\"")
            }
            s += "plot " + plots.joined(separator: ", \\\n     ") + "\n"
        }
        s += "unset multiplot\n"
        return s
    }

    /// Data rows for the speed panels: target kbps, Parley kbps, Parley PSNR,
    /// vpxenc kbps, vpxenc PSNR, Parley enc fps, vpxenc fps, Parley dec fps, vpxdec fps.
    public static func speedData(for report: CodecBenchReport) -> String {
        let cpu = report.options.clock == .cpu
        var out = "# target_kbps parley_kbps parley_psnr vpxenc_kbps vpxenc_psnr parley_enc_fps vpxenc_fps parley_dec_fps vpxdec_fps\n"
        for r in report.rows where r.kind == .vp8 {
            let cols: [Double?] = [
                Double(r.targetKbps), r.value(Metric.parleyKbps), r.value(Metric.parleyPSNR),
                r.value(Metric.vpxencKbps), r.value(Metric.vpxencPSNR),
                r.value(cpu ? Metric.parleyEncodeFileCPUFPS : Metric.parleyEncodeMemWallFPS),
                r.value(cpu ? Metric.vpxencProcessCPUFPS : Metric.vpxencReportedFPS),
                r.value(cpu ? Metric.parleyDecodeFileCPUFPS : Metric.parleyDecodeMemWallFPS),
                r.value(cpu ? Metric.vpxdecProcessCPUFPS : Metric.vpxdecReportedFPS),
            ]
            out += cols.map { $0.map { fixed($0, 3) } ?? "NaN" }.joined(separator: " ") + "\n"
        }
        return out
    }

    /// Data rows for the loss panel: loss %, VP8 PSNR, Opus SNR with FEC, Opus SNR PLC only.
    public static func lossData(for report: CodecBenchReport) -> String {
        var byRate: [Double: [Double?]] = [:]
        for r in report.rows where r.kind == .vp8Loss || r.kind == .opusLoss {
            var cols = byRate[r.lossPercent] ?? [nil, nil, nil]
            if r.kind == .vp8Loss { cols[0] = r.value(Metric.lossPSNR) } else {
                cols[1] = r.value(Metric.snrFEC)
                cols[2] = r.value(Metric.snrPLC)
            }
            byRate[r.lossPercent] = cols
        }
        var out = "# loss_pct vp8_psnr opus_snr_fec opus_snr_plc\n"
        for rate in byRate.keys.sorted() {
            out += ([fixed(rate, 2)] + (byRate[rate] ?? []).map { $0.map { fixed($0, 3) } ?? "NaN" })
                .joined(separator: " ") + "\n"
        }
        return out
    }

    /// Writes the data files next to `output` and runs gnuplot.
    public static func write(_ report: CodecBenchReport, to output: String) throws(CodecBenchError) {
        let speed = output + ".speed.dat", loss = output + ".loss.dat", script = output + ".gp"
        do {
            for (path, text) in [(speed, speedData(for: report)), (loss, lossData(for: report)),
                                 (script, Self.script(for: report, output: output, speedData: speed, lossData: loss))] {
                let sink = try FileSink(path: path)
                try sink.write(Array(text.utf8))
                sink.close()
            }
        } catch { throw .file(error) }
        defer { unlink(speed); unlink(loss); unlink(script) }
        let directory = output.split(separator: "/", omittingEmptySubsequences: false).dropLast().joined(separator: "/")
        do { _ = try Tool.run("gnuplot", [script], workDirectory: directory.isEmpty ? "." : directory) }
        catch { throw .tool(error) }
    }
}
