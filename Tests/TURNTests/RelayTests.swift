import RTCBase
import STUN
import Testing
@testable import TURN

@Suite("Relaying: permissions, indications, channels (RFC 8656 §9–§12)")
struct RelayTests {
    @Test func sendIndicationNeedsPermissionThenRelays() throws {
        let h = Harness()
        let relay = try #require(h.allocate()?.relay)
        let payload: [UInt8] = Array("hello peer".utf8)
        // No permission yet: silently dropped.
        #expect(h.fromClient(sendIndication(peer: peerA, data: payload, tid: h.tid())).isEmpty)
        #expect(h.server.counters.noPermission == 1)

        let response = try #require(h.permit([peerA]))
        #expect(response.isSuccess)
        let sends = sendToPeerActions(h.fromClient(sendIndication(peer: peerA, data: payload, tid: h.tid())))
        #expect(sends.count == 1)
        #expect(sends.first?.bytes == payload)
        #expect(sends.first?.relay == relay)
        #expect(sends.first?.peer == peerA)
        // Permission is per IP: another port of the same peer IP works too.
        let otherPort = TransportAddress(ip: peerA.ip, port: 9999)
        #expect(sendToPeerActions(h.fromClient(sendIndication(peer: otherPort, data: payload, tid: h.tid()))).count == 1)
        #expect(h.server.counters.packetsToPeers == 2)
        // An indication with an unknown comprehension-required attribute is discarded.
        let odd = try STUNMessage(type: STUNMessageType(method: .send, messageClass: .indication), transactionID: h.tid(),
                                  attributes: [.xorPeerAddress(peerA), .data(payload), .unknown(type: 0x7001, value: [])]).encoded()
        #expect(h.fromClient(odd).isEmpty)
        #expect(h.server.counters.packetsToPeers == 2)
    }

    @Test func peerPacketBecomesDataIndication() throws {
        let h = Harness()
        let relay = try #require(h.allocate()?.relay)
        // Without a permission the peer's packet is dropped.
        #expect(h.fromPeer([1, 2, 3], relay: relay).isEmpty)
        #expect(h.server.counters.noPermission == 1)
        _ = h.permit([peerA])
        let sends = sendToClientActions(h.fromPeer([1, 2, 3, 4, 5], relay: relay))
        #expect(sends.count == 1)
        let send = try #require(sends.first)
        #expect(send.client == clientA)
        #expect(send.transport == .udp)
        let indication = try STUNMessage(parsing: send.bytes)
        #expect(indication.type == STUNMessageType(method: .data, messageClass: .indication))
        #expect(indication.xorPeerAddress == peerA)
        #expect(indication.dataValue == [1, 2, 3, 4, 5])
        // An unknown relay address: dropped and counted.
        #expect(h.fromPeer([1], relay: TransportAddress(ip: publicIP, port: 1)).isEmpty)
        #expect(h.server.counters.noAllocation == 1)
    }

