import Foundation
import Logging
import MediaServer
import NIOCore
import NIOPosix
import Prometheus
import RTCBase
import STUN
import Testing
import TURN

/// A small TURN client over a real socket (UDP datagrams or a TCP stream),
/// written from RFC 8656 for these tests: long-term credentials, Allocate,
/// CreatePermission, ChannelBind, Send, ChannelData.
final class TURNTestClient {
    let socket: TestSocket
    let serverPort: UInt16
    let username: String
    let password: String
    var realm = ""
    var nonce = ""
    private var nextTID: UInt64 = 1

    init(udpTo port: UInt16, username: String = "alice", password: String = "wonderland") throws {
        socket = try TestSocket(udp: true)
        serverPort = port
        self.username = username
        self.password = password
    }

    init(tcpTo port: UInt16, username: String = "alice", password: String = "wonderland") throws {
        socket = try TestSocket(udp: false, connectTo: port)
        serverPort = port
        self.username = username
        self.password = password
    }

    func tid() -> STUNTransactionID {
        defer { nextTID += 1 }
        return STUNTransactionID(high: 0x5EED, low: nextTID)
    }

    func sendRaw(_ bytes: [UInt8]) throws {
        if socket.isStream { try socket.write(bytes) } else { try socket.send(bytes, to: serverPort) }
    }

    /// The next whole message from the server (a datagram, or one framed
    /// message from the stream, padding included).
    func receiveRaw() -> [UInt8]? {
        guard socket.isStream else { return socket.receive()?.bytes }
        guard let head = socket.read(exactly: 4) else { return nil }
        let length = Int(head[2]) << 8 | Int(head[3])
        let rest = head[0] & 0xC0 == 0x40 ? (length + 3) & ~3 : 16 + length
        guard let body = socket.read(exactly: rest) else { return nil }
        return head + body
    }

    /// A signed request (after a 401 challenge taught realm and nonce);
    /// retries once on 401/438 with the fresh nonce.
    func request(_ method: STUNMethod, _ attributes: [STUNAttribute], signed: Bool = true) throws -> STUNMessage {
        for _ in 0..<3 {
            var attrs = attributes
            var key: STUNIntegrityKey?
            if signed && !nonce.isEmpty {
                attrs += [.username(username), .realm(realm), .nonce(nonce)]
                key = STUNIntegrityKey(username: username, realm: realm, password: password, algorithm: .md5)
            }
            let message = STUNMessage(type: STUNMessageType(method: method, messageClass: .request), transactionID: tid(),
                                      attributes: attrs)
            try sendRaw(try message.encoded(integrity: key, fingerprint: true))
            guard let raw = receiveRaw() else { throw SocketError.failed("no answer to \(method)") }
            let answer = try STUNMessage(parsing: raw)
            if signed, let code = answer.errorCode?.code, code == 401 || code == 438, let n = answer.nonce {
                nonce = n
                realm = answer.realm ?? realm
                continue
            }
            return answer
        }
        throw SocketError.failed("authentication loop")
    }

    func allocate() throws -> TransportAddress {
        let answer = try request(.allocate, [.requestedTransport(protocolNumber: 17)])
        guard answer.type.messageClass == .successResponse,
              case .xorRelayedAddress(let relay)? = answer.first(.xorRelayedAddress) else {
            throw SocketError.failed("allocate: \(answer.errorCode.map { "\($0.code)" } ?? "no relay")")
        }
        return relay
    }
}

func loopbackConfiguration(port: Int = 0, relayPorts: ClosedRange<UInt16>) -> TURNServiceConfiguration {
    var engine = TURNServerConfiguration(realm: "parley.test", publicIP: IPAddress("127.0.0.1")!, relayPorts: relayPorts,
                                         nonceSecret: Array("test-nonce-key".utf8),
                                         wallClockSeconds: { _ in Int64(Date().timeIntervalSince1970) })
    engine.users = ["alice": "wonderland"]
    engine.restSecret = Array("rest-secret".utf8)
    engine.allowLoopbackPeers = true
    return TURNServiceConfiguration(host: "127.0.0.1", port: port, engine: engine)
}

/// Waits until `condition` holds (the server works on its own threads).
func eventually(_ condition: () async throws -> Bool) async throws -> Bool {
    for _ in 0..<100 {
        if try await condition() { return true }
        try await Task.sleep(for: .milliseconds(20))
    }
    return false
}

