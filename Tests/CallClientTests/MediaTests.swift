@testable import CallClient
import RTCBase
import RTP
import SDP
import Testing

@Suite struct MediaRoundTripTests {
    /// Sender → receiver with nothing in between: every frame decodes.
    @Test func packetizeDepacketizeDecode() throws {
        let sender = try makeSender(screen: true)
        let receiver = MediaReceiver(rtcpSSRC: SSRC(7), cname: "r", clock: Fixtures.clock)
        receiver.callStartedAt = Fixtures.start
        receiver.configure(lines: lines(mirroring: sender), now: Fixtures.start)
        var packets = 0
        run(sender, for: .seconds(1)) { p, now in
            packets += 1
            receiver.handleRTP(p, now: now)
        }
        let stats = Dictionary(uniqueKeysWithValues: receiver.stats().map { ($0.trackID, $0) })
        let mic = try #require(stats["microphone"]), cam = try #require(stats["camera"]), screen = try #require(stats["screen"])
        #expect(mic.framesDecoded >= 49 && mic.framesDecoded <= 51)
        #expect(cam.framesDecoded >= 29 && cam.framesDecoded <= 31)
        #expect(screen.framesDecoded >= 9 && screen.framesDecoded <= 11)
        #expect(cam.width == 160 && cam.height == 96 && screen.width == 192 && screen.height == 108)
        #expect(cam.keyframesDecoded == 1 && cam.decodeErrors == 0 && cam.framesDropped == 0)
        #expect(cam.packetsLost == 0 && mic.packetsLost == 0)
        #expect(cam.nonblankFrames > 0 && screen.nonblankFrames > 0 && mic.nonblankFrames > 0)
        #expect(cam.timeToFirstFrameMs == 0)
        #expect(receiver.unroutablePackets == 0)
        let sent = sender.stats(now: Fixtures.start + .seconds(1))
        #expect(sent.reduce(0) { $0 + $1.packetsSent } == packets)
        #expect(sent[1].framesEncoded == cam.framesDecoded && sent[1].keyframesEncoded == 1)
        // Timestamps follow the clock: 3000 ticks per 30 fps frame.
        var cameraTimestamps: [UInt32] = []
        run(sender, from: Fixtures.start + .seconds(1), for: .milliseconds(100)) { p, _ in
            if let r = p.rtp, r.header.ssrc == sender.streams[1].ssrc, r.header.marker { cameraTimestamps.append(r.header.timestamp) }
        }
        #expect(zip(cameraTimestamps, cameraTimestamps.dropFirst()).allSatisfy { $1 &- $0 == 3000 })
    }

    /// Every packet carries the mid and a transport-wide sequence number
    /// counting across streams.
    @Test func headerExtensions() throws {
        let sender = try makeSender()
        var twcc: [UInt16] = []
        run(sender, for: .milliseconds(200)) { p, _ in
            p.withUnsafeBytes { b in
                guard let h = try? RTPHeaderView(b) else { return }
                let mid = h.extensionElement(id: PublishExtensionID.mid).map { String(decoding: $0.value, as: UTF8.self) }
                #expect(mid == (h.ssrc == sender.streams[0].ssrc ? "0" : "1"))
                if let seq = h.transportSequenceNumber(id: PublishExtensionID.transportCC) { twcc.append(seq) }
            }
        }
        #expect(!twcc.isEmpty && zip(twcc, twcc.dropFirst()).allSatisfy { $1 == $0 &+ 1 })
    }

    /// Routing by mid extension when the SSRC is not in the offer.
    @Test func routesUnknownSSRCByMid() throws {
        let sender = try makeSender()
        let receiver = MediaReceiver(rtcpSSRC: SSRC(7), cname: "r")
        var l = lines(mirroring: sender)
        l[1].ssrc = SSRC(1)  // the offer named another SSRC
        l[1].rtxSSRC = nil
        receiver.configure(lines: l, now: Fixtures.start)
        run(sender, for: .milliseconds(500)) { p, now in receiver.handleRTP(p, now: now) }
        let cam = try #require(receiver.stats().first { $0.kind == "video" })
        #expect(cam.framesDecoded >= 14)
    }
}

