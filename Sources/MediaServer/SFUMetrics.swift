import Prometheus
import SFU

/// The SFU's counters on `/metrics`, shared by every media worker: each
/// worker adds what its engine counted since its last sync (a few times a
/// second), so the forwarding path never touches an atomic. Immutable
/// after init (key paths are not Sendable, hence unchecked).
final class SFUMetrics: @unchecked Sendable {
    private let counters: [(KeyPath<SFUCounters, Int>, Counter)]
    private let sendFailures: Counter
    private let receiveErrors: Counter
    private let truncated: Counter
    private let rooms: [Gauge]
    private let transports: [Gauge]

    init(registry: PrometheusCollectorRegistry, workers: Int) {
        func counter(_ name: String, _ help: String, _ labels: [(String, String)] = []) -> Counter {
            registry.makeCounter(descriptor: MetricNameDescriptor(namespace: "parley", metricName: name, unitName: "total",
                                                                  helpText: help), labels: labels)
        }
        let dropHelp = "Media datagrams and packets the SFU dropped, by reason"
        func drop(_ reason: String) -> Counter { counter("sfu_dropped", dropHelp, [("reason", reason)]) }
        let rtcpHelp = "RTCP feedback the SFU received or sent, by kind"
        func rtcp(_ kind: String, _ direction: String) -> Counter {
            counter("sfu_rtcp", rtcpHelp, [("kind", kind), ("direction", direction)])
        }
        counters = [
            (\.datagramsIn, counter("sfu_datagrams_in", "Datagrams received on the media ports")),
            (\.malformedDatagrams, drop("malformed")),
            (\.unknownICEUsername, drop("unknown_ice_username")),
            (\.unknownSource, drop("unknown_source")),
            (\.srtpAuthFailures, drop("srtp_auth")),
            (\.srtpReplays, drop("srtp_replay")),
            (\.malformedRTP, drop("malformed_rtp")),
            (\.unknownSSRC, drop("unknown_ssrc")),
            (\.malformedRTCP, drop("malformed_rtcp")),
            (\.rtcpRateLimited, drop("rtcp_rate_limited")),
            (\.paddingDropped, drop("padding")),
            (\.rtpIn, counter("sfu_rtp_in", "RTP packets received from publishers")),
            (\.rtcpIn, counter("sfu_rtcp_in", "RTCP compounds received")),
            (\.rtpForwarded, counter("sfu_rtp_forwarded", "RTP packets forwarded to subscribers")),
            (\.bytesForwarded, counter("sfu_bytes_forwarded", "RTP payload bytes forwarded to subscribers")),
            (\.rtcpOut, counter("sfu_rtcp_out", "RTCP compounds sent")),
            (\.nackRequested, rtcp("nack_item", "in")),
            (\.retransmitted, counter("sfu_retransmissions", "Packets resent from the cache on a subscriber's NACK")),
            (\.retransmissionMisses, counter("sfu_retransmission_misses", "NACKed packets no longer in the cache")),
            (\.nacksSent, rtcp("nack", "out")),
            (\.repairedFromPublisher, counter("sfu_repaired_from_publisher", "Publisher losses repaired by NACK/RTX")),
            (\.pliReceived, rtcp("pli", "in")),
            (\.firReceived, rtcp("fir", "in")),
            (\.keyframeRequestsSent, rtcp("pli", "out")),
            (\.keyframesFromCache, counter("sfu_keyframes_from_cache", "Subscriber streams started from the cached last keyframe")),
            (\.transportFeedbackSent, rtcp("transport_cc", "out")),
            (\.rembSent, rtcp("remb", "out")),
            (\.senderReportsSent, rtcp("sr", "out")),
            (\.receiverReportsSent, rtcp("rr", "out")),
            (\.transportsOpened, counter("sfu_transports_opened", "Peer connections the SFU opened")),
            (\.transportsClosed, counter("sfu_transports_closed", "Peer connections the SFU closed")),
            (\.consentLost, counter("sfu_consent_lost", "Peer connections that lost ICE consent (RFC 7675)")),
        ]
        let ioHelp = "Media UDP socket errors, by kind"
        sendFailures = counter("sfu_io_errors", ioHelp, [("kind", "send_failed")])
        receiveErrors = counter("sfu_io_errors", ioHelp, [("kind", "receive_failed")])
        truncated = counter("sfu_io_errors", ioHelp, [("kind", "truncated")])
        func gauge(_ name: String, _ help: String, worker: Int) -> Gauge {
            registry.makeGauge(descriptor: MetricNameDescriptor(namespace: "parley", metricName: name, unitName: "", helpText: help),
                               labels: [("worker", String(worker))])
        }
        rooms = (0..<workers).map { gauge("sfu_rooms", "Calls with media on a worker", worker: $0) }
        transports = (0..<workers).map { gauge("sfu_transports", "Live peer connections on a worker", worker: $0) }
    }

    func add(_ now: SFUCounters, since before: SFUCounters) {
        for (path, counter) in counters {
            let delta = now[keyPath: path] - before[keyPath: path]
            if delta > 0 { counter.increment(by: Int64(delta)) }
        }
    }

    func addIO(sendFailures s: Int, receiveErrors r: Int, truncated t: Int) {
        if s > 0 { sendFailures.increment(by: Int64(s)) }
        if r > 0 { receiveErrors.increment(by: Int64(r)) }
        if t > 0 { truncated.increment(by: Int64(t)) }
    }

    func setGauges(worker: Int, rooms r: Int, transports t: Int) {
        guard worker < rooms.count else { return }
        rooms[worker].set(Int64(r))
        transports[worker].set(Int64(t))
    }
}
