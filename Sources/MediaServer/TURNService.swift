import Foundation
#if canImport(Glibc)
import Glibc
#endif
import Logging
import NIOCore
import NIOPosix
import NIOSSL
import Prometheus
import RTCBase
import ServiceLifecycle
import TURN
import UDPIO

/// Where and how the TURN edge listens.
public struct TURNServiceConfiguration: Sendable {
    /// Listening address of the UDP and TCP (and TLS) listeners.
    public var host: String
    /// UDP and TCP port (RFC 8656 §4: the same port for both). 0 picks a free
    /// UDP port and binds TCP on the same number (tests).
    public var port: Int
    /// TURN over TLS (`turns:`), only when a certificate is configured.
    public var tls: TLS?
    /// The engine's settings (realm, relay ports, credentials, quotas...).
    public var engine: TURNServerConfiguration
    /// Address relay sockets are bound on. The engine advertises
    /// `engine.publicIP`. Nil (the default): the public IP itself when this
    /// machine has it (a probe bind succeeds), else `host` — behind a 1:1 NAT
    /// the public address is not local, so relays bind the listening
    /// (private or wildcard) address.
    public var relayBindHost: String?
    /// Datagrams read per system call (recvmmsg) on the UDP listener.
    public var vectorReadCount = 64
    /// The same for each relay socket (relays take turns with the listener).
    public var relayVectorReadCount = 16
    /// Largest datagram read whole; longer ones are truncated (and then
    /// refused as malformed). WebRTC keeps packets under ~1200–1500 bytes.
    public var maxDatagramSize = 2048
    /// Runs of equal-size datagrams to one destination leave as one UDP GSO
    /// send (`UDP_SEGMENT`); off: one datagram per message.
    public var udpSegmentation = true

    public struct TLS: Sendable {
        public var port: Int
        public var certificatePath: String
        public var keyPath: String
        public init(port: Int, certificatePath: String, keyPath: String) {
            self.port = port
            self.certificatePath = certificatePath
            self.keyPath = keyPath
        }
    }

    public init(host: String, port: Int, tls: TLS? = nil, engine: TURNServerConfiguration, relayBindHost: String? = nil) {
        self.host = host
        self.port = port
        self.tls = tls
        self.engine = engine
        self.relayBindHost = relayBindHost
    }
}

/// Running TURN listeners: the UDP listener and relay sockets on the
/// engine's own thread (`TURNEdge`), TCP and TLS on one NIO event loop
/// (`TURNStreams`).
public final class TURNListeners: Sendable {
    public let udpAddress: SocketAddress
    public let tcpAddress: SocketAddress
    public let tlsAddress: SocketAddress?
    private let edge: UDPEdge<TURNEdge>
    private let streams: TURNStreams

    private init(udp: SocketAddress, tcp: SocketAddress, tls: SocketAddress?, edge: UDPEdge<TURNEdge>, streams: TURNStreams) {
        udpAddress = udp
        tcpAddress = tcp
        tlsAddress = tls
        self.edge = edge
        self.streams = streams
    }