@Suite struct RTCPHandlingTests {
    @Test func pliMakesTheNextFrameAKeyframe() throws {
        let sender = try makeSender()
        let camera = sender.streams[1]
        var keyframes = 0
        var now = run(sender, for: .milliseconds(300)) { p, _ in if isVP8Keyframe(p) { keyframes += 1 } }
        #expect(keyframes == 1)  // the first frame only
        let pli = rtcp([.pictureLossIndication(RTCPPictureLossIndication(senderSSRC: SSRC(5), mediaSSRC: camera.ssrc))])
        #expect(sender.handleRTCP(pli, now: now).isEmpty)
        var firstAfter: Bool?
        now = run(sender, from: now, for: .milliseconds(100)) { p, _ in
            if firstAfter == nil, p.rtp?.header.ssrc == camera.ssrc { firstAfter = isVP8Keyframe(p) }
        }
        #expect(firstAfter == true)
        let stats = sender.stats(now: now)[1]
        #expect(stats.plisReceived == 1 && stats.keyframesEncoded == 2)

        // FIR names the SSRC in its FCI (RFC 5104 §4.3.1).
        let fir = rtcp([.fullIntraRequest(RTCPFullIntraRequest(senderSSRC: SSRC(5), entries: [.init(ssrc: camera.ssrc, sequenceNumber: 1)]))])
        _ = sender.handleRTCP(fir, now: now)
        firstAfter = nil
        run(sender, from: now, for: .milliseconds(100)) { p, _ in
            if firstAfter == nil, p.rtp?.header.ssrc == camera.ssrc { firstAfter = isVP8Keyframe(p) }
        }
        #expect(firstAfter == true)
    }

    @Test func nackIsAnsweredWithRTX() throws {
        let sender = try makeSender()
        let camera = sender.streams[1]
        var sent: [[UInt8]] = []
        let now = run(sender, for: .milliseconds(200)) { p, _ in if p.rtp?.header.ssrc == camera.ssrc { sent.append(p) } }
        let original = try #require(sent[3].rtp)
        let lost = original.header.sequenceNumber.rawValue
        let nack = rtcp([.genericNACK(RTCPGenericNACK(senderSSRC: SSRC(5), mediaSSRC: camera.ssrc, missing: [lost]))])
        let repairs = sender.handleRTCP(nack, now: now)
        #expect(repairs.count == 1)
        let rtx = try #require(repairs.first?.rtp)
        // RFC 4588 §4: RTX SSRC and payload type, OSN first, same timestamp.
        #expect(rtx.header.ssrc == camera.rtxSSRC && rtx.header.payloadType == pt(97))
        #expect(rtx.header.timestamp == original.header.timestamp)
        #expect(Array(rtx.payload.prefix(2)) == [UInt8(lost >> 8), UInt8(lost & 0xFF)])
        #expect(Array(rtx.payload.dropFirst(2)) == original.payload)
        // A duplicate NACK right away is not answered twice.
        #expect(sender.handleRTCP(nack, now: now + .milliseconds(1)).isEmpty)
        // Unknown (too old) sequence numbers are ignored.
        let old = rtcp([.genericNACK(RTCPGenericNACK(senderSSRC: SSRC(5), mediaSSRC: camera.ssrc, missing: [lost &- 2000]))])
        #expect(sender.handleRTCP(old, now: now).isEmpty)
        let stats = sender.stats(now: now)[1]
        #expect(stats.nacksReceived == 3 && stats.retransmittedPackets == 1)
    }

    @Test func nackWithoutRTXResendsThePacket() throws {
        let sender = try makeSender(rtx: false)
        let camera = sender.streams[1]
        var sent: [[UInt8]] = []
        let now = run(sender, for: .milliseconds(100)) { p, _ in if p.rtp?.header.ssrc == camera.ssrc { sent.append(p) } }
        let lost = try #require(sent[1].rtp).header.sequenceNumber.rawValue
        let repairs = sender.handleRTCP(rtcp([.genericNACK(RTCPGenericNACK(senderSSRC: SSRC(5), mediaSSRC: camera.ssrc,
                                                                            missing: [lost]))]), now: now)
        #expect(repairs == [sent[1]])
    }