    @Test func channelDataBothWaysThroughFastPaths() throws {
        let h = Harness()
        let relay = try #require(h.allocate()?.relay)
        let bind = try #require(h.channelBind(0x4001, peerA))
        #expect(bind.isSuccess)

        // Client → peer: the route names the payload inside the input buffer.
        let payload = (0..<1200).map { UInt8(truncatingIfNeeded: $0) }
        let message = TURNChannelData.encode(channel: 0x4001, payload: payload, padded: false)
        let route = message.withUnsafeBytes { h.server.routeChannelData($0, from: clientA, transport: .udp, now: h.now) }
        let r = try #require(route)
        #expect(r.relay == relay)
        #expect(r.peer == peerA)
        #expect(r.payload == 4..<1204)
        #expect(Array(message[r.payload]) == payload)
        #expect(h.server.pollAction() == nil)  // the fast path queues nothing

        // ChannelBind installed the permission, so the peer reaches the client
        // on the channel: header + payload, no padding over UDP.
        let back: [UInt8] = [9, 8, 7]
        let peerRoute = back.withUnsafeBytes { h.server.routePeerData($0, relay: relay, from: peerA, now: h.now) }
        #expect(peerRoute == .channelData(channel: 0x4001, client: clientA, transport: .udp, padding: 0))
        var header = [UInt8](repeating: 0, count: 4)
        header.withUnsafeMutableBytes { #expect(TURNChannelData.writeHeader(channel: 0x4001, length: back.count, into: $0)) }
        #expect(header == [0x40, 0x01, 0x00, 0x03])

        // The slow entry points produce the same bytes as actions.
        let viaSlow = sendToClientActions(h.fromPeer(back, relay: relay))
        #expect(viaSlow.first?.bytes == header + back)
        let toPeer = sendToPeerActions(h.fromClient(message))
        #expect(toPeer.first?.bytes == payload)
    }

    @Test func channelDataOverTCPIsPadded() throws {
        let h = Harness()
        let conn = TURNTransport.tcp(TURNConnectionID(3))
        let relay = try #require(h.allocate(alice, transport: conn)?.relay)
        _ = h.channelBind(0x4ABC, peerA, transport: conn)
        let route = [UInt8](repeating: 1, count: 5).withUnsafeBytes { h.server.routePeerData($0, relay: relay, from: peerA, now: h.now) }
        #expect(route == .channelData(channel: 0x4ABC, client: clientA, transport: conn, padding: 3))
        let sent = sendToClientActions(h.fromPeer([1, 2, 3, 4, 5], relay: relay))
        #expect(sent.first?.bytes == [0x4A, 0xBC, 0, 5, 1, 2, 3, 4, 5, 0, 0, 0])
        // Padded ChannelData from the client: the payload range excludes padding.
        let padded = TURNChannelData.encode(channel: 0x4ABC, payload: [7, 7], padded: true)
        #expect(padded.count == 8)
        let r = padded.withUnsafeBytes { h.server.routeChannelData($0, from: clientA, transport: conn, now: h.now) }
        #expect(r?.payload == 4..<6)
        // Closing the connection deletes the allocation and its relay.
        h.server.handleConnectionClosed(TURNConnectionID(3), now: h.now)
        #expect(h.drain() == [.closeRelay(relay)])
        #expect(h.server.allocationCount == 0)
    }

    @Test func channelBindRules() throws {
        let h = Harness()
        _ = try #require(h.allocate())
        #expect(h.channelBind(0x4000, peerA)?.isSuccess == true)
        // Rebinding the same pair refreshes it.
        #expect(h.channelBind(0x4000, peerA)?.isSuccess == true)
        // The number is taken by another peer; the peer is taken by another number.
        #expect(h.channelBind(0x4000, peerB)?.code == 400)
        #expect(h.channelBind(0x4002, peerA)?.code == 400)
        // Out of range numbers.
        #expect(h.channelBind(0x3FFF, peerB)?.code == 400)
        #expect(h.channelBind(0x5000, peerB)?.code == 400)
        #expect(h.channelBind(0x4FFF, peerB)?.isSuccess == true)
        // Missing XOR-PEER-ADDRESS.
        #expect(h.request(.channelBind, [.channelNumber(0x4003)], credentials: alice).response?.code == 400)
        #expect(h.server.counters.badRequest400 == 5)
    }

    @Test func channelDataOnUnboundChannelIsDroppedAndCounted() throws {
        let h = Harness()
        _ = try #require(h.allocate())
        _ = h.permit([peerA])
        let message = TURNChannelData.encode(channel: 0x4005, payload: [1, 2], padded: false)
        #expect(h.fromClient(message).isEmpty)
        #expect(h.server.counters.unboundChannel == 1)
        // From a client without an allocation.
        #expect(h.fromClient(message, client: clientB).isEmpty)
        #expect(h.server.counters.noAllocation == 1)
    }

    @Test func loopbackAndPrivatePeersAreRefused() throws {
        let h = Harness()
        let relay = try #require(h.allocate()?.relay)
        let refused = ["127.0.0.1:80", "10.1.2.3:80", "172.16.0.1:80", "192.168.1.1:80", "169.254.1.1:80",
                       "0.0.0.0:80", "224.0.0.1:80", "255.255.255.255:80", "100.64.0.1:80"]
        for text in refused {
            let peer = try #require(TransportAddress(text))
            #expect(h.permit([peer])?.code == 403, "\(text)")
        }
        #expect(h.channelBind(0x4000, TransportAddress("10.0.0.1:5000")!)?.code == 403)
        // All or nothing: one bad peer refuses the whole request.
        #expect(h.permit([peerA, TransportAddress("127.0.0.1:1")!])?.code == 403)
        #expect(h.fromPeer([1], relay: relay).isEmpty)  // peerA was not installed
        // A Send indication to a forbidden peer is dropped, not relayed.
        #expect(h.fromClient(sendIndication(peer: TransportAddress("127.0.0.1:9")!, data: [1], tid: h.tid())).isEmpty)
        #expect(h.server.counters.forbiddenPeerDrops == 1)
        // IPv6 peers on an IPv4 relay: 443.
        #expect(h.permit([TransportAddress("[2001:db8::5]:80")!])?.code == 443)
        #expect(h.server.counters.forbidden403 == refused.count + 2)
        // IPv4-mapped IPv6 cannot sneak loopback through (policy check).
        #expect(!h.server.isPeerAllowed(IPAddress("::ffff:127.0.0.1")!))
        #expect(!h.server.isPeerAllowed(IPAddress("fd00::1")!))
        #expect(!h.server.isPeerAllowed(IPAddress("fe80::1")!))
        #expect(!h.server.isPeerAllowed(IPAddress("ff02::1")!))
        #expect(!h.server.isPeerAllowed(IPAddress("::")!))
        #expect(h.server.isPeerAllowed(IPAddress("2001:db8::5")!))
    }

    @Test func loopbackAllowedForTestsAndAllowListOverrides() throws {
        let h = Harness {
            $0.allowLoopbackPeers = true
            $0.allowedPeers = [IPAddressPrefix("10.20.0.0/16")!]
        }
        _ = try #require(h.allocate())
        #expect(h.permit([TransportAddress("127.0.0.1:4000")!])?.isSuccess == true)
        #expect(h.permit([TransportAddress("10.20.3.4:4000")!])?.isSuccess == true)
        #expect(h.permit([TransportAddress("10.21.3.4:4000")!])?.code == 403)
        #expect(h.permit([TransportAddress("192.168.0.1:4000")!])?.code == 403)
    }

    @Test func theServersOwnMediaPortsAreReachableThoseAddressesOnly() throws {
        let sfu = TransportAddress("10.0.0.5:50000")!
        let h = Harness { $0.serverPeers = [sfu] }
        let relay = try #require(h.allocate()?.relay)
        // The SFU's exact address: permitted and bound; its host's other ports: not.
        #expect(h.permit([sfu])?.isSuccess == true)
        #expect(h.permit([TransportAddress("10.0.0.5:22")!])?.code == 403)
        #expect(h.channelBind(0x4002, sfu)?.isSuccess == true)
        #expect(h.channelBind(0x4003, TransportAddress("10.0.0.5:50001")!)?.code == 403)
        // Data from the SFU reaches the client; from another port of its host it does not.
        #expect(!h.fromPeer([1, 2, 3], relay: relay, peer: sfu).isEmpty)
        #expect(h.fromPeer([1, 2, 3], relay: relay, peer: TransportAddress("10.0.0.5:53")!).isEmpty)
        #expect(h.server.counters.forbiddenPeerDrops == 1)
        // A Send indication to the SFU is relayed; to another port, dropped.
        #expect(sendToPeerActions(h.fromClient(sendIndication(peer: sfu, data: [9], tid: h.tid()))).count == 1)
        #expect(h.fromClient(sendIndication(peer: TransportAddress("10.0.0.5:53")!, data: [9], tid: h.tid())).isEmpty)
        // Other private addresses stay refused.
        #expect(h.permit([TransportAddress("10.0.0.6:50000")!])?.code == 403)
    }

    @Test func bandwidthCapDropsExcess() throws {
        let h = Harness { $0.bandwidthLimit = 10_000 }  // 10 kB/s, 1 s burst
        let relay = try #require(h.allocate()?.relay)
        _ = h.channelBind(0x4001, peerA)
        let message = TURNChannelData.encode(channel: 0x4001, payload: [UInt8](repeating: 0, count: 1000), padded: false)
        var passed = 0
        for _ in 0..<20 {
            if message.withUnsafeBytes({ h.server.routeChannelData($0, from: clientA, transport: .udp, now: h.now) }) != nil { passed += 1 }
        }
        #expect(passed == 10)
        #expect(h.server.counters.bandwidthDrops == 10)
        // Peer → client shares the same budget.
        #expect([UInt8](repeating: 0, count: 100).withUnsafeBytes { h.server.routePeerData($0, relay: relay, from: peerA, now: h.now) } == nil)
        // Half a second refills half the bucket.
        h.now += .milliseconds(500)
        passed = 0
        for _ in 0..<20 {
            if message.withUnsafeBytes({ h.server.routeChannelData($0, from: clientA, transport: .udp, now: h.now) }) != nil { passed += 1 }
        }
        #expect(passed == 5)
    }
}
