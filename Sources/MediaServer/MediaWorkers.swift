import DTLS
import Foundation
#if canImport(Glibc)
import Glibc
#endif
import Logging
import NIOCore
import NIOPosix
import Prometheus
import RTCBase
import SFU
import Synchronization
import UDPIO

/// Where and how the SFU's media workers listen.
public struct MediaConfiguration: Sendable {
    /// Bind address of the media ports.
    public var host: String
    /// The first worker's UDP (and ICE-TCP) port; worker i uses `port + i`.
    /// 0 picks free ports (tests).
    public var port: Int
    /// Engines, one thread each; a call is pinned to one of them.
    public var workers: Int
    /// The address put into candidates (`--public-ip`).
    public var publicIP: IPAddress
    /// Also accept ICE over TCP (RFC 6544 passive) on each worker's port number.
    public var iceTCP: Bool
    public var consentTimeout: Duration = .seconds(30)
    public var udpSegmentation = true
    /// Where recorded calls are written (`--record-dir`); nil: no recording.
    public var recordDirectory: String?

    public init(host: String, port: Int, workers: Int = 1, publicIP: IPAddress, iceTCP: Bool = true) {
        self.host = host
        self.port = port
        self.workers = max(1, workers)
        self.publicIP = publicIP
        self.iceTCP = iceTCP
    }
}

/// The running SFU: one `UDPEdge` thread per worker, each with its own
/// port and `SFUEngine`, and (optionally) an ICE-TCP listener per worker on
/// NIO. Signaling talks to a call's worker through its inbox; the engines'
/// events arrive on `events`.
public final class MediaWorkers: Sendable {
    private let edges: [UDPEdge<SFUEdge>]
    private let streams: [MediaStreams]
    private let recordings: CallRecordings?
    /// The UDP address each worker is bound to.
    public let boundAddresses: [TransportAddress]
    /// What each worker advertises (`--public-ip` and its port).
    public let advertisedAddresses: [TransportAddress]
    public let events: AsyncStream<SFUEvent>
    private let continuation: AsyncStream<SFUEvent>.Continuation

    private init(edges: [UDPEdge<SFUEdge>], streams: [MediaStreams], recordings: CallRecordings?, bound: [TransportAddress],
                 advertised: [TransportAddress], events: AsyncStream<SFUEvent>,
                 continuation: AsyncStream<SFUEvent>.Continuation) {
        self.edges = edges
        self.streams = streams
        self.recordings = recordings
        boundAddresses = bound
        advertisedAddresses = advertised
        self.events = events
        self.continuation = continuation
    }

    public static func start(configuration: MediaConfiguration, group: any EventLoopGroup = MultiThreadedEventLoopGroup.singleton,
                             registry: PrometheusCollectorRegistry?, logger: Logger) async throws -> MediaWorkers {
        let (events, continuation) = AsyncStream.makeStream(of: SFUEvent.self)
        let metrics = registry.map { SFUMetrics(registry: $0, workers: configuration.workers) }
        let listenIP = try AddressResolution.resolve(configuration.host)
        var edges: [UDPEdge<SFUEdge>] = []
        var allStreams: [MediaStreams] = []
        var bound: [TransportAddress] = []
        var advertised: [TransportAddress] = []
        let ntpAtZero = Self.ntpAtMonotonicZero()
        let recordings = try configuration.recordDirectory.map { try CallRecordings(directory: $0, logger: logger) }
        do {
            for i in 0..<configuration.workers {
                let port = configuration.port == 0 ? 0 : configuration.port + i
                var ioSettings = UDPEdgeIO.Settings()
                ioSettings.slots = 512
                ioSettings.queueCapacity = 1024
                ioSettings.queueArena = 1 << 20
                ioSettings.segmentation = configuration.udpSegmentation
                let io = try UDPEdgeIO(ioSettings)
                let stream = configuration.iceTCP ? MediaStreams(loop: group.next(), logger: logger) : nil
                // Bind UDP first: with port 0 its number is the one TCP then takes.
                let socketAddress = TransportAddress(ip: listenIP, port: UInt16(clamping: port))
                let probe = try UDPSocket.bind(socketAddress, receiveBuffer: 0, sendBuffer: 0)
                let chosen = UDPSocket.localAddress(probe)?.port ?? UInt16(clamping: port)
                close(probe)
                let publicAddress = TransportAddress(ip: configuration.publicIP, port: chosen)
                var candidates = ["1 1 udp 2130706431 \(configuration.publicIP) \(chosen) typ host"]
                if stream != nil {
                    // RFC 6544 §4.2: a passive TCP host candidate; lower
                    // priority than UDP so it is the fallback.
                    candidates.append("2 1 tcp 1518280447 \(configuration.publicIP) \(chosen) typ host tcptype passive")
                }
                var engineConfig = SFUConfiguration(certificate: try DTLSCertificate(commonName: "parley-sfu"),
                                                    candidates: candidates, seed: UInt64.random(in: .min ... .max))
                engineConfig.consentTimeout = configuration.consentTimeout
                engineConfig.ntpAtZero = ntpAtZero
                let engine = SFUEngine(configuration: engineConfig)
                engine.recorder = recordings
                let handler = try SFUEdge(
                    engine: engine, bind: TransportAddress(ip: listenIP, port: chosen),
                    index: i, io: io, streams: stream, settings: SFUEdge.Settings(), metrics: metrics, logger: logger,
                    onEvents: { batch in for e in batch { continuation.yield(e) } })
                let edge = try UDPEdge(handler: handler, io: io, metricsInterval: metrics == nil ? nil : .milliseconds(250),
                                       logger: logger)
                if let stream {
                    stream.deliver = { [edge] bytes, source, remote in
                        edge.post { h, _ in h.streamDatagram(bytes, from: source, remote: remote, now: MonotonicClock.now()) }
                    }
                }
                edge.start(name: "parley-media-\(i)")
                edges.append(edge)
                bound.append(handler.address)
                advertised.append(publicAddress)
                if let stream {
                    allStreams.append(stream)
                    try await stream.listen(host: configuration.host, port: Int(chosen))
                }
                logger.info("SFU media listening", metadata: [
                    "worker": "\(i)", "udp": "\(configuration.host):\(chosen)",
                    "tcp": "\(stream == nil ? "off" : "\(configuration.host):\(chosen)")",
                    "advertised": "\(publicAddress)"])
            }
        } catch {
            for s in allStreams { try? await s.close().get() }
            for e in edges { await e.stop() }
            continuation.finish()
            throw error
        }
        return MediaWorkers(edges: edges, streams: allStreams, recordings: recordings, bound: bound, advertised: advertised,
                            events: events, continuation: continuation)
    }

