import Foundation
import Logging
import NIOCore
import NIOPosix
import NIOSSL
import Prometheus
import RTCBase
import ServiceLifecycle
import TURN

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
    /// The same for each relay socket: fewer, since NIO keeps a receive
    /// buffer of `count × maxDatagramSize` per socket and there may be
    /// thousands of relays.
    public var relayVectorReadCount = 8
    /// Largest datagram read whole; longer ones are truncated (and then
    /// refused as malformed). WebRTC keeps packets under ~1200–1500 bytes.
    public var maxDatagramSize = 2048

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

/// Running TURN listeners. Everything lives on one event loop; the methods
/// here hop onto it.
public final class TURNListeners: Sendable {
    public let udpAddress: SocketAddress
    public let tcpAddress: SocketAddress
    public let tlsAddress: SocketAddress?
    private let loop: any EventLoop
    private let edge: NIOLoopBound<TURNEdge>

    private init(udp: SocketAddress, tcp: SocketAddress, tls: SocketAddress?, loop: any EventLoop,
                 edge: NIOLoopBound<TURNEdge>) {
        udpAddress = udp
        tcpAddress = tcp
        tlsAddress = tls
        self.loop = loop
        self.edge = edge
    }

    /// Binds the listeners on one loop of `group` and returns once they
    /// accept traffic. `registry`: where counters are exported (nil: none).
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
        let relayHost = await relayBindAddress(configuration, loop: loop)
        // Random relay ports and indication ids (RFC 8656 §7.2).
        let engine = TURNServer(configuration: configuration.engine, seed: UInt64.random(in: .min ... .max))
        let metrics = registry.map { TURNMetrics(registry: $0) }
        let metricsBox = UncheckedBox(metrics)
        let edge = try await loop.submit {
            NIOLoopBound(TURNEdge(loop: loop, engine: engine, logger: logger, metrics: metricsBox.value,
                                  relayBindHost: relayHost,
                                  vectorReadCount: configuration.relayVectorReadCount,
                                  maxDatagramSize: configuration.maxDatagramSize), eventLoop: loop)
        }.get()
        let maxMessage = configuration.engine.maxMessageSize
        do {
            // No SO_REUSEADDR on UDP: on Linux it would let a second process
            // share the port.
            let udp = try await DatagramBootstrap(group: loop)
                .channelOption(.datagramVectorReadMessageCount, value: configuration.vectorReadCount)
                // NIO splits one receive buffer evenly among the vector slots.
                .channelOption(.recvAllocator, value: FixedSizeRecvByteBufferAllocator(
                    capacity: configuration.vectorReadCount * configuration.maxDatagramSize))
                .channelInitializer { channel in
                    channel.eventLoop.makeCompletedFuture {
                        try channel.pipeline.syncOperations.addHandler(ListenerHandler(edge: edge.value))
                        edge.value.listener = channel
                    }
                }
                .bind(host: configuration.host, port: configuration.port).get()
            let udpAddress = try udp.localAddress ?? SocketAddress(ipAddress: configuration.host, port: configuration.port)
            let port = udpAddress.port ?? configuration.port
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
                                StreamHandler(edge: edge.value, secure: secure, maxMessageSize: maxMessage))
                        }
                    }
                    .bind(host: configuration.host, port: port).get()
                try await loop.submit { edge.value.servers.append(server) }.get()
                return server
            }
            let tcp = try await streamServer(port: port, secure: false)
            logger.info("TURN listening", metadata: ["udp": "\(configuration.host):\(port)",
                                                     "tcp": "\(configuration.host):\(port)",
                                                     "realm": "\(configuration.engine.realm)",
                                                     "relay-bind": "\(relayHost)",
                                                     "relay-ports": "\(configuration.engine.relayPorts)"])
            var tlsAddress: SocketAddress?
            if let tls = configuration.tls {
                let server = try await streamServer(port: tls.port, secure: true)
                tlsAddress = server.localAddress
                logger.info("TURN over TLS listening", metadata: ["tls": "\(configuration.host):\(server.localAddress?.port ?? tls.port)"])
            }
            try await loop.submit { edge.value.startMetrics() }.get()
            return TURNListeners(udp: udpAddress, tcp: tcp.localAddress ?? udpAddress, tls: tlsAddress, loop: loop, edge: edge)
        } catch {
            try? await loop.flatSubmit { edge.value.close() }.get()
            throw error
        }
    }

    private static func relayBindAddress(_ configuration: TURNServiceConfiguration, loop: any EventLoop) async -> String {
        if let host = configuration.relayBindHost { return host }
        let publicText = "\(configuration.engine.publicIP)"
        if publicText == configuration.host { return publicText }
        guard let probe = try? await DatagramBootstrap(group: loop).bind(host: publicText, port: 0).get() else {
            return configuration.host
        }
        try? await probe.close()
        return publicText
    }

    /// Closes every listener, connection and relay socket.
    public func shutdown() async {
        let edge = self.edge
        try? await loop.flatSubmit { edge.value.close() }.get()
    }

    /// Bound relay sockets right now.
    public func relaySocketCount() async throws -> Int {
        let edge = self.edge
        return try await loop.submit { edge.value.relays.count }.get()
    }

    /// Live allocations right now.
    public func allocationCount() async throws -> Int {
        let edge = self.edge
        return try await loop.submit { edge.value.engine.allocationCount }.get()
    }

    /// The engine's counters, plus stream framing errors.
    public func counters() async throws -> (TURNCounters, framingErrors: Int) {
        let edge = self.edge
        return try await loop.submit { (edge.value.engine.counters, edge.value.framingErrors) }.get()
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

/// Carries a non-Sendable value onto the event loop that will own it.
private struct UncheckedBox<T>: @unchecked Sendable {
    let value: T
    init(_ value: T) { self.value = value }
}