    @Test func rembLowersTheEncoderTarget() throws {
        let sender = try makeSender()
        let mid = sender.streams[1].mid
        #expect(sender.targetBitratesKbps[mid] == 300)
        _ = sender.handleRTCP(rtcp([.receiverEstimatedMaxBitrate(RTCPReceiverEstimatedMaxBitrate(
            senderSSRC: SSRC(5), bitrate: 200_000, ssrcs: sender.streams.map(\.ssrc)))]), now: Fixtures.start)
        // 90 % of the estimate, less audio: 180 − 32 kbit/s.
        #expect(sender.targetBitratesKbps[mid] == 148)
        // A higher estimate never lifts it past what was configured.
        _ = sender.handleRTCP(rtcp([.receiverEstimatedMaxBitrate(RTCPReceiverEstimatedMaxBitrate(
            senderSSRC: SSRC(5), bitrate: 5_000_000, ssrcs: []))]), now: Fixtures.start)
        #expect(sender.targetBitratesKbps[mid] == 300)
        #expect(sender.stats(now: Fixtures.start)[1].rembKbps == 5000)
    }

    /// Our SR, echoed by the SFU's RR as LSR/DLSR, gives the RTT (RFC 3550 §6.4.1).
    @Test func receiverReportGivesRTT() throws {
        let sender = try makeSender()
        let now = run(sender, for: .milliseconds(100)) { _, _ in }
        let sr = try #require(sender.senderReport(now: now))
        let packets = try RTCPCompound.parse(sr)
        guard case .senderReport(let report) = packets[0] else {
            Issue.record("no SR first: \(packets)")
            return
        }
        #expect(packets.contains { if case .sourceDescription = $0 { true } else { false } })
        let lsr = UInt32(truncatingIfNeeded: report.ntpTimestamp >> 16)
        let dlsr = UInt32(65536 / 100)  // the SFU held it 10 ms
        let rr = rtcp([.receiverReport(RTCPReceiverReport(ssrc: SSRC(5), reports: [
            RTCPReportBlock(ssrc: sender.streams[1].ssrc, fractionLost: 64, cumulativeLost: 12, jitter: 900,
                            lastSenderReport: lsr, delaySinceLastSenderReport: dlsr),
        ]))])
        _ = sender.handleRTCP(rr, now: now + .milliseconds(30))
        let rtt = try #require(sender.roundTrip)
        #expect(abs(Double(rtt.nanoseconds) / 1e6 - 20) < 0.2)
        let camera = sender.stats(now: now)[1]
        #expect(camera.fractionLostPercent == 25 && camera.packetsLostReported == 12 && camera.jitterMs == 10)
    }
}

@Suite struct ReceiverFeedbackTests {
    /// A lost packet is NACKed; the RTX repair fills the hole and the frame decodes.
    @Test func lossIsNackedAndRepaired() throws {
        let sender = try makeSender()
        let receiver = MediaReceiver(rtcpSSRC: SSRC(7), cname: "r")
        receiver.configure(lines: lines(mirroring: sender), now: Fixtures.start)
        let camera = sender.streams[1]
        var dropped: UInt16?
        var videoPackets = 0
        var now = run(sender, for: .milliseconds(500)) { p, now in
            if p.rtp?.header.ssrc == camera.ssrc {
                videoPackets += 1
                if videoPackets == 12, dropped == nil {
                    dropped = p.rtp?.header.sequenceNumber.rawValue
                    return
                }
            }
            receiver.handleRTP(p, now: now)
        }
        let lost = try #require(dropped)
        // The first feedback carries the RR (and SDES) and the NACK.
        let feedback = try #require(receiver.feedback(now: now))
        let parsed = try RTCPCompound.parse(feedback)
        let nack = parsed.compactMap { if case .genericNACK(let n) = $0 { n } else { nil } }.first
        #expect(nack?.mediaSSRC == camera.ssrc && nack?.lostSequenceNumbers == [lost])
        guard case .receiverReport(let rr) = parsed.first else {
            Issue.record("feedback does not start with RR: \(parsed)")
            return
        }
        let block = try #require(rr.reports.first { $0.ssrc == camera.ssrc })
        #expect(block.cumulativeLost == 1)

        for repair in sender.handleRTCP(feedback, now: now) { receiver.handleRTP(repair, now: now) }
        now += .milliseconds(5)
        run(sender, from: now, for: .milliseconds(100)) { p, now in receiver.handleRTP(p, now: now) }
        let stats = try #require(receiver.stats().first { $0.kind == "video" })
        #expect(stats.retransmissionsReceived == 1)
        #expect(stats.packetsLost == 0)
        #expect(stats.framesDropped == 0 && stats.decodeErrors == 0)
        #expect(stats.framesDecoded >= 17)
        #expect(stats.nacksSent == 1)
    }

