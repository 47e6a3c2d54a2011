import Foundation
import Glibc
import Logging
import RTCBase
import SFU
import Synchronization
import UDPIO

/// One media worker's UDP side, hosted by a `UDPEdge` thread: the worker's
/// media port and its `SFUEngine`. Every datagram is handed to the engine in
/// its receive slot (SRTP is decrypted there) and whatever the engine sends
/// is written straight into the edge's send queue (`EdgeOutput`), so a
/// forwarded packet is copied once per subscriber, into the datagram that
/// leaves, and nothing is allocated for it.
final class SFUEdge: UDPEdgeHandler {
    struct Settings {
        var batch = 64
        var socketBuffer = 4 << 20
    }

    let engine: SFUEngine
    let fd: Int32
    let address: TransportAddress
    let index: Int
    private let settings: Settings
    private let logger: Logger
    private let metrics: SFUMetrics?
    private var reported = SFUCounters()
    private var reportedIO = (send: 0, receive: 0, truncated: 0)
    private var output: EdgeOutput
    /// Where engine events go at the end of each cycle (signaling).
    private let onEvents: @Sendable ([SFUEvent]) -> Void
    private var pending: [SFUEvent] = []
    /// ICE-TCP connections (RFC 6544) are served by NIO; what the engine
    /// sends to their addresses goes there.
    let streams: MediaStreams?

    private static let socketToken: UInt64 = 1

    init(engine: SFUEngine, bind address: TransportAddress, index: Int, io: UDPEdgeIO, streams: MediaStreams?,
         settings: Settings, metrics: SFUMetrics?, logger: Logger, onEvents: @escaping @Sendable ([SFUEvent]) -> Void) throws {
        self.engine = engine
        self.index = index
        self.settings = settings
        self.logger = logger
        self.metrics = metrics
        self.onEvents = onEvents
        self.streams = streams
        fd = try UDPSocket.bind(address, receiveBuffer: settings.socketBuffer, sendBuffer: settings.socketBuffer)
        self.address = UDPSocket.localAddress(fd) ?? address
        output = EdgeOutput(fd: fd, queue: io.queue, streams: streams)
        do {
            try io.poll.add(fd, token: Self.socketToken)
        } catch {
            Glibc.close(fd)
            throw error
        }
    }

    // MARK: - UDPEdgeHandler

    func readable(_ token: UInt64, io: UDPEdgeIO, now: inout Instant) {
        guard token == Self.socketToken else { return }
        for _ in 0..<4 {
            let t = now
            let count = io.receive(from: fd, limit: settings.batch) { bytes, source in
                engine.handleDatagram(bytes, from: source, now: t, output: &output)
            }
            if count < settings.batch { return }
            now = MonotonicClock.now()
        }
    }

    func pollTimeout() -> Instant? { engine.pollTimeout() }

    func handleTimeout(io: UDPEdgeIO, now: Instant) {
        engine.handleTimeout(now: now, output: &output)
    }

    func cycleEnded() {
        while let e = engine.pollEvent() { pending.append(e) }
        if !pending.isEmpty {
            onEvents(pending)
            pending.removeAll(keepingCapacity: true)
        }
    }

    func syncMetrics(io: UDPEdgeIO) {
        guard let metrics else { return }
        let c = engine.counters
        metrics.add(c, since: reported)
        reported = c
        metrics.addIO(sendFailures: io.queue.failed - reportedIO.send, receiveErrors: io.receiveErrors - reportedIO.receive,
                      truncated: io.truncated - reportedIO.truncated)
        reportedIO = (io.queue.failed, io.receiveErrors, io.truncated)
        metrics.setGauges(worker: index, rooms: engine.roomCount, transports: engine.sessionCount)
    }

    func close(io: UDPEdgeIO) {
        Glibc.close(fd)
    }

    // MARK: - Control (on the edge's thread)

    /// Runs a control call against the engine with an output into the queue.
    func withOutput<T>(_ body: (SFUEngine, inout EdgeOutput) -> T) -> T {
        body(engine, &output)
    }

    /// A datagram that arrived over ICE-TCP (one RFC 4571 frame), from the
    /// connection's engine address; `remote` is its real address, the one
    /// a Binding answer reports (XOR-MAPPED-ADDRESS).
    func streamDatagram(_ bytes: [UInt8], from source: TransportAddress, remote: TransportAddress, now: Instant) {
        var copy = bytes
        copy.withUnsafeMutableBytes {
            engine.handleDatagram($0, from: source, mapped: remote, now: now, output: &output)
        }
    }
}

/// The engine's `SFUOutput` on a media edge: into the send queue for UDP,
/// to NIO for an ICE-TCP peer.
struct EdgeOutput: SFUOutput {
    let fd: Int32
    unowned(unsafe) let queue: SendQueue
    let streams: MediaStreams?

    @inline(__always)
    mutating func send(to destination: TransportAddress, capacity: Int, _ body: (UnsafeMutableRawBufferPointer) -> Int?) {
        if let streams, let id = MediaStreams.connection(of: destination) {
            var buffer = [UInt8](repeating: 0, count: capacity)
            guard let n = buffer.withUnsafeMutableBytes({ body($0) }) else { return }
            buffer.removeSubrange(n...)
            streams.send(buffer, to: id)
            return
        }
        queue.append(fd: fd, to: destination, reserving: capacity, body)
    }
}
