// parley-echo-peer: a minimal headless WebRTC peer for interop checks.
//
// It binds one UDP socket, answers one SDP offer read from stdin as an
// ICE-lite, DTLS-SRTP endpoint, and echoes every RTP packet it decrypts back
// to the sender, re-protected and otherwise unchanged (the peer routes it by
// mid extension / payload type). JSON lines on stdout:
//   {"type":"ready","port":N}
//   {"type":"answer","sdp":"..."}
//   {"type":"stats",...}          every second and on exit
// It exits on stdin EOF or SIGTERM.
//
// This file is the IO edge: the only place that owns the socket and reads
// the clock. The transport itself (PeerSession) is sans-IO.

import DTLS
import Dispatch
import Foundation
import ICE
import NIOCore
import NIOPosix
import PeerSession
import RTCBase
import SDP

@main
struct EchoPeerMain {
    static func main() throws {
        var host = "127.0.0.1"
        var port = 0
        var arguments = CommandLine.arguments.dropFirst()
        while let argument = arguments.popFirst() {
            switch argument {
            case "--host": host = arguments.popFirst() ?? host
            case "--port": port = arguments.popFirst().flatMap { Int($0) } ?? port
            default:
                FileHandle.standardError.write(Data("usage: parley-echo-peer [--host H] [--port P]\n".utf8))
                exit(2)
            }
        }

        let group = MultiThreadedEventLoopGroup(numberOfThreads: 1)
        let loop = group.next()
        let peer = try EchoPeer(loop: loop)
        // Before "ready" is printed, so a SIGTERM right after it is handled.
        let term = installTerminationHandler(loop: loop, peer: peer)
        let channel = try DatagramBootstrap(group: group)
            .channelOption(.socketOption(.so_reuseaddr), value: 1)
            .channelInitializer { channel in
                channel.eventLoop.makeCompletedFuture {
                    try channel.pipeline.syncOperations.addHandler(EchoHandler(peer: peer))
                }
            }
            .bind(host: host, port: port).wait()
        try loop.submit { try peer.attach(channel) }.wait()


        // stdin is read on its own thread: one offer line, then wait for EOF.
        let reader = Thread {
            while let line = readLine(strippingNewline: true) {
                guard !line.isEmpty else { continue }
                loop.execute { peer.handleControlLine(line) }
            }
            loop.execute { peer.shutdown() }
        }
        reader.start()

        try channel.closeFuture.wait()
        term.cancel()
        try group.syncShutdownGracefully()
        exit(0)
    }
}

/// SIGTERM: leave like on EOF, with a final stats line. A free function so
/// the handler is not main-actor isolated (it runs on a Dispatch queue).
func installTerminationHandler(loop: any EventLoop, peer: EchoPeer) -> any DispatchSourceSignal {
    signal(SIGTERM, SIG_IGN)
    let source = DispatchSource.makeSignalSource(signal: SIGTERM, queue: .global())
    source.setEventHandler { loop.execute { peer.shutdown() } }
    source.resume()
    return source
}

/// Writes one JSON object as a line on stdout, flushed at once (the reader
/// is a test harness on a pipe).
func emit(_ object: [String: Any]) {
    guard let data = try? JSONSerialization.data(withJSONObject: object, options: [.sortedKeys]),
          let text = String(data: data, encoding: .utf8) else { return }
    // One write(2) per line: unbuffered, so the reader sees it at once.
    FileHandle.standardOutput.write(Data((text + "\n").utf8))
}

func logError(_ text: String) {
    FileHandle.standardError.write(Data(("parley-echo-peer: " + text + "\n").utf8))
}

struct ControlLine: Decodable {
    var type: String
    var sdp: String?
}