@Suite("TURN listeners on loopback", .serialized)
struct TURNListenerTests {
    let logger = Logger(label: "turn-test")

    @Test("UDP: allocate, Send/Data indications, ChannelData both ways, metrics")
    func udpRelay() async throws {
        let registry = PrometheusCollectorRegistry()
        let listeners = try await TURNListeners.start(configuration: loopbackConfiguration(relayPorts: 46000...46099),
                                                      registry: registry, logger: logger)
        defer { Task { await listeners.shutdown() } }
        let port = UInt16(try #require(listeners.udpAddress.port))
        let client = try TURNTestClient(udpTo: port)

        // Binding, unauthenticated.
        let binding = try client.request(.binding, [], signed: false)
        #expect(binding.type.messageClass == .successResponse)
        if case .xorMappedAddress(let mapped)? = binding.first(.xorMappedAddress) {
            #expect(mapped == client.socket.localAddress)
        } else {
            Issue.record("no XOR-MAPPED-ADDRESS")
        }

        let relay = try client.allocate()
        #expect(relay.ip == IPAddress("127.0.0.1"))
        #expect((46000...46099).contains(relay.port))
        #expect(try await listeners.relaySocketCount() == 1)

        let peer = try TestSocket(udp: true)
        let peerAddress = peer.localAddress
        let permission = try client.request(.createPermission, [.xorPeerAddress(peerAddress)])
        #expect(permission.type.messageClass == .successResponse)

        // Send indication → the peer gets the data from the relay address.
        let send = STUNMessage(type: STUNMessageType(method: .send, messageClass: .indication), transactionID: client.tid(),
                               attributes: [.xorPeerAddress(peerAddress), .data(Array("hello peer".utf8))])
        try client.sendRaw(try send.encoded())
        let atPeer = try #require(peer.receive())
        #expect(atPeer.bytes == Array("hello peer".utf8))
        #expect(atPeer.fromPort == relay.port)

        // Peer → client without a channel: a Data indication.
        try peer.send(Array("hello client".utf8), to: relay.port)
        let dataIndication = try STUNMessage(parsing: try #require(client.receiveRaw()))
        #expect(dataIndication.type == STUNMessageType(method: .data, messageClass: .indication))
        if case .data(let d)? = dataIndication.first(.data) { #expect(d == Array("hello client".utf8)) } else {
            Issue.record("no DATA")
        }

        // ChannelData both ways.
        let bind = try client.request(.channelBind, [.channelNumber(0x4001), .xorPeerAddress(peerAddress)])
        #expect(bind.type.messageClass == .successResponse)
        for size in [0, 1, 5, 1200] {
            let payload = (0..<size).map { UInt8(truncatingIfNeeded: $0 &* 7 &+ size) }
            try client.sendRaw(TURNChannelData.encode(channel: 0x4001, payload: payload, padded: false))
            let got = try #require(peer.receive(), "payload of \(size) bytes did not reach the peer")
            #expect(got.bytes == payload)
            try peer.send(payload, to: relay.port)
            let back = try #require(client.receiveRaw())
            #expect(back.count == 4 + size)  // UDP: no padding
            #expect(Array(back.prefix(4)) == [0x40, 0x01, UInt8(size >> 8), UInt8(size & 0xFF)])
            #expect(Array(back.dropFirst(4)) == payload)
        }

        // Garbage and an unbound channel are dropped and counted.
        try client.sendRaw([0xFF, 0x00, 0x13, 0x37])
        try client.sendRaw(TURNChannelData.encode(channel: 0x4ABC, payload: [1, 2, 3], padded: false))
        #expect(try await eventually {
            let (c, _) = try await listeners.counters()
            return c.malformedPackets >= 1 && c.unboundChannel >= 1
        })
        let (counters, _) = try await listeners.counters()
        #expect(counters.packetsToPeers == 5)   // 1 Send + 4 ChannelData
        #expect(counters.packetsToClients == 5)
        #expect(counters.allocationsCreated == 1)

        // Exported to the registry within the sync period.
        #expect(try await eventually {
            var text = [UInt8]()
            registry.emit(into: &text)
            let s = String(decoding: text, as: UTF8.self)
            return s.contains("parley_turn_allocations_total 1")
                && s.contains(#"parley_turn_refusals_total{reason="unbound_channel"} 1"#)
                && s.contains(#"parley_turn_relayed_packets_total{direction="to_peer"} 5"#)
        })
        await listeners.shutdown()
    }

