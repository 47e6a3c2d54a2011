import RTCBase
import STUN
import Testing
@testable import TURN

@Suite("Lifetimes and Refresh (RFC 8656 §6, §7.3, §9, §12)")
struct LifetimeTests {
    @Test func allocationExpiresAfterDefaultLifetime() throws {
        let h = Harness()
        let relay = try #require(h.allocate()?.relay)
        let deadline = try #require(h.server.pollTimeout())
        #expect(deadline <= h.now + .seconds(600))
        h.advanceFiringTimers(.seconds(599))
        #expect(h.server.allocationCount == 1)
        #expect(h.drain().isEmpty)
        h.advanceFiringTimers(.seconds(2))
        #expect(h.server.allocationCount == 0)
        #expect(h.drain() == [.closeRelay(relay)])
        #expect(h.server.counters.allocationsExpired == 1)
        // The relay is gone: peer data is dropped.
        #expect(h.fromPeer([1], relay: relay).isEmpty)
    }

    @Test func refreshExtendsAndClampsLifetime() throws {
        let h = Harness()
        _ = try #require(h.allocate())
        // Asking for more than the maximum gets the maximum.
        let r = h.request(.refresh, [.lifetime(seconds: 100_000)], credentials: alice)
        #expect(r.response?.isSuccess == true)
        #expect(r.response?.lifetime == 3600)
        // Less than the default gets the default.
        let r2 = h.request(.refresh, [.lifetime(seconds: 30)], credentials: alice)
        #expect(r2.response?.lifetime == 600)
        // No LIFETIME: default.
        let r3 = h.request(.refresh, [], credentials: alice)
        #expect(r3.response?.lifetime == 600)
        let r4 = h.request(.refresh, [.lifetime(seconds: 1800)], credentials: alice)
        #expect(r4.response?.lifetime == 1800)
        h.advanceFiringTimers(.seconds(1700))
        #expect(h.server.allocationCount == 1)
        h.advanceFiringTimers(.seconds(101))
        #expect(h.server.allocationCount == 0)
    }

    @Test func refreshWithZeroDeletes() throws {
        let h = Harness()
        let relay = try #require(h.allocate()?.relay)
        let r = h.request(.refresh, [.lifetime(seconds: 0)], credentials: alice)
        #expect(r.response?.isSuccess == true)
        #expect(r.response?.lifetime == 0)
        #expect(r.actions.contains(.closeRelay(relay)))
        #expect(h.server.allocationCount == 0)
        #expect(h.server.counters.allocationsDeleted == 1)
        // Now there is no allocation: 437.
        #expect(h.request(.refresh, [], credentials: alice).response?.code == 437)
        #expect(h.permit([peerA])?.code == 437)
    }

    @Test func refreshByAnotherUserIs441() throws {
        let h = Harness()
        _ = try #require(h.allocate())
        let r = h.request(.refresh, [], credentials: bob)
        #expect(r.response?.code == 441)
        #expect(h.server.counters.wrongCredentials441 == 1)
    }

    @Test func refreshStaleNonceIs438() throws {
        let h = Harness()
        _ = try #require(h.allocate())
        h.advance(.seconds(601))
        let r = h.request(.refresh, [], credentials: alice, retryStale: false)
        #expect(r.response?.code == 438)
        // With the fresh nonce it works (the allocation lived 600 s from creation,
        // so refresh before that in real life; here only the nonce is stale).
        let h2 = Harness()
        _ = try #require(h2.allocate())
        h2.advance(.seconds(590))
        _ = h2.request(.refresh, [], credentials: alice)
        h2.advance(.seconds(20))
        let stale = h2.request(.refresh, [], credentials: alice, retryStale: false)
        #expect(stale.response?.code == 438)
        let retry = h2.request(.refresh, [], credentials: alice)
        #expect(retry.response?.isSuccess == true)
    }

    @Test func permissionExpiresAfter300Seconds() throws {
        let h = Harness()
        let relay = try #require(h.allocate()?.relay)
        _ = h.request(.refresh, [.lifetime(seconds: 3600)], credentials: alice)
        _ = h.permit([peerA])
        h.advanceFiringTimers(.seconds(299))
        #expect(sendToClientActions(h.fromPeer([1], relay: relay)).count == 1)
        // Refreshing the permission at 299 s extends it.
        _ = h.permit([peerA])
        h.advanceFiringTimers(.seconds(200))
        #expect(sendToClientActions(h.fromPeer([2], relay: relay)).count == 1)
        h.advanceFiringTimers(.seconds(101))
        #expect(h.fromPeer([3], relay: relay).isEmpty)
        #expect(h.fromClient(sendIndication(peer: peerA, data: [1], tid: h.tid())).isEmpty)
        #expect(h.server.counters.noPermission == 2)
    }

    @Test func channelExpiresAfter600SecondsAndNumberIsHeldFiveMinutes() throws {
        let h = Harness()
        let relay = try #require(h.allocate()?.relay)
        #expect(h.channelBind(0x4001, peerA)?.isSuccess == true)
        _ = h.request(.refresh, [.lifetime(seconds: 3600)], credentials: alice)
        let message = TURNChannelData.encode(channel: 0x4001, payload: [5], padded: false)
        // Keep the permission alive but not the channel.
        h.advanceFiringTimers(.seconds(290))
        _ = h.permit([peerA])
        h.advanceFiringTimers(.seconds(290))
        _ = h.permit([peerA])
        #expect(sendToPeerActions(h.fromClient(message)).count == 1)
        h.advanceFiringTimers(.seconds(21))  // 601 s after the bind
        #expect(h.fromClient(message).isEmpty)
        #expect(h.server.counters.unboundChannel == 1)
        // Peer data now arrives as a Data indication, not ChannelData.
        let toClient = sendToClientActions(h.fromPeer([6], relay: relay))
        #expect(try STUNMessage(parsing: try #require(toClient.first?.bytes)).type.method == .data)
        // During the hold-off the number cannot go to another peer, nor the
        // peer to another number; the same pair can be bound again.
        #expect(h.channelBind(0x4001, peerB)?.code == 400)
        #expect(h.channelBind(0x4002, peerA)?.code == 400)
        #expect(h.channelBind(0x4001, peerA)?.isSuccess == true)
        #expect(sendToPeerActions(h.fromClient(message)).count == 1)
        // Let it expire and the hold-off pass: the number is free again.
        h.advanceFiringTimers(.seconds(901))
        _ = h.request(.refresh, [.lifetime(seconds: 3600)], credentials: alice)
        #expect(h.channelBind(0x4001, peerB)?.isSuccess == true)
    }

    @Test func timeoutIsNilWithNothingToDo() {
        let h = Harness()
        #expect(h.server.pollTimeout() == nil)
    }
}