/// All state lives on the one event loop; every method runs there.
final class EchoPeer: @unchecked Sendable {
    let loop: any EventLoop
    let certificate: DTLSCertificate
    let credentials: ICECredentials
    private var channel: (any Channel)?
    private var localAddress: TransportAddress?
    private var transport: PeerTransport?
    private var timer: Scheduled<Void>?
    private var timerDeadline: NIODeadline?
    private var statsTask: RepeatedTask?
    private var shuttingDown = false

    private var kindByPayloadType: [UInt8: String] = [:]
    private var rtpInByKind: [String: Int] = [:]
    private var rtpOutCount = 0
    private var offerAt: NIODeadline?
    private var connectedAfter: Double?
    private var iceConnectedAfter: Double?

    /// One receive buffer reused for in-place decrypt → re-protect, sized
    /// for a full datagram plus the largest SRTP trailer.
    private var scratch = [UInt8](repeating: 0, count: 65_536 + 64)

    init(loop: any EventLoop) throws {
        self.loop = loop
        certificate = try DTLSCertificate(commonName: "parley-echo-peer")
        var rng = SystemRandomNumberGenerator()
        credentials = ICECredentials.random(using: &rng)
    }

    func attach(_ channel: any Channel) throws {
        self.channel = channel
        guard let address = channel.localAddress, let port = address.port,
              let transportAddress = Self.transportAddress(address) else {
            throw ChannelError.unknownLocalAddress
        }
        localAddress = transportAddress
        if shuttingDown {
            channel.close(promise: nil)
            return
        }
        emit(["type": "ready", "port": port])
        statsTask = loop.scheduleRepeatedTask(initialDelay: .seconds(1), delay: .seconds(1)) { [weak self] _ in
            self?.printStats()
        }
    }

    // MARK: Control

    func handleControlLine(_ line: String) {
        guard let message = try? JSONDecoder().decode(ControlLine.self, from: Data(line.utf8)) else {
            logError("ignoring unparsable control line")
            return
        }
        guard message.type == "offer", let sdp = message.sdp else {
            logError("ignoring control message of type \(message.type)")
            return
        }
        guard transport == nil else {
            logError("only one offer is supported")
            return
        }
        do {
            try answer(sdp)
        } catch {
            logError("cannot answer: \(error)")
            emit(["type": "error", "message": "\(error)"])
        }
    }

    private func answer(_ offerText: String) throws {
        guard let localAddress else { throw ChannelError.unknownLocalAddress }
        let offer = try SessionDescription(parsing: offerText)
        let candidate = ICECandidate(foundation: "1", priority: ICECandidate.priority(type: .host),
                                     address: localAddress, type: .host)
        var candidateValue = candidate.description
        if candidateValue.hasPrefix("candidate:") { candidateValue.removeFirst("candidate:".count) }
        var config = AnswerConfiguration(
            iceUfrag: credentials.ufrag, icePassword: credentials.password,
            fingerprint: Fingerprint(hashFunction: certificate.fingerprint.algorithm.rawValue,
                                     bytes: certificate.fingerprint.digest),
            candidates: [candidateValue], sessionID: UInt64.random(in: 1..<(1 << 62)),
            setupRole: .passive, allowSending: true)
        config.acceptVideoRTX = false
        let answer = try SessionDescription.answer(to: offer, config: config)

        // The transport parameters come from the first accepted (BUNDLE-tagged)
        // m-section: one transport carries everything (RFC 8843).
        guard let accepted = answer.media.first(where: { $0.port != 0 }), let mid = accepted.mid,
              let offered = offer.media(withMid: mid),
              let ufrag = offer.iceUfrag(for: offered), let password = offer.icePassword(for: offered),
              let sdpFingerprint = offer.fingerprints(for: offered).first,
              let algorithm = DTLSFingerprint.Algorithm(rawValue: sdpFingerprint.hashFunction)
        else { throw NegotiationError.answerMismatch }
        let remoteFingerprint = try DTLSFingerprint(algorithm: algorithm, digest: sdpFingerprint.bytes)
        // RFC 8842 §5.2: `a=setup:active` in our answer makes us the DTLS client.
        let dtlsRole: DTLSRole = accepted.setup == .active ? .client : .server

        for summary in answer.mediaSummaries() where summary.codec != nil {
            for pt in summary.codec?.payloadTypes ?? [] { kindByPayloadType[pt.rawValue] = summary.kind.rawValue }
        }

        transport = try PeerTransport(configuration: PeerSessionConfiguration(
            iceRole: .server, dtlsRole: dtlsRole, localCredentials: credentials, certificate: certificate,
            remoteCredentials: ICECredentials(ufrag: ufrag, password: password),
            remoteFingerprint: remoteFingerprint))
        offerAt = .now()
        emit(["type": "answer", "sdp": answer.serialized()])
        drive()
    }