    @Test("TCP: split and coalesced reads, padded ChannelData, closing the connection frees the allocation")
    func tcpFraming() async throws {
        let listeners = try await TURNListeners.start(configuration: loopbackConfiguration(relayPorts: 46100...46199),
                                                      registry: nil, logger: logger)
        let port = UInt16(try #require(listeners.tcpAddress.port))
        #expect(listeners.tcpAddress.port == listeners.udpAddress.port)

        let c = try TURNTestClient(tcpTo: port)
        // Two Binding requests in one write, the second split across two writes.
        let b1 = try STUNMessage(type: .bindingRequest, transactionID: c.tid(), attributes: []).encoded()
        let b2 = try STUNMessage(type: .bindingRequest, transactionID: c.tid(), attributes: []).encoded()
        try c.socket.write(b1 + b2.prefix(7))
        try await Task.sleep(for: .milliseconds(50))
        try c.socket.write(Array(b2.dropFirst(7)))
        for expected in [b1, b2] {
            let answer = try STUNMessage(parsing: try #require(c.receiveRaw()))
            #expect(answer.type.messageClass == .successResponse)
            #expect(Array(answer.transactionID.bytes) == Array(expected[8..<20]))
        }

        let relay = try c.allocate()
        let peer = try TestSocket(udp: true)
        let bind = try c.request(.channelBind, [.channelNumber(0x4000), .xorPeerAddress(peer.localAddress)])
        #expect(bind.type.messageClass == .successResponse)

        // Client → peer: padded ChannelData, two messages in one write.
        let m1 = TURNChannelData.encode(channel: 0x4000, payload: [1, 2, 3, 4, 5], padded: true)
        let m2 = TURNChannelData.encode(channel: 0x4000, payload: [9], padded: true)
        #expect(m1.count == 12)
        try c.socket.write(m1 + m2)
        #expect(peer.receive()?.bytes == [1, 2, 3, 4, 5])
        #expect(peer.receive()?.bytes == [9])

        // Peer → client: header, data, padding to 4.
        try peer.send([7, 7, 7, 7, 7], to: relay.port)
        let back = try #require(c.socket.read(exactly: 12))
        #expect(back == [0x40, 0x00, 0x00, 0x05, 7, 7, 7, 7, 7, 0, 0, 0])

        // Closing the connection deletes its allocation and relay socket.
        #expect(try await listeners.allocationCount() == 1)
        c.socket.closeNow()
        #expect(try await eventually { try await listeners.allocationCount() == 0 })
        #expect(try await eventually { try await listeners.relaySocketCount() == 0 })

        // Garbage on a stream closes it and is counted.
        let bad = try TestSocket(udp: false, connectTo: port)
        try bad.write([0xEE, 0xEE, 0xEE, 0xEE])
        #expect(bad.read(exactly: 1) == nil)
        let (_, framing) = try await listeners.counters()
        #expect(framing == 1)
        await listeners.shutdown()
    }

    @Test("Shutdown closes the listeners and every relay socket")
    func shutdownClosesRelays() async throws {
        let listeners = try await TURNListeners.start(configuration: loopbackConfiguration(relayPorts: 46200...46209),
                                                      registry: nil, logger: logger)
        let port = UInt16(try #require(listeners.udpAddress.port))
        let client = try TURNTestClient(udpTo: port)
        let relay = try client.allocate()
        #expect(try await listeners.relaySocketCount() == 1)

        await listeners.shutdown()
        // The relay port is free again: binding it succeeds.
        let channel = try await DatagramBootstrap(group: MultiThreadedEventLoopGroup.singleton)
            .bind(host: "127.0.0.1", port: Int(relay.port)).get()
        try await channel.close()
        // And the listener no longer answers.
        let probe = try TestSocket(udp: true, timeoutMS: 300)
        try probe.send(try STUNMessage(type: .bindingRequest, transactionID: client.tid(), attributes: []).encoded(), to: port)
        #expect(probe.receive() == nil)
    }
}
