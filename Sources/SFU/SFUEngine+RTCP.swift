import PeerSession
import RTCBase
import RTP

extension SFUEngine {
    // MARK: - RTCP in

    /// An SRTCP compound, decrypted. From a publisher: sender reports (for
    /// our reports and the subscribers' SR mapping). From a subscriber:
    /// receiver reports, NACKs (answered from the cache), PLI/FIR (passed to
    /// the publisher), REMB and transport-cc (kept for the estimator).
    func receiveRTCP(_ bytes: UnsafeRawBufferPointer, on session: Session, now: Instant, output: inout some SFUOutput) {
        var iterator = RTCPCompoundIterator(bytes)
        while true {
            let next: RTCPPacketView?
            do {
                next = try iterator.next()
            } catch {
                counters.malformedRTCP += 1
                return
            }
            guard let p = next else { return }
            if session.role == .publish {
                publisherRTCP(p, from: session.participant, now: now)
            } else {
                subscriberRTCP(p, session: session, now: now, output: &output)
            }
        }
    }

    private func publisherRTCP(_ p: RTCPPacketView, from publisher: Participant, now: Instant) {
        guard p.packetType == RTCPPacketType.senderReport, p.body.count >= 24 else { return }
        let ssrc = UInt32(bigEndian: p.body.loadUnaligned(fromByteOffset: 0, as: UInt32.self))
        let ntp = UInt64(bigEndian: p.body.loadUnaligned(fromByteOffset: 4, as: UInt64.self))
        let rtp = UInt32(bigEndian: p.body.loadUnaligned(fromByteOffset: 12, as: UInt32.self))
        guard let ref = publisher.sourceBySSRC[ssrc], !ref.isRTX else { return }
        let layer = ref.track.layers[ref.layer]
        layer.senderReport = (ntp, rtp, now)
        layer.stats.senderReport(ntp: ntp, at: now)
    }

    private func subscriberRTCP(_ p: RTCPPacketView, session: Session, now: Instant, output: inout some SFUOutput) {
        let subscriber = session.participant
        switch (p.packetType, p.count) {
        case (RTCPPacketType.receiverReport, _), (RTCPPacketType.senderReport, _):
            readReportBlocks(p, subscriber: subscriber, now: now)
        case (RTCPPacketType.transportFeedback, RTCPGenericNACK.format):
            guard p.body.count >= 8 else {
                counters.malformedRTCP += 1
                return
            }
            let media = UInt32(bigEndian: p.body.loadUnaligned(fromByteOffset: 4, as: UInt32.self))
            guard let stream = subscriber.streamBySSRC[media] else { return }
            do {
                try RTCPGenericNACK.forEachLost(in: p) { seq in
                    retransmit(seq, of: stream, session: session, now: now, output: &output)
                }
            } catch {
                counters.malformedRTCP += 1
            }
        case (RTCPPacketType.payloadFeedback, RTCPPictureLossIndication.format):
            guard p.body.count >= 8 else {
                counters.malformedRTCP += 1
                return
            }
            counters.pliReceived += 1
            let media = UInt32(bigEndian: p.body.loadUnaligned(fromByteOffset: 4, as: UInt32.self))
            if let stream = subscriber.streamBySSRC[media] {
                requestKeyframe(stream.track, layer: stream.layerIndex, now: now, output: &output)
            }
        case (RTCPPacketType.payloadFeedback, RTCPFullIntraRequest.format):
            // RFC 5104 §4.3.1: FCI entries of 8 bytes, each naming a media SSRC.
            counters.firReceived += 1
            var offset = 8
            while offset + 8 <= p.body.count {
                let media = UInt32(bigEndian: p.body.loadUnaligned(fromByteOffset: offset, as: UInt32.self))
                if let stream = subscriber.streamBySSRC[media] {
                    requestKeyframe(stream.track, layer: stream.layerIndex, now: now, output: &output)
                }
                offset += 8
            }
        default:
            // SDES, BYE, REMB and transport-cc from subscribers: nothing to do yet.
            break
        }
    }

    private func readReportBlocks(_ p: RTCPPacketView, subscriber: Participant, now: Instant) {
        // SR: 24 bytes of sender info after the SSRC; RR: just the SSRC.
        var offset = p.packetType == RTCPPacketType.senderReport ? 24 : 4
        var remaining = Int(p.count)
        while remaining > 0, offset + 24 <= p.body.count {
            let ssrc = UInt32(bigEndian: p.body.loadUnaligned(fromByteOffset: offset, as: UInt32.self))
            if let stream = subscriber.streamBySSRC[ssrc] {
                stream.fractionLost = p.body[offset + 4]
                stream.jitter = UInt32(bigEndian: p.body.loadUnaligned(fromByteOffset: offset + 12, as: UInt32.self))
                let lsr = UInt32(bigEndian: p.body.loadUnaligned(fromByteOffset: offset + 16, as: UInt32.self))
                let dlsr = UInt32(bigEndian: p.body.loadUnaligned(fromByteOffset: offset + 20, as: UInt32.self))
                if lsr != 0 {
                    // RFC 3550 §6.4.1: RTT = A - LSR - DLSR in 1/65536 s.
                    let a = UInt32(truncatingIfNeeded: ntp(now) >> 16)
                    let rtt = a &- lsr &- dlsr
                    if rtt < 65536 * 10 { stream.roundTrip = .nanoseconds(Int64(rtt) * 1_000_000_000 / 65536) }
                }
            }
            offset += 24
            remaining -= 1
        }
    }

