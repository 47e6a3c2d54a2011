import Chat
import Logging
import Prometheus

/// Settings of the signaling edges.
public struct SignalingConfiguration: Sendable {
    public var host: String
    public var httpPort: Int
    /// 0 turns the line protocol off.
    public var linePort: Int
    public var maxFrameBytes: Int
    public var rateLimit: Double
    public var rateBurst: Double
    /// Events a connection may have queued before it is closed as too slow.
    public var outboundCapacity: Int
    /// STUN/TURN servers handed to a user in `login_response.ice_servers`
    /// (fresh credentials per login). Nil leaves the field out (TURN off).
    public var iceServers: (@Sendable (_ username: String) -> [ICEServer])?
    /// Origins whose pages may open `/ws` (the `Origin` header, RFC 6455
    /// §4.2.1); empty: any. Requests without an Origin (non-browser
    /// clients) are always allowed.
    public var allowedOrigins: [String] = []

    public init(host: String = "127.0.0.1", httpPort: Int = 8080, linePort: Int = 7070, maxFrameBytes: Int = 65536,
                rateLimit: Double = 50, rateBurst: Double = 200, outboundCapacity: Int = 8192)
    {
        self.host = host
        self.httpPort = httpPort
        self.linePort = linePort
        self.maxFrameBytes = maxFrameBytes
        self.rateLimit = rateLimit
        self.rateBurst = rateBurst
        self.outboundCapacity = outboundCapacity
    }
}

/// One entry of `ice_servers` (the shape of WebRTC's `RTCIceServer`).
public struct ICEServer: Sendable, Equatable {
    public var urls: [String]
    public var username: String?
    public var credential: String?

    public init(urls: [String], username: String? = nil, credential: String? = nil) {
        self.urls = urls
        self.username = username
        self.credential = credential
    }
}

/// Counters and gauges exported on `/metrics`.
public final class SignalingMetrics: Sendable {
    public let registry: PrometheusCollectorRegistry
    let framesIn: Counter
    let messagesStored: Counter
    let logins: Counter
    private let errors: [ErrorCode: Counter]

    let connections: Gauge
    let onlineUsers: Gauge

    public init(registry: PrometheusCollectorRegistry = PrometheusCollectorRegistry()) {
        self.registry = registry
        func counter(_ name: String, _ help: String) -> Counter {
            registry.makeCounter(descriptor: MetricNameDescriptor(namespace: "parley", metricName: name, unitName: "total",
                                                                  helpText: help))
        }
        framesIn = counter("requests", "Requests received (WebSocket frames and protocol lines)")
        messagesStored = counter("messages_stored", "Messages stored")
        logins = counter("logins", "Successful logins")
        connections = registry.makeGauge(descriptor: MetricNameDescriptor(
            namespace: "parley", metricName: "connections", unitName: "", helpText: "Open signaling connections"))
        onlineUsers = registry.makeGauge(descriptor: MetricNameDescriptor(
            namespace: "parley", metricName: "online_users", unitName: "", helpText: "Users with at least one open connection"))
        var errors: [ErrorCode: Counter] = [:]
        let errorDescriptor = MetricNameDescriptor(namespace: "parley", metricName: "errors", unitName: "total",
                                                   helpText: "Requests answered with an error, by code")
        for code in ErrorCode.allCases {
            errors[code] = registry.makeCounter(descriptor: errorDescriptor, labels: [("code", code.rawValue)])
        }
        self.errors = errors
    }

    func countError(_ code: ErrorCode) { errors[code]?.increment() }
}

/// What every connection handler shares.
public struct SignalingContext: Sendable {
    public let service: ChatService
    public let hub: ConnectionHub
    public let metrics: SignalingMetrics
    public let configuration: SignalingConfiguration
    public let logger: Logger
    /// Call signaling; nil when the server has no SFU (call frames are refused).
    public let calls: CallService?

    public init(service: ChatService, hub: ConnectionHub, metrics: SignalingMetrics, configuration: SignalingConfiguration,
                logger: Logger, calls: CallService? = nil)
    {
        self.service = service
        self.hub = hub
        self.metrics = metrics
        self.configuration = configuration
        self.logger = logger
        self.calls = calls
    }
}