    // MARK: Datagrams

    func handleDatagram(_ envelope: AddressedEnvelope<ByteBuffer>) {
        guard let transport, let local = localAddress,
              let source = Self.transportAddress(envelope.remoteAddress) else { return }
        let now = Self.now()
        var buffer = envelope.data
        let length = buffer.readableBytes
        let first = buffer.getInteger(at: buffer.readerIndex, as: UInt8.self) ?? 0
        if (128...191).contains(first), length <= scratch.count - 64 {
            // The hot path: decrypt in place, and for RTP re-protect in the
            // same buffer and send straight back.
            scratch.withUnsafeMutableBytes { out in
                _ = buffer.readWithUnsafeReadableBytes { bytes in
                    out.copyMemory(from: bytes)
                    return bytes.count
                }
                guard let (kind, plainLength) = transport.unprotect(out, length: length, from: source) else { return }
                guard kind == .rtp, plainLength >= 12 else { return }
                let kindName = kindByPayloadType[out[1] & 0x7F] ?? "other"
                rtpInByKind[kindName, default: 0] += 1
                guard let destination = transport.selectedRemote,
                      let n = try? transport.protectRTP(in: out, length: plainLength),
                      let channel, let remote = try? Self.socketAddress(destination) else { return }
                let reply = channel.allocator.buffer(bytes: UnsafeRawBufferPointer(rebasing: out[0..<n]))
                channel.write(AddressedEnvelope(remoteAddress: remote, data: reply), promise: nil)
                rtpOutCount += 1
            }
        } else {
            buffer.withUnsafeReadableBytes { bytes in
                transport.handleReceive(bytes, from: source, to: local, now: now)
            }
        }
        drive()
    }

    /// Drains the transport after every input and re-arms the timer.
    func drive() {
        guard let transport, let channel else { return }
        while let event = transport.pollEvent() {
            switch event {
            case .iceConnected(let remote):
                iceConnectedAfter = elapsedSinceOffer()
                logError("ICE selected \(remote)")
            case .connected(let profile):
                connectedAfter = elapsedSinceOffer()
                logError("DTLS-SRTP connected with \(profile)")
            case .rtp(let packet):
                // Not reached with the in-place path; kept for completeness.
                try? transport.sendRTP(packet)
            case .rtcp, .localCandidate:
                break
            case .disconnected(let reason):
                logError("disconnected: \(reason)")
            case .failed(let error):
                logError("failed: \(error)")
            }
        }
        while let transmit = transport.pollTransmit() {
            guard let remote = try? Self.socketAddress(transmit.destination) else { continue }
            let data = channel.allocator.buffer(bytes: transmit.payload)
            channel.write(AddressedEnvelope(remoteAddress: remote, data: data), promise: nil)
        }
        channel.flush()
        rearmTimer()
    }

    private func rearmTimer() {
        guard let transport, let deadline = transport.pollTimeout() else {
            timer?.cancel()
            timer = nil
            timerDeadline = nil
            return
        }
        let nioDeadline = NIODeadline.uptimeNanoseconds(UInt64(max(deadline.nanoseconds, 0)))
        if let timerDeadline, timer != nil, timerDeadline <= nioDeadline { return }
        timer?.cancel()
        timerDeadline = nioDeadline
        timer = loop.scheduleTask(deadline: nioDeadline) { [weak self] in
            guard let self else { return }
            self.timer = nil
            self.timerDeadline = nil
            self.transport?.handleTimeout(now: Self.now())
            self.drive()
        }
    }