    /// Answers one NACKed sequence number from the source's cache: as RTX
    /// when negotiated (RFC 4588 §4: own SSRC and sequence numbers, the
    /// original sequence number first), else the packet again.
    private func retransmit(_ outSeq: UInt16, of stream: ForwardedStream, session: Session, now: Instant,
                            output: inout some SFUOutput) {
        counters.nackRequested += 1
        let second = now.nanoseconds / 1_000_000_000
        if stream.budgetSecond != second {
            stream.budgetSecond = second
            stream.retransmitBudget = 0
        }
        let layer = stream.track.layers[stream.layerIndex]
        guard stream.retransmitBudget < 500, let destination = session.transport.selectedRemote,
              let sourceSeq = stream.rewriter.sourceSequence(forOutput: outSeq),
              let cached = layer.cache?.packet(sourceSeq), let header = try? RTPHeaderView(cached),
              header.ssrc == stream.rewriter.sourceSSRC else {
            counters.retransmissionMisses += 1
            return
        }
        stream.retransmitBudget += 1
        let timestamp = stream.rewriter.outputTimestamp(forSource: header.timestamp)
        if stream.useRTX, let rtxPT = stream.rtxPayloadType {
            stream.rtxSequence &+= 1
            send(stream, session: session, to: destination, marker: header.marker, payloadType: rtxPT, ssrc: stream.rtxSSRC,
                 sequence: stream.rtxSequence, timestamp: timestamp, audioLevel: nil, prefix: outSeq,
                 payload: header.payload, updatePictureID: false, now: now, output: &output)
        } else {
            send(stream, session: session, to: destination, marker: header.marker, payloadType: stream.payloadType,
                 ssrc: stream.ssrc, sequence: outSeq, timestamp: timestamp, audioLevel: nil, prefix: nil,
                 payload: header.payload, updatePictureID: false, now: now, output: &output)
        }
        counters.retransmitted += 1
    }

    // MARK: - RTCP out

    /// NTP time (RFC 3550 §4) at `now`.
    func ntp(_ now: Instant) -> UInt64 {
        let ns = UInt64(max(0, now.nanoseconds))
        let seconds = ns / 1_000_000_000
        let fraction = (ns % 1_000_000_000) << 32 / 1_000_000_000
        return configuration.ntpAtZero &+ (seconds << 32 | fraction)
    }

    /// Per participant, on the engine's 20 ms tick: NACKs for the
    /// publisher's losses at once, transport-cc feedback every 100 ms,
    /// keyframe retries, and once a second RR + REMB to the publisher and
    /// SR + SDES for every forwarded stream.
    func periodicRTCP(_ p: Participant, now: Instant, output: inout some SFUOutput) {
        if let session = p.publish, session.transport.state == .connected,
           let destination = session.transport.selectedRemote {
            for track in p.tracks {
                for layer in track.layers {
                    guard let ssrc = layer.ssrc else { continue }
                    let missing = layer.nack.due(now: now)
                    if !missing.isEmpty {
                        counters.nacksSent += 1
                        sendRTCP([.genericNACK(RTCPGenericNACK(senderSSRC: session.rtcpSSRC, mediaSSRC: ssrc, missing: missing))],
                                 on: session, to: destination, output: &output)
                    }
                }
                // A subscriber still waiting for a keyframe asks again.
                if track.kind == .video, track.streams.contains(where: {
                    $0.needsKeyframe && $0.negotiated && $0.subscriber.subscribe?.transport.state == .connected
                }) {
                    let layer = track.layers[track.preferredLayer]
                    if layer.lastKeyframeRequest.map({ now - $0 >= .seconds(1) }) ?? true {
                        requestKeyframe(track, layer: track.preferredLayer, now: now, output: &output)
                    }
                }
            }
            if p.nextFeedback.map({ now >= $0 }) ?? true {
                p.nextFeedback = now + .milliseconds(100)
                if let mediaSSRC = p.tracks.first?.layers.first?.ssrc,
                   let fb = p.twcc.feedback(senderSSRC: session.rtcpSSRC, mediaSSRC: mediaSSRC) {
                    counters.transportFeedbackSent += 1
                    sendRTCP([.transportFeedback(fb)], on: session, to: destination, output: &output)
                }
            }
        }
        guard p.nextReport.map({ now >= $0 }) ?? true else { return }
        p.nextReport = now + .seconds(1)
        if let session = p.publish, session.transport.state == .connected,
           let destination = session.transport.selectedRemote {
            publisherReports(p, session: session, to: destination, now: now, output: &output)
        }
        if let session = p.subscribe, session.transport.state == .connected,
           let destination = session.transport.selectedRemote {
            subscriberReports(p, session: session, to: destination, now: now, output: &output)
        }
    }

