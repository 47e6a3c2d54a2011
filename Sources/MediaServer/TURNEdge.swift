import Foundation
import Glibc
import Logging
import RTCBase
import STUN
import TURN
import UDPIO

/// The UDP half of the TURN server, hosted by a `UDPEdge` thread: the UDP
/// listener, every relay socket and the `TURNServer` engine. The engine
/// routes each datagram in place; ChannelData payloads are sent straight
/// from the receive slot (never copied) and Binding requests are answered
/// into the send queue, so a datagram in or out allocates nothing. TCP and
/// TLS stay on NIO (`TURNStreams`) and reach the engine through the edge's
/// inbox; what the engine sends them goes back to their event loop in one
/// batch per cycle.
final class TURNEdge: UDPEdgeHandler {
    struct Settings {
        var listenerBatch = 64
        var relayBatch = 16
        var listenerBuffer = 4 << 20
        var relayBuffer = 1 << 20
    }

    private var engine: TURNServer
    let logger: Logger
    private let metrics: TURNMetrics?
    private let settings: Settings
    let listenerFD: Int32
    /// The address the listener is bound to (its port is the TURN port).
    let listenerAddress: TransportAddress
    /// Where relay sockets are bound (the engine names them by the public address).
    private let relayBindIP: IPAddress
    private let streams: TURNStreams
    private let poll: EventPoll
    /// The hosting edge's send queue (flushed once per cycle).
    private let queue: SendQueue

    private var relayFDs: [UInt16: Int32] = [:]
    private var relayByFD: [Int32: TransportAddress] = [:]
    private var streamOutput: [TURNStreams.Output] = []

    private static let listenerToken: UInt64 = 1 << 32

    init(engine: TURNServer, listen: TransportAddress, relayBindIP: IPAddress, streams: TURNStreams, io: UDPEdgeIO,
         settings: Settings, metrics: TURNMetrics?, logger: Logger) throws {
        self.engine = engine
        self.logger = logger
        self.metrics = metrics
        self.settings = settings
        self.relayBindIP = relayBindIP
        self.streams = streams
        poll = io.poll
        queue = io.queue
        listenerFD = try UDPSocket.bind(listen, receiveBuffer: settings.listenerBuffer, sendBuffer: settings.listenerBuffer)
        listenerAddress = UDPSocket.localAddress(listenerFD) ?? listen
        do {
            try poll.add(listenerFD, token: TURNEdge.listenerToken)
        } catch {
            Glibc.close(listenerFD)
            throw error
        }
    }

    // MARK: - UDPEdgeHandler

    func readable(_ token: UInt64, io: UDPEdgeIO, now: inout Instant) {
        if token == TURNEdge.listenerToken {
            readListener(io, now: &now)
        } else {
            let fd = Int32(truncatingIfNeeded: token)
            if let relay = relayByFD[fd] { readRelay(fd, relay: relay, io: io, now: now) }
        }
    }

    func pollTimeout() -> Instant? { engine.pollTimeout() }

    func handleTimeout(io: UDPEdgeIO, now: Instant) {
        engine.handleTimeout(now: now)
        drainActions(now: now)
    }

    func cycleEnded() {
        if !streamOutput.isEmpty {
            streams.deliver(streamOutput)
            streamOutput.removeAll(keepingCapacity: true)
        }
    }

    func close(io: UDPEdgeIO) {
        for fd in relayFDs.values { Glibc.close(fd) }
        relayFDs = [:]
        relayByFD = [:]
        Glibc.close(listenerFD)
    }

    // MARK: - Input

    /// Datagrams from clients: read until the socket is empty or a few
    /// batches went by (so relays get their turn).
    private func readListener(_ io: UDPEdgeIO, now: inout Instant) {
        for _ in 0..<4 {
            let t = now
            let count = io.receive(from: listenerFD, limit: settings.listenerBatch) { bytes, client in
                clientDatagram(UnsafeRawBufferPointer(bytes), from: client, now: t)
            }
            if count < settings.listenerBatch { return }
            now = MonotonicClock.now()
        }
    }

    private func clientDatagram(_ bytes: UnsafeRawBufferPointer, from client: TransportAddress, now: Instant) {
        guard let first = bytes.first else {
            engine.handleClientPacket(bytes, from: client, transport: .udp, now: now)
            return
        }
        if first & 0xC0 == 0x40 {
            // ChannelData: the payload leaves from the receive slot.
            guard let route = engine.routeChannelData(bytes, from: client, transport: .udp, now: now),
                  let relayFD = relayFDs[route.relay.port] else { return }
            queue.append(fd: relayFD, to: route.peer, payload: UnsafeRawBufferPointer(rebasing: bytes[route.payload]))
            return
        }
        var handled = true
        queue.append(fd: listenerFD, to: client, reserving: TURNServer.bindingResponseCapacity) { out in
            switch engine.answerBinding(bytes, from: client, now: now, into: out) {
            case .answered(let count): return count
            case .dropped: return nil
            case .notHandled:
                handled = false
                return nil
            }
        }
        guard !handled else { return }
        engine.handleClientPacket(bytes, from: client, transport: .udp, now: now)
        drainActions(now: now)
    }