    // MARK: Stats and shutdown

    private func elapsedSinceOffer() -> Double? {
        offerAt.map { Double((NIODeadline.now() - $0).nanoseconds) / 1e6 }
    }

    private func stateName() -> String {
        guard let transport else { return "waiting" }
        switch transport.state {
        case .checking: return "checking"
        case .handshaking: return "handshaking"
        case .connected: return "connected"
        case .disconnected: return "disconnected"
        case .failed: return "failed"
        case .closed: return "closed"
        }
    }

    func printStats() {
        let c = transport?.counters ?? PeerSessionCounters()
        var stats: [String: Any] = [
            "type": "stats",
            "state": stateName(),
            "rtp_in": c.rtpPacketsIn,
            "rtp_out": rtpOutCount,
            "rtcp_in": c.rtcpPacketsIn,
            "rtp_in_audio": rtpInByKind["audio", default: 0],
            "rtp_in_video": rtpInByKind["video", default: 0],
            "srtp_errors": c.srtpAuthFailures + c.srtpReplays,
            "srtp_auth_failures": c.srtpAuthFailures,
            "srtp_replays": c.srtpReplays,
            "unvalidated_drops": c.unvalidatedSourceDrops,
            "malformed": c.malformedDatagrams,
            "media_before_keys": c.mediaBeforeKeys,
            "bytes_in": c.bytesIn,
            "bytes_out": c.bytesOut,
        ]
        if let profile = transport?.profile { stats["profile"] = "\(profile)" }
        if let iceConnectedAfter { stats["ice_connected_ms"] = iceConnectedAfter }
        if let connectedAfter { stats["connected_ms"] = connectedAfter }
        emit(stats)
    }

    func shutdown() {
        guard !shuttingDown else { return }
        shuttingDown = true
        printStats()
        statsTask?.cancel()
        timer?.cancel()
        if let transport, let channel {
            // Tell the peer (close_notify) so it does not wait for consent to expire.
            transport.close()
            while let transmit = transport.pollTransmit() {
                guard let remote = try? Self.socketAddress(transmit.destination) else { continue }
                channel.write(AddressedEnvelope(remoteAddress: remote, data: channel.allocator.buffer(bytes: transmit.payload)),
                              promise: nil)
            }
            channel.flush()
        }
        channel?.close(promise: nil)
    }

    // MARK: Edge conversions

    /// The monotonic clock, as engines see it: NIODeadline's uptime nanoseconds.
    static func now() -> Instant {
        Instant(nanoseconds: Int64(clamping: NIODeadline.now().uptimeNanoseconds))
    }

    static func transportAddress(_ address: SocketAddress) -> TransportAddress? {
        guard let text = address.ipAddress, let ip = IPAddress(text), let port = address.port,
              let p = UInt16(exactly: port) else { return nil }
        return TransportAddress(ip: ip, port: p)
    }

    static func socketAddress(_ address: TransportAddress) throws -> SocketAddress {
        try SocketAddress(ipAddress: address.ip.description, port: Int(address.port))
    }
}

final class EchoHandler: ChannelInboundHandler, Sendable {
    typealias InboundIn = AddressedEnvelope<ByteBuffer>
    let peer: EchoPeer

    init(peer: EchoPeer) { self.peer = peer }

    func channelRead(context: ChannelHandlerContext, data: NIOAny) {
        peer.handleDatagram(unwrapInboundIn(data))
    }

    func errorCaught(context: ChannelHandlerContext, error: any Error) {
        // ICMP port unreachable and the like: UDP goes on.
        logError("socket error: \(error)")
    }
}