    /// RR for every source SSRC (RFC 3550 §6.4.2) and a REMB estimate
    /// (draft-alvestrand-rmcat-remb): a loss-based one, raised while the
    /// link is clean and lowered when the publisher loses more than 10 %.
    private func publisherReports(_ p: Participant, session: Session, to destination: TransportAddress, now: Instant,
                                  output: inout some SFUOutput) {
        var blocks: [RTCPReportBlock] = []
        var ssrcs: [SSRC] = []
        var worstLoss: UInt8 = 0
        for track in p.tracks {
            for layer in track.layers {
                guard let ssrc = layer.ssrc, layer.stats.received > 0 else { continue }
                let block = layer.stats.reportBlock(ssrc: ssrc, now: now)
                worstLoss = max(worstLoss, block.fractionLost)
                blocks.append(block)
                ssrcs.append(ssrc)
            }
        }
        guard !blocks.isEmpty else { return }
        if let start = p.windowStart {
            let seconds = max(0.001, Double((now - start).nanoseconds) / 1e9)
            p.incomingBitrate = Double(p.bytesInWindow * 8) / seconds
        }
        p.windowStart = now
        p.bytesInWindow = 0
        let lo = Double(configuration.minPublisherBitrate)
        let hi = Double(configuration.maxPublisherBitrate)
        var estimate = p.estimate == 0 ? hi : Double(p.estimate)
        if worstLoss > 25 {  // > 10 % lost
            estimate = max(lo, min(estimate, p.incomingBitrate) * 0.85)
        } else if worstLoss < 5 {  // < 2 %: probe upwards
            estimate = min(hi, max(estimate, p.incomingBitrate) * 1.08 + 10_000)
        }
        p.estimate = UInt64(estimate)
        var packets: [RTCPPacket] = []
        for chunk in stride(from: 0, to: blocks.count, by: 31) {
            packets.append(.receiverReport(RTCPReceiverReport(ssrc: session.rtcpSSRC,
                                                              reports: Array(blocks[chunk..<min(chunk + 31, blocks.count)]))))
        }
        packets.append(.receiverEstimatedMaxBitrate(RTCPReceiverEstimatedMaxBitrate(senderSSRC: session.rtcpSSRC,
                                                                                     bitrate: p.estimate, ssrcs: ssrcs)))
        counters.receiverReportsSent += 1
        counters.rembSent += 1
        sendRTCP(packets, on: session, to: destination, output: &output)
    }

    /// SR for every forwarded stream that sent something (RFC 3550 §6.4.1),
    /// with the RTP time that matches the NTP time: from the publisher's own
    /// SR when there is one (so audio and video of one publisher stay in
    /// sync at the subscriber), else from the last forwarded packet.
    private func subscriberReports(_ p: Participant, session: Session, to destination: TransportAddress, now: Instant,
                                   output: inout some SFUOutput) {
        var packets: [RTCPPacket] = []
        var chunks: [RTCPSourceDescription.Chunk] = []
        for case let stream? in p.lineStreams where stream.negotiated && stream.packetsSent > 0 {
            let track = stream.track
            let layer = track.layers[min(stream.layerIndex, track.layers.count - 1)]
            let rate = Int64(track.clockRate)
            let ntpTime: UInt64
            let rtpTime: UInt32
            if let sr = layer.senderReport, sr.rtp != 0 || sr.ntp != 0, stream.rewriter.sourceSSRC == layer.ssrc {
                let elapsed = (now - sr.at).nanoseconds
                ntpTime = sr.ntp &+ UInt64(max(0, elapsed)) << 32 / 1_000_000_000
                rtpTime = stream.rewriter.outputTimestamp(forSource: sr.rtp &+ UInt32(truncatingIfNeeded: elapsed / 1000 * rate / 1_000_000))
            } else if let at = stream.rewriter.lastForwardedAt {
                let elapsed = (now - at).nanoseconds
                ntpTime = ntp(now)
                rtpTime = stream.rewriter.lastTimestamp &+ UInt32(truncatingIfNeeded: elapsed / 1000 * rate / 1_000_000)
            } else {
                continue
            }
            packets.append(.senderReport(RTCPSenderReport(ssrc: stream.ssrc, ntpTimestamp: ntpTime, rtpTimestamp: rtpTime,
                                                          packetCount: stream.packetsSent, octetCount: stream.octetsSent)))
            chunks.append(RTCPSourceDescription.Chunk(source: stream.ssrc,
                                                      items: [.init(type: .cname, text: Self.cname)]))
        }
        // A compound stays well under the MTU: 16 SRs (28 bytes each) and
        // their SDES chunks per datagram.
        for start in stride(from: 0, to: packets.count, by: 16) {
            let end = min(start + 16, packets.count)
            var compound = Array(packets[start..<end])
            compound.append(.sourceDescription(RTCPSourceDescription(chunks: Array(chunks[start..<end]))))
            counters.senderReportsSent += end - start
            sendRTCP(compound, on: session, to: destination, output: &output)
        }
    }
}
