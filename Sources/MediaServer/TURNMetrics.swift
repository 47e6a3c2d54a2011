import Prometheus
import TURN

/// Exports the TURN engine's counters to a Prometheus registry (the one
/// Signaling serves on `/metrics`). The engine keeps plain integers that only
/// its thread touches; this copies the increase since the last sync into
/// the registry's thread-safe counters, a few times a second, so the hot path
/// never touches an atomic.
final class TURNMetrics {
    private let refusals: [(KeyPath<TURNCounters, Int>, Counter)]
    private let volume: [(KeyPath<TURNCounters, Int>, Counter)]
    private var last = TURNCounters()
    /// Stream framing errors are the edge's own (the framer runs there).
    private let framing: Counter
    private var framingReported = 0
    /// The UDP edge's own counters (datagrams the kernel refused, failed reads, cut datagrams, GSO use).
    private let ioCounters: [(KeyPath<TURNIOCounters, Int>, Counter)]
    private var lastIO = TURNIOCounters()
    private let activeAllocations: Gauge
    private let relaySockets: Gauge
    private let streamConnections: Gauge

    init(registry: PrometheusCollectorRegistry) {
        let refusal = MetricNameDescriptor(namespace: "parley", metricName: "turn_refusals", unitName: "total",
                                           helpText: "TURN requests refused and packets dropped, by reason")
        func reason(_ name: String) -> Counter { registry.makeCounter(descriptor: refusal, labels: [("reason", name)]) }
        refusals = [
            (\.malformedPackets, reason("malformed")),
            (\.badChannelDataLength, reason("bad_channeldata_length")),
            (\.unexpectedMessages, reason("unexpected_message")),
            (\.unboundChannel, reason("unbound_channel")),
            (\.noAllocation, reason("no_allocation")),
            (\.noPermission, reason("no_permission")),
            (\.forbiddenPeerDrops, reason("forbidden_peer")),
            (\.bandwidthDrops, reason("bandwidth")),
            (\.rateLimited, reason("rate_limited")),
            (\.badRequest400, reason("bad_request_400")),
            (\.unauthenticated401, reason("unauthenticated_401")),
            (\.unknownUser401, reason("unknown_user_401")),
            (\.badIntegrity401, reason("bad_integrity_401")),
            (\.forbidden403, reason("forbidden_403")),
            (\.unknownAttribute420, reason("unknown_attribute_420")),
            (\.allocationMismatch437, reason("allocation_mismatch_437")),
            (\.staleNonce438, reason("stale_nonce_438")),
            (\.addressFamily440, reason("address_family_440")),
            (\.wrongCredentials441, reason("wrong_credentials_441")),
            (\.unsupportedTransport442, reason("unsupported_transport_442")),
            (\.peerAddressFamilyMismatch443, reason("peer_address_family_443")),
            (\.quota486, reason("quota_486")),
            (\.insufficientCapacity508, reason("insufficient_capacity_508")),
        ]
        framing = reason("framing")
        func counter(_ name: String, _ help: String, _ labels: [(String, String)] = []) -> Counter {
            registry.makeCounter(descriptor: MetricNameDescriptor(namespace: "parley", metricName: name, unitName: "total",
                                                                  helpText: help), labels: labels)
        }
        let packetsHelp = "Packets relayed by TURN, by direction"
        let bytesHelp = "Payload bytes relayed by TURN, by direction"
        let endedHelp = "TURN allocations ended, by how"
        volume = [
            (\.allocationsCreated, counter("turn_allocations", "TURN allocations created")),
            (\.allocationsDeleted, counter("turn_allocations_ended", endedHelp, [("how", "deleted")])),
            (\.allocationsExpired, counter("turn_allocations_ended", endedHelp, [("how", "expired")])),
            (\.packetsToPeers, counter("turn_relayed_packets", packetsHelp, [("direction", "to_peer")])),
            (\.packetsToClients, counter("turn_relayed_packets", packetsHelp, [("direction", "to_client")])),
            (\.bytesToPeers, counter("turn_relayed_bytes", bytesHelp, [("direction", "to_peer")])),
            (\.bytesToClients, counter("turn_relayed_bytes", bytesHelp, [("direction", "to_client")])),
            (\.bindingResponses, counter("turn_binding_responses", "STUN Binding requests answered on the TURN port")),
        ]
        let ioHelp = "TURN UDP socket errors, by kind"
        ioCounters = [
            (\.sendFailures, counter("turn_io_errors", ioHelp, [("kind", "send_failed")])),
            (\.receiveErrors, counter("turn_io_errors", ioHelp, [("kind", "receive_failed")])),
            (\.truncated, counter("turn_io_errors", ioHelp, [("kind", "truncated")])),
            (\.segmented, counter("turn_gso_datagrams", "TURN datagrams sent in UDP GSO runs")),
        ]
        func gauge(_ name: String, _ help: String) -> Gauge {
            registry.makeGauge(descriptor: MetricNameDescriptor(namespace: "parley", metricName: name, unitName: "",
                                                                helpText: help))
        }
        activeAllocations = gauge("turn_active_allocations", "Live TURN allocations")
        relaySockets = gauge("turn_relay_sockets", "Bound TURN relay sockets")
        streamConnections = gauge("turn_stream_connections", "Open TURN connections over TCP and TLS")
    }

    func sync(_ counters: TURNCounters, framingErrors: Int, allocations: Int, relays: Int, streams: Int, io: TURNIOCounters) {
        for (path, counter) in ioCounters { add(io[keyPath: path] - lastIO[keyPath: path], to: counter) }
        lastIO = io
        for (path, counter) in refusals { add(counters[keyPath: path] - last[keyPath: path], to: counter) }
        for (path, counter) in volume { add(counters[keyPath: path] - last[keyPath: path], to: counter) }
        last = counters
        add(framingErrors - framingReported, to: framing)
        framingReported = framingErrors
        activeAllocations.set(Int64(allocations))
        relaySockets.set(Int64(relays))
        streamConnections.set(Int64(streams))
    }

    private func add(_ delta: Int, to counter: Counter) {
        if delta > 0 { counter.increment(by: Int64(delta)) }
    }
}
