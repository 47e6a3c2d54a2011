import Testing
@testable import CodecBench

@Suite struct SummaryLineTests {
    @Test func videoLinesHaveTheDocumentedForm() {
        #expect(SummaryLine.video(operation: "encode", width: 1280, height: 720, frameRate: 30, kbps: 1500,
                                  parleyFPS: 212.4, tool: "vpxenc", toolFPS: 215.0)
                == "vp8 encode 1280x720@30 1500kbps: parley 212.4 fps, vpxenc 215.0 fps, ratio 0.988")
        #expect(SummaryLine.video(operation: "decode", width: 1280, height: 720, frameRate: 30, kbps: 1500,
                                  parleyFPS: 812.0, tool: "vpxdec", toolFPS: 809.0)
                == "vp8 decode 1280x720@30 1500kbps: parley 812.0 fps, vpxdec 809.0 fps, ratio 1.004")
    }

    @Test func audioLinesHaveTheDocumentedForm() {
        #expect(SummaryLine.audio(operation: "encode", sampleRate: 48_000, channels: 2, kbps: 64,
                                  parleyRealtime: 140.2, tool: "opusenc", toolRealtime: 132.0)
                == "opus encode 48000Hz stereo 64kbps: parley 140.2x realtime, opusenc 132.0x realtime, ratio 1.062")
        #expect(SummaryLine.audio(operation: "decode", sampleRate: 48_000, channels: 1, kbps: 32,
                                  parleyRealtime: 500, tool: "opusdec", toolRealtime: 400)
                == "opus decode 48000Hz mono 32kbps: parley 500.0x realtime, opusdec 400.0x realtime, ratio 1.250")
    }

    @Test func ratioIsParleyOverToolAndRejectsNonsense() {
        #expect(SummaryLine.ratio(parley: 50, tool: 100) == 0.5)
        #expect(SummaryLine.ratio(parley: 300, tool: 100) == 3)
        #expect(SummaryLine.ratio(parley: 1, tool: 0) == nil)
        #expect(SummaryLine.ratio(parley: .nan, tool: 1) == nil)
        #expect(SummaryLine.ratio(parley: 1, tool: .infinity) == nil)
        #expect(SummaryLine.video(operation: "encode", width: 2, height: 2, frameRate: 1, kbps: 1,
                                  parleyFPS: 1, tool: "vpxenc", toolFPS: 0).hasSuffix("ratio n/a"))
    }

    @Test func fixedRoundsHalfAwayAndPads() {
        #expect(fixed(212.44, 1) == "212.4")
        #expect(fixed(0.98765, 3) == "0.988")
        #expect(fixed(2, 3) == "2.000")
        #expect(fixed(0.05, 1) == "0.1")
        #expect(fixed(-1.25, 1) == "-1.3")
        #expect(fixed(-0.01, 1) == "0.0")
        #expect(fixed(7.6, 0) == "8")
        #expect(fixed(.infinity, 2) == "inf")
        #expect(fixed(.nan, 2) == "nan")
    }

    @Test func medianOfOddAndEvenCounts() {
        #expect(VideoStatistics.median([3, 1, 2]) == 2)
        #expect(VideoStatistics.median([4, 1, 3, 2]) == 2.5)
        #expect(VideoStatistics.median([]) == nil)
        #expect(VideoStatistics.capped(.infinity) == VideoStatistics.psnrCap)
        #expect(VideoStatistics.capped(42) == 42)
    }

    @Test func toolFiguresAreParsedFromTheirOutput() {
        let vpxenc = "Pass 1/1 frame   59/58     44337B  181157 us 325.68 fps [ETA  0:00:00] 56.527\u{1b}[K"
            + "\rPass 1/1 frame   60/60     45920B    6122b/f  183680b/s  206119 us (291.09 fps)\u{1b}[K\n"
        #expect(VPXTools.parseVpxencFPS(vpxenc) == 291.09)
        #expect(VPXTools.parseVpxdecFPS("60 decoded frames/60 showed frames in 71126 us (843.57 fps)\n") == 843.57)
        #expect(VPXTools.parseVpxencFPS("Pass 1/1 frame 3/2 4995B 1906 us 1573.98 fps [ETA  0:00:00]") == nil)
    }

    @Test func reportPicksTheMetricsOfTheChosenClock() {
        var row = BenchRow(kind: .vp8)
        (row.width, row.height, row.frameRate, row.targetKbps) = (640, 480, 30, 1500)
        row.record(Metric.parleyEncodeFileCPUFPS, 100)
        row.record(Metric.parleyEncodeFileCPUFPS, 300)
        row.record(Metric.parleyEncodeFileCPUFPS, 200)
        row.record(Metric.vpxencProcessCPUFPS, 250)
        row.record(Metric.parleyEncodeMemWallFPS, 90)
        row.record(Metric.vpxencReportedFPS, 180)
        var options = CodecBenchOptions()
        options.clock = .cpu
        var report = CodecBenchReport(options: options, rows: [row])
        #expect(report.summaryLines() == ["vp8 encode 640x480@30 1500kbps: parley 200.0 fps, vpxenc 250.0 fps, ratio 0.800"])
        report.options.clock = .wall
        #expect(report.summaryLines() == ["vp8 encode 640x480@30 1500kbps: parley 90.0 fps, vpxenc 180.0 fps, ratio 0.500"])
    }

    @Test func csvHasOneRowPerRunAndAColumnPerMetric() {
        var a = BenchRow(kind: .vp8), b = BenchRow(kind: .vp8Loss)
        a.record(Metric.parleyPSNR, 40.123456)
        b.lossPercent = 5
        b.record(Metric.lossPSNR, 30)
        let csv = CodecBenchReport(options: CodecBenchOptions(), rows: [a, b]).csv()
        let lines = csv.split(separator: "\n")
        #expect(lines.count == 3)
        let columns = lines.map { $0.split(separator: ",", omittingEmptySubsequences: false).count }
        #expect(Set(columns).count == 1)
        #expect(lines[1].contains("40.123"))
        #expect(lines[2].hasPrefix("vp8-loss,"))
        #expect(lines[2].contains(",5.0,"))
    }
}