    /// NTP time (RFC 3550 §4) at the monotonic clock's zero, so engines can
    /// stamp SRs with wall-clock time from `now` alone.
    private static func ntpAtMonotonicZero() -> UInt64 {
        let unix = Date().timeIntervalSince1970
        let mono = Double(MonotonicClock.now().nanoseconds) / 1e9
        let ntpSeconds = unix + 2_208_988_800 - mono
        let whole = UInt64(max(0, ntpSeconds))
        let fraction = UInt64((ntpSeconds - Double(whole)) * 4_294_967_296)
        return whole << 32 | fraction
    }

    public var workerCount: Int { edges.count }

    /// The worker a call's room lives on: a stable hash of its id.
    public func worker(for room: RoomID) -> Int {
        var h: UInt64 = 0xcbf2_9ce4_8422_2325
        for b in room.rawValue.utf8 { h = (h ^ UInt64(b)) &* 0x100_0000_01b3 }
        return Int(h % UInt64(edges.count))
    }

    private func edge(_ room: RoomID) -> UDPEdge<SFUEdge> { edges[worker(for: room)] }

    public func join(room: RoomID, participant: ParticipantID, user: String) async {
        await edge(room).submit { h, _ in h.engine.join(room: room, participant: participant, user: user) }
    }

    public func publish(room: RoomID, participant: ParticipantID, offer: String) async throws(SFUError) -> String {
        let result = await edge(room).submit { h, _ in
            h.withOutput { engine, output in
                Result { () throws(SFUError) -> String in
                    try engine.publish(room: room, participant: participant, offer: offer, output: &output)
                }
            }
        }
        return try result.get()
    }

    public func subscribeAnswer(room: RoomID, participant: ParticipantID, answer: String) async throws(SFUError) {
        let result = await edge(room).submit { h, _ in
            h.withOutput { engine, output in
                Result { () throws(SFUError) in
                    try engine.subscribeAnswer(room: room, participant: participant, answer: answer, output: &output)
                }
            }
        }
        try result.get()
    }

    public func updateTrack(room: RoomID, participant: ParticipantID, mid: String, source: TrackSource?,
                            muted: Bool?) async throws(SFUError) {
        let result = await edge(room).submit { h, _ in
            Result { () throws(SFUError) in
                try h.engine.updateTrack(room: room, participant: participant, mid: Mid(rawValue: mid), source: source,
                                         muted: muted)
            }
        }
        try result.get()
    }

    public func restartSubscriberICE(room: RoomID, participant: ParticipantID) async throws(SFUError) {
        let result = await edge(room).submit { h, _ in
            Result { () throws(SFUError) in try h.engine.restartSubscriberICE(room: room, participant: participant) }
        }
        try result.get()
    }

    public func leave(room: RoomID, participant: ParticipantID) async {
        await edge(room).submit { h, _ in
            h.withOutput { engine, output in engine.leave(room: room, participant: participant, output: &output) }
        }
    }

    public func closeRoom(_ room: RoomID) async {
        await edge(room).submit { h, _ in h.withOutput { engine, output in engine.closeRoom(room, output: &output) } }
    }

    /// Starts or stops recording a call's media.
    public func setRecording(room: RoomID, enabled: Bool) async throws(SFUError) {
        let result = await edge(room).submit { h, _ in
            h.withOutput { engine, output in
                Result { () throws(SFUError) in try engine.setRecording(room: room, enabled: enabled, output: &output) }
            }
        }
        try result.get()
    }

    public var recordingDirectory: String? { recordings?.directory.path }

    /// Each engine's counters.
    public func counters() async -> [SFUCounters] {
        var all: [SFUCounters] = []
        for e in edges { all.append(await e.submit { h, _ in h.engine.counters }) }
        return all
    }

    /// Stops every worker and closes their sockets.
    public func shutdown() async {
        for s in streams { try? await s.close().get() }
        for e in edges { await e.stop() }
        recordings?.flush()
        continuation.finish()
    }
}