    /// Binds the listeners (TCP/TLS on one loop of `group`) and returns once
    /// they accept traffic. `registry`: where counters are exported (nil: none).
    public static func start(configuration: TURNServiceConfiguration,
                             group: any EventLoopGroup = MultiThreadedEventLoopGroup.singleton,
                             registry: PrometheusCollectorRegistry?, logger: Logger) async throws -> TURNListeners {
        // TLS material is read before anything is bound, so a bad file fails fast.
        let sslContext: NIOSSLContext? = try configuration.tls.map { tls in
            let chain = try NIOSSLCertificate.fromPEMFile(tls.certificatePath)
            let key = try NIOSSLPrivateKey(file: tls.keyPath, format: .pem)
            let config = TLSConfiguration.makeServerConfiguration(certificateChain: chain.map { .certificate($0) },
                                                                  privateKey: .privateKey(key))
            return try NIOSSLContext(configuration: config)
        }
        let loop = group.next()
        let listenIP = try AddressResolution.resolve(configuration.host)
        let relayIP = try relayBindAddress(configuration, listenIP: listenIP)
        // Random relay ports and indication ids (RFC 8656 §7.2).
        let engine = TURNServer(configuration: configuration.engine, seed: UInt64.random(in: .min ... .max))
        let metrics = registry.map { TURNMetrics(registry: $0) }
        var settings = TURNEdge.Settings()
        settings.listenerBatch = max(1, configuration.vectorReadCount)
        settings.relayBatch = max(1, configuration.relayVectorReadCount)
        var ioSettings = UDPEdgeIO.Settings()
        ioSettings.slotSize = max(576, configuration.maxDatagramSize)
        ioSettings.slots = max(256, 2 * settings.listenerBatch)
        ioSettings.segmentation = configuration.udpSegmentation
        let streams = TURNStreams(loop: loop)
        let io = try UDPEdgeIO(ioSettings)
        // No SO_REUSEADDR on UDP: on Linux it would let a second process share the port.
        let handler = try TURNEdge(engine: engine, listen: TransportAddress(ip: listenIP, port: UInt16(clamping: configuration.port)),
                                   relayBindIP: relayIP, streams: streams, io: io, settings: settings, metrics: metrics,
                                   logger: logger)
        let edge: UDPEdge<TURNEdge>
        do {
            edge = try UDPEdge(handler: handler, io: io, metricsInterval: metrics == nil ? nil : .milliseconds(250),
                               logger: logger)
        } catch {
            handler.close(io: io)
            throw error
        }
        edge.start(name: "parley-turn-udp")
        let port = Int(handler.listenerAddress.port)
        let maxMessage = configuration.engine.maxMessageSize
        do {
            let udpAddress = try SocketAddress(ipAddress: "\(handler.listenerAddress.ip)", port: port)
            func streamServer(port: Int, secure: Bool) async throws -> any Channel {
                let server = try await ServerBootstrap(group: loop, childGroup: loop)
                    .serverChannelOption(.socketOption(.so_reuseaddr), value: 1)
                    .serverChannelOption(.backlog, value: 256)
                    .childChannelOption(.socketOption(.tcp_nodelay), value: 1)
                    .childChannelInitializer { channel in
                        channel.eventLoop.makeCompletedFuture {
                            if secure, let sslContext {
                                try channel.pipeline.syncOperations.addHandler(NIOSSLServerHandler(context: sslContext))
                            }
                            try channel.pipeline.syncOperations.addHandler(
                                StreamHandler(streams: streams, edge: edge, secure: secure, maxMessageSize: maxMessage))
                        }
                    }
                    .bind(host: configuration.host, port: port).get()
                try await loop.submit { streams.servers.append(server) }.get()
                return server
            }
            // RFC 8656 §4: TCP on the same port number as UDP.
            let tcp = try await streamServer(port: port, secure: false)
            logger.info("TURN listening", metadata: ["udp": "\(configuration.host):\(port)",
                                                     "tcp": "\(configuration.host):\(port)",
                                                     "realm": "\(configuration.engine.realm)",
                                                     "relay-bind": "\(relayIP)",
                                                     "relay-ports": "\(configuration.engine.relayPorts)"])
            var tlsAddress: SocketAddress?
            if let tls = configuration.tls {
                let server = try await streamServer(port: tls.port, secure: true)
                tlsAddress = server.localAddress
                logger.info("TURN over TLS listening", metadata: ["tls": "\(configuration.host):\(server.localAddress?.port ?? tls.port)"])
            }
            return TURNListeners(udp: udpAddress, tcp: tcp.localAddress ?? udpAddress, tls: tlsAddress, edge: edge, streams: streams)
        } catch {
            try? await loop.flatSubmit { streams.close() }.get()
            await edge.stop()
            throw error
        }
    }

    /// Where relay sockets bind: `relayBindHost` when set; else the public IP
    /// when this machine has it (a probe bind succeeds), else the listening
    /// address — behind a 1:1 NAT the public address is not local.
    private static func relayBindAddress(_ configuration: TURNServiceConfiguration, listenIP: IPAddress) throws -> IPAddress {
        if let host = configuration.relayBindHost { return try AddressResolution.resolve(host) }
        let publicIP = configuration.engine.publicIP
        if publicIP == listenIP { return publicIP }
        guard let probe = try? UDPSocket.bind(TransportAddress(ip: publicIP, port: 0), receiveBuffer: 0, sendBuffer: 0) else {
            return listenIP
        }
        close(probe)
        return publicIP
    }

    /// Closes every listener, connection and relay socket.
    public func shutdown() async {
        let streams = self.streams
        try? await streams.loop.flatSubmit { streams.close() }.get()
        await edge.stop()
    }

    /// Bound relay sockets right now.
    public func relaySocketCount() async throws -> Int {
        await edge.submit { handler, _ in handler.relayCount }
    }

    /// Live allocations right now.
    public func allocationCount() async throws -> Int {
        await edge.submit { handler, _ in handler.allocationCount }
    }

    /// The engine's counters, plus stream framing errors.
    public func counters() async throws -> (TURNCounters, framingErrors: Int) {
        let streams = self.streams
        return await edge.submit { handler, _ in (handler.counters, streams.framingErrors) }
    }
}

/// The TURN server as a swift-service-lifecycle service: listens until
/// graceful shutdown, then closes every socket.
public struct TURNService: Service, CustomStringConvertible {
    public let configuration: TURNServiceConfiguration
    public let registry: PrometheusCollectorRegistry?
    public let logger: Logger

    public init(configuration: TURNServiceConfiguration, registry: PrometheusCollectorRegistry?, logger: Logger) {
        self.configuration = configuration
        self.registry = registry
        self.logger = logger
    }

    /// ServiceLifecycle logs services by description: never the secrets.
    public var description: String { "TURNService(\(configuration.host):\(configuration.port))" }

    public func run() async throws {
        let listeners = try await TURNListeners.start(configuration: configuration, registry: registry, logger: logger)
        try? await gracefulShutdown()
        await listeners.shutdown()
        logger.info("TURN stopped")
    }
}