    private func readRelay(_ fd: Int32, relay: TransportAddress, io: UDPEdgeIO, now: Instant) {
        _ = io.receive(from: fd, limit: settings.relayBatch) { mutableBytes, peer in
            let bytes = UnsafeRawBufferPointer(mutableBytes)
            switch engine.routePeerData(bytes, relay: relay, from: peer, now: now) {
            case .channelData(let channel, let client, let transport, let padding)?:
                switch transport {
                case .udp:
                    // A 4-byte header from the queue's arena, the payload from the slot.
                    queue.append(fd: listenerFD, to: client, reserving: 4, payload: bytes) { out in
                        out.storeBytes(of: channel.bigEndian, toByteOffset: 0, as: UInt16.self)
                        out.storeBytes(of: UInt16(truncatingIfNeeded: bytes.count).bigEndian, toByteOffset: 2, as: UInt16.self)
                        return 4
                    }
                case .tcp(let id), .tls(let id):
                    var framed = [UInt8]()
                    framed.reserveCapacity(4 + bytes.count + padding)
                    framed.append(UInt8(channel >> 8))
                    framed.append(UInt8(truncatingIfNeeded: channel))
                    framed.append(UInt8(truncatingIfNeeded: bytes.count >> 8))
                    framed.append(UInt8(truncatingIfNeeded: bytes.count))
                    framed.append(contentsOf: bytes)
                    framed.append(contentsOf: repeatElement(0, count: padding))
                    streamOutput.append(.write(id, framed))
                }
            case .queued?:
                drainActions(now: now)
            case nil:
                break
            }
        }
    }

    // MARK: - Streams (posted by TURNStreams' event loop)

    /// One whole message a stream framer cut from a TCP/TLS connection.
    func streamMessage(_ bytes: UnsafeRawBufferPointer, from client: TransportAddress, transport: TURNTransport,
                       now: Instant) {
        if let first = bytes.first, first & 0xC0 == 0x40 {
            // The message dies with this call: copy the payload into the queue.
            guard let route = engine.routeChannelData(bytes, from: client, transport: transport, now: now),
                  let relayFD = relayFDs[route.relay.port] else { return }
            queue.append(fd: relayFD, to: route.peer, copying: UnsafeRawBufferPointer(rebasing: bytes[route.payload]))
            return
        }
        engine.handleClientPacket(bytes, from: client, transport: transport, now: now)
        drainActions(now: now)
    }

    func streamClosed(_ id: TURNConnectionID, now: Instant) {
        engine.handleConnectionClosed(id, now: now)
        drainActions(now: now)
    }

    // MARK: - Engine actions

    private func drainActions(now: Instant) {
        while let action = engine.pollAction() {
            switch action {
            case .sendToClient(let bytes, let client, let transport):
                switch transport {
                case .udp:
                    bytes.withUnsafeBytes { queue.append(fd: listenerFD, to: client, copying: $0) }
                case .tcp(let id), .tls(let id):
                    streamOutput.append(.write(id, bytes))
                }
            case .sendToPeer(let bytes, let relay, let peer):
                guard let fd = relayFDs[relay.port] else { continue }
                bytes.withUnsafeBytes { queue.append(fd: fd, to: peer, copying: $0) }
            case .bindRelay(let relay, let id):
                bindRelay(relay, id: id, now: now)
            case .closeRelay(let relay):
                closeRelay(port: relay.port)
            case .closeConnection(let id):
                streamOutput.append(.close(id))
            }
        }
    }

    private func bindRelay(_ relay: TransportAddress, id: TURNAllocationID, now: Instant) {
        let fd: Int32
        do {
            // Only queued bytes use kernel memory, so a deep limit costs nothing idle.
            // An IPv6 relay (RFC 8656 §7.2 REQUESTED-ADDRESS-FAMILY) binds its own address.
            let ip = relay.ip.isV4 == relayBindIP.isV4 ? relayBindIP : relay.ip
            fd = try UDPSocket.bind(TransportAddress(ip: ip, port: relay.port),
                                    receiveBuffer: settings.relayBuffer, sendBuffer: settings.relayBuffer)
        } catch {
            logger.debug("relay bind failed", metadata: ["port": "\(relay.port)", "error": "\(error)"])
            engine.relayBindFailed(id, now: now)
            return
        }
        do {
            try poll.add(fd, token: UInt64(UInt32(bitPattern: fd)))
        } catch {
            logger.error("relay socket not watched", metadata: ["port": "\(relay.port)", "error": "\(error)"])
            Glibc.close(fd)
            engine.relayBindFailed(id, now: now)
            return
        }
        guard engine.relayBound(id, now: now) else {
            Glibc.close(fd)  // also leaves the poll set
            return
        }
        relayFDs[relay.port] = fd
        relayByFD[fd] = relay
    }

    private func closeRelay(port: UInt16) {
        guard let fd = relayFDs.removeValue(forKey: port) else { return }
        // Datagrams queued for this socket go first: its number may be reused.
        queue.flush()
        relayByFD[fd] = nil
        Glibc.close(fd)  // also leaves the epoll set
    }

    // MARK: - Introspection (on the loop's thread)

    var relayCount: Int { relayFDs.count }
    var allocationCount: Int { engine.allocationCount }
    var counters: TURNCounters { engine.counters }

    func syncMetrics(io: UDPEdgeIO) {
        metrics?.sync(engine.counters, framingErrors: streams.framingErrors, allocations: engine.allocationCount,
                      relays: relayFDs.count, streams: streams.connectionCount,
                      io: TURNIOCounters(sendFailures: io.queue.failed, receiveErrors: io.receiveErrors,
                                         truncated: io.truncated, segmented: io.queue.segmented))
    }
}

/// The edge's own socket-level counters.
struct TURNIOCounters {
    var sendFailures = 0
    var receiveErrors = 0
    var truncated = 0
    /// Datagrams sent as part of a GSO run.
    var segmented = 0
}