    /// Joining mid-stream (no keyframe yet): the decoder asks for one, and
    /// not more often than `pliInterval`.
    @Test func decodeErrorSendsPLI() throws {
        let sender = try makeSender()
        let receiver = MediaReceiver(rtcpSSRC: SSRC(7), cname: "r")
        receiver.configure(lines: lines(mirroring: sender), now: Fixtures.start)
        let camera = sender.streams[1]
        // Skip the first (key) frame: everything after is undecodable.
        var now = run(sender, for: .milliseconds(40)) { _, _ in }
        now = run(sender, from: now, for: .milliseconds(200)) { p, now in receiver.handleRTP(p, now: now) }
        func plis(_ bytes: [UInt8]?) throws -> [RTCPPictureLossIndication] {
            guard let bytes else { return [] }
            return try RTCPCompound.parse(bytes).compactMap { if case .pictureLossIndication(let p) = $0 { p } else { nil } }
        }
        let first = try plis(receiver.feedback(now: now))
        #expect(first.map(\.mediaSSRC) == [camera.ssrc])
        now = run(sender, from: now, for: .milliseconds(100)) { p, now in receiver.handleRTP(p, now: now) }
        #expect(try plis(receiver.feedback(now: now)).isEmpty, "rate-limited")
        let stats = try #require(receiver.stats().first { $0.kind == "video" })
        #expect(stats.decodeErrors > 0 && stats.framesDecoded == 0 && stats.plisSent == 1)

        // The PLI reaches the sender: a keyframe follows and decoding starts.
        _ = sender.handleRTCP(rtcp(first.map { .pictureLossIndication($0) }), now: now)
        run(sender, from: now, for: .milliseconds(200)) { p, now in receiver.handleRTP(p, now: now) }
        let after = try #require(receiver.stats().first { $0.kind == "video" })
        #expect(after.framesDecoded >= 5 && after.keyframesDecoded == 1)
    }

    @Test func senderReportIsEchoedInReceiverReport() throws {
        let sender = try makeSender()
        let receiver = MediaReceiver(rtcpSSRC: SSRC(7), cname: "r")
        receiver.configure(lines: lines(mirroring: sender), now: Fixtures.start)
        let now = run(sender, for: .milliseconds(100)) { p, now in receiver.handleRTP(p, now: now) }
        let sr = try #require(sender.senderReport(now: now))
        receiver.handleRTCP(sr, now: now)
        let feedback = try RTCPCompound.parse(try #require(receiver.feedback(now: now + .milliseconds(250))))
        guard case .receiverReport(let rr) = feedback.first else {
            Issue.record("no RR")
            return
        }
        let packets = try RTCPCompound.parse(sr)
        guard case .senderReport(let report) = packets.first else { return }
        let block = try #require(rr.reports.first { $0.ssrc == report.ssrc })
        #expect(block.lastSenderReport == UInt32(truncatingIfNeeded: report.ntpTimestamp >> 16))
        #expect(block.delaySinceLastSenderReport == 65536 / 4)
        #expect(receiver.senderReportsReceived == 2)  // audio and video
    }
}

@Suite struct StatisticsTests {
    @Test func roundTripFromReportBlock() throws {
        let clock = Fixtures.clock
        let sentAt = Instant.seconds(50)
        let lsr = clock.compact(sentAt)
        let rtt = try #require(clock.roundTrip(lastSenderReport: lsr, delay: 65536 / 2, now: sentAt + .milliseconds(540)))
        #expect(abs(Double(rtt.nanoseconds) / 1e6 - 40) < 0.1)
        #expect(clock.roundTrip(lastSenderReport: 0, delay: 0, now: sentAt) == nil)
    }
}
