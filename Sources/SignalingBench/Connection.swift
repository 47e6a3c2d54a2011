import Foundation
import NIOCore
import NIOPosix

/// Monotonic clock, nanoseconds (same clock on every thread of this process).
@inline(__always)
func monotonicNanos() -> UInt64 {
    NIODeadline.now().uptimeNanoseconds
}

struct BenchFailure: Error, CustomStringConvertible {
    var description: String
    init(_ description: String) { self.description = description }
}

/// A response to a request sent during setup (parsed with JSONSerialization; setup only).
struct Reply: Sendable {
    var type: String = ""
    var status: String?
    var token: String?
    var groupID: String?
    var reason: String?
    var code: String?
    var raw: String = ""

    init(_ payload: ByteBuffer) {
        self.raw = String(buffer: payload)
        guard let object = try? JSONSerialization.jsonObject(with: Data(payload.readableBytesView)),
              let dict = object as? [String: Any]
        else { return }
        self.type = dict["type"] as? String ?? ""
        self.status = dict["status"] as? String
        self.token = dict["token"] as? String
        self.groupID = dict["group_id"] as? String
        self.reason = dict["reason"] as? String
        self.code = dict["code"] as? String
    }

    var short: String { self.raw.count > 200 ? String(self.raw.prefix(200)) + "…" : self.raw }
}

/// Per-event-loop state: the connections on that loop, counters and the latency histogram.
/// Only touched on `loop` (snapshots are taken with `loop.submit`), so the hot path takes no locks.
final class Shard: @unchecked Sendable {
    let loop: any EventLoop
    var rng: FastRandom

    // Load phase wiring.
    var conns: [BenchConn] = []
    var groupConns: [BenchConn] = []
    var peers: [String] = []
    var pacer: RepeatedTask?

    // Counters.
    var sent = 0
    var groupSent = 0
    var expected = 0
    var delivered = 0
    var acks = 0
    var sendFailures = 0
    var drops = 0
    var errorCodes: [String: Int] = [:]
    var histogram = LatencyHistogram()

    init(loop: any EventLoop, seed: UInt64) {
        self.loop = loop
        self.rng = FastRandom(seed: seed)
    }

    struct Snapshot: Sendable {
        var sent = 0, groupSent = 0, expected = 0, delivered = 0, acks = 0
        var sendFailures = 0, drops = 0
        var errorCodes: [String: Int] = [:]
        var histogram = LatencyHistogram()

        var errors: Int { self.sendFailures + self.drops + self.errorCodes.values.reduce(0, +) }

        mutating func merge(_ o: Snapshot) {
            self.sent += o.sent; self.groupSent += o.groupSent; self.expected += o.expected
            self.delivered += o.delivered; self.acks += o.acks
            self.sendFailures += o.sendFailures; self.drops += o.drops
            self.errorCodes.merge(o.errorCodes, uniquingKeysWith: +)
            self.histogram.merge(o.histogram)
        }
    }

    func snapshot() -> Snapshot {
        Snapshot(
            sent: self.sent, groupSent: self.groupSent, expected: self.expected, delivered: self.delivered,
            acks: self.acks, sendFailures: self.sendFailures, drops: self.drops, errorCodes: self.errorCodes,
            histogram: self.histogram
        )
    }

    /// Sends `rate` messages/s (this loop's share) for `duration` seconds from `start`, in 10 ms ticks.
    func startPacer(start: UInt64, rate: Double, duration: Double, groupFraction: Double, done: EventLoopPromise<Void>) {
        let total = Int((rate * duration).rounded())
        let maxPerTick = max(1, Int(rate * 0.1))  // never dump more than 100 ms worth after a stall
        guard total > 0, !self.conns.isEmpty else {
            done.succeed(())
            return
        }
        self.pacer = self.loop.scheduleRepeatedTask(initialDelay: .zero, delay: .milliseconds(10)) { task in
            let now = monotonicNanos()
            guard now >= start else { return }
            let elapsed = Double(now - start) / 1e9
            let target = min(total, Int(rate * min(elapsed, duration)))
            let due = min(target - self.sent, maxPerTick)
            if due > 0 {
                for _ in 0..<due { self.sendOne(groupFraction: groupFraction) }
            }
            if self.sent >= total || elapsed >= duration {
                task.cancel()
                done.succeed(())
            }
        }
    }

    private func sendOne(groupFraction: Double) {
        let now = monotonicNanos()
        let conn: BenchConn
        let text: String
        if groupFraction > 0, !self.groupConns.isEmpty, self.rng.nextUnit() < groupFraction {
            conn = self.groupConns[self.rng.next(below: self.groupConns.count)]
            text = #"{"type":"send_group_message","groupname":"\#(conn.groupName!)","content":"bt=\#(now) group hello from the signaling bench"}"#
            self.expected += conn.groupMembers - 1
            self.groupSent += 1
        } else {
            conn = self.conns[self.rng.next(below: self.conns.count)]
            var peer = self.rng.next(below: self.peers.count - 1)
            if peer >= conn.peerIndex { peer += 1 }
            text = #"{"type":"send_message","recipient":"\#(self.peers[peer])","content":"bt=\#(now) hello from the signaling bench"}"#
            self.expected += 1
        }
        self.sent += 1
        conn.handler.sendText(text, countFailures: true)
    }
}

/// One established, logged-in connection.
final class BenchConn: @unchecked Sendable {
    let index: Int
    let username: String
    let channel: any Channel
    let handler: WSClientHandler
    /// Index in the shared `peers` array (set before the load phase).
    var peerIndex = 0
    /// The group this user sends to (set before the load phase) and its member count.
    var groupName: String?
    var groupMembers = 0

    init(index: Int, username: String, channel: any Channel, handler: WSClientHandler) {
        self.index = index
        self.username = username
        self.channel = channel
        self.handler = handler
    }

    /// Sends a request and waits for the next non-push frame.
    func request(_ text: String, timeout: TimeAmount = .seconds(120)) async throws -> Reply {
        let handler = self.handler
        return try await self.channel.eventLoop.flatSubmit { handler.request(text, timeout: timeout) }.get()
    }

    func close() -> EventLoopFuture<Void> {
        let handler = self.handler
        return self.channel.eventLoop.flatSubmit { handler.closeGracefully() }
    }
}

// MARK: - Minimal WebSocket client (RFC 6455) on a raw NIO channel.

private let typeKey = Array(#""type""#.utf8)
private let contentKey = Array(#""content""#.utf8)
private let codeKey = Array(#""code""#.utf8)
private let tReceiveMessage = Array("receive_message".utf8)
private let tReceiveGroupMessage = Array("receive_group_message".utf8)
private let tMessageSent = Array("message_sent".utf8)
private let tGroupMessageSent = Array("group_message_sent".utf8)
private let tError = Array("error".utf8)

private enum FrameKind {
    case delivery(UInt64?)
    case ack
    case error
    case other
}

/// Finds `key` then `: "` and returns the range of the string value's bytes (no unescaping).
@inline(__always)
private func stringValue(of key: [UInt8], in p: UnsafeRawBufferPointer) -> Range<Int>? {
    let n = p.count, k = key.count
    guard n >= k else { return nil }
    var i = 0
    outer: while i <= n - k {
        for j in 0..<k where p[i + j] != key[j] {
            i += 1
            continue outer
        }
        var v = i + k
        while v < n, p[v] == 0x20 || p[v] == 0x09 || p[v] == 0x0A || p[v] == 0x0D { v += 1 }
        guard v < n, p[v] == UInt8(ascii: ":") else { i += 1; continue }
        v += 1
        while v < n, p[v] == 0x20 || p[v] == 0x09 || p[v] == 0x0A || p[v] == 0x0D { v += 1 }
        guard v < n, p[v] == UInt8(ascii: "\"") else { i += 1; continue }
        v += 1
        var e = v
        while e < n, p[e] != UInt8(ascii: "\"") {
            if p[e] == UInt8(ascii: "\\") { e += 1 }
            e += 1
        }
        guard e < n else { return nil }
        return v..<e
    }
    return nil
}

@inline(__always)
private func equals(_ p: UnsafeRawBufferPointer, _ r: Range<Int>, _ s: [UInt8]) -> Bool {
    guard r.count == s.count else { return false }
    var j = 0
    for i in r {
        if p[i] != s[j] { return false }
        j += 1
    }
    return true
}

private func classify(_ payload: ByteBuffer) -> FrameKind {
    payload.withUnsafeReadableBytes { p -> FrameKind in
        guard let t = stringValue(of: typeKey, in: p) else { return .other }
        if equals(p, t, tReceiveMessage) || equals(p, t, tReceiveGroupMessage) {
            guard let c = stringValue(of: contentKey, in: p), c.count > 3,
                  p[c.lowerBound] == UInt8(ascii: "b"), p[c.lowerBound + 1] == UInt8(ascii: "t"),
                  p[c.lowerBound + 2] == UInt8(ascii: "=")
            else { return .delivery(nil) }
            var v: UInt64 = 0
            var i = c.lowerBound + 3
            while i < c.upperBound, p[i] >= 0x30, p[i] <= 0x39 {
                v = v &* 10 &+ UInt64(p[i] - 0x30)
                i += 1
            }
            return .delivery(v)
        }
        if equals(p, t, tMessageSent) || equals(p, t, tGroupMessageSent) { return .ack }
        if equals(p, t, tError) { return .error }
        return .other
    }
}

private func errorCode(_ payload: ByteBuffer) -> String {
    payload.withUnsafeReadableBytes { p -> String in
        guard let r = stringValue(of: codeKey, in: p) else { return "error" }
        return String(decoding: UnsafeRawBufferPointer(rebasing: p[r]), as: UTF8.self)
    }
}

/// Channel handler speaking just enough WebSocket: HTTP/1.1 upgrade, masked text frames out,
/// text/continuation/ping/close in. Every instance lives on its shard's event loop.
final class WSClientHandler: ChannelInboundHandler, @unchecked Sendable {
    typealias InboundIn = ByteBuffer
    typealias OutboundOut = ByteBuffer

    let shard: Shard
    let upgradeRequest: String
    let upgraded: EventLoopPromise<Void>

    private var context: ChannelHandlerContext?
    private var handshakeDone = false
    private var handshakeTimeout: Scheduled<Void>?
    private var inbound: ByteBuffer?
    private var fragments: ByteBuffer?
    private var pending: (promise: EventLoopPromise<Reply>, timeout: Scheduled<Void>)?
    /// Set once login succeeded: from then on a close we did not ask for is a drop.
    var established = false
    private var closing = false
    private var inactive = false

    init(shard: Shard, upgradeRequest: String) {
        self.shard = shard
        self.upgradeRequest = upgradeRequest
        self.upgraded = shard.loop.makePromise(of: Void.self)
    }

    func handlerAdded(context: ChannelHandlerContext) {
        self.context = context
    }

    func handlerRemoved(context: ChannelHandlerContext) {
        self.context = nil
        self.failOutstanding(BenchFailure("connection closed"))
    }

    func channelActive(context: ChannelHandlerContext) {
        context.writeAndFlush(self.wrapOutboundOut(context.channel.allocator.buffer(string: self.upgradeRequest)), promise: nil)
        self.handshakeTimeout = context.eventLoop.scheduleTask(in: .seconds(60)) { [self] in
            self.upgraded.fail(BenchFailure("WebSocket upgrade timed out"))
            self.context?.close(promise: nil)
        }
        context.fireChannelActive()
    }

    func channelInactive(context: ChannelHandlerContext) {
        self.inactive = true
        if self.established && !self.closing { self.shard.drops += 1 }
        self.failOutstanding(BenchFailure("connection closed"))
        context.fireChannelInactive()
    }

    func errorCaught(context: ChannelHandlerContext, error: any Error) {
        self.failOutstanding(error)
        context.close(promise: nil)
    }

    private func failOutstanding(_ error: any Error) {
        self.handshakeTimeout?.cancel()
        self.handshakeTimeout = nil
        self.upgraded.fail(error)  // no-op when already completed
        if let pending = self.pending {
            self.pending = nil
            pending.timeout.cancel()
            pending.promise.fail(error)
        }
    }

    func channelRead(context: ChannelHandlerContext, data: NIOAny) {
        let incoming = self.unwrapInboundIn(data)
        if var buffer = self.inbound {
            buffer.writeImmutableBuffer(incoming)
            self.inbound = buffer
        } else {
            self.inbound = incoming
        }
        if !self.handshakeDone {
            guard self.parseHandshake(context: context) else { return }
        }
        self.parseFrames(context: context)
    }

    /// Returns true once the 101 response has been consumed.
    private func parseHandshake(context: ChannelHandlerContext) -> Bool {
        guard var buffer = self.inbound else { return false }
        let end: Int? = buffer.withUnsafeReadableBytes { p in
            guard p.count >= 4 else { return nil }
            for i in 0...(p.count - 4)
            where p[i] == 13 && p[i + 1] == 10 && p[i + 2] == 13 && p[i + 3] == 10 {
                return i + 4
            }
            return nil
        }
        guard let end else {
            if buffer.readableBytes > 16384 {
                self.upgraded.fail(BenchFailure("oversized upgrade response"))
                context.close(promise: nil)
            }
            return false
        }
        let head = buffer.readString(length: end) ?? ""
        self.inbound = buffer.readableBytes > 0 ? buffer : nil
        let statusLine = head.prefix { $0 != "\r" }
        guard statusLine.hasPrefix("HTTP/1.1 101") else {
            self.upgraded.fail(BenchFailure("WebSocket upgrade refused: \(statusLine)"))
            context.close(promise: nil)
            return false
        }
        self.handshakeDone = true
        self.handshakeTimeout?.cancel()
        self.handshakeTimeout = nil
        self.upgraded.succeed(())
        return true
    }

    private func parseFrames(context: ChannelHandlerContext) {
        while var buffer = self.inbound {
            let r = buffer.readerIndex
            guard buffer.readableBytes >= 2,
                  let b0 = buffer.getInteger(at: r, as: UInt8.self),
                  let b1 = buffer.getInteger(at: r + 1, as: UInt8.self)
            else { return }
            var length = Int(b1 & 0x7F)
            var header = 2
            if length == 126 {
                guard let l = buffer.getInteger(at: r + 2, as: UInt16.self) else { return }
                length = Int(l)
                header = 4
            } else if length == 127 {
                guard let l = buffer.getInteger(at: r + 2, as: UInt64.self) else { return }
                guard l < 64 << 20 else {
                    context.close(promise: nil)
                    return
                }
                length = Int(l)
                header = 10
            }
            let masked = b1 & 0x80 != 0
            var maskKey: UInt32 = 0
            if masked {
                guard let m = buffer.getInteger(at: r + header, as: UInt32.self) else { return }
                maskKey = m
                header += 4
            }
            guard buffer.readableBytes >= header + length else { return }
            buffer.moveReaderIndex(forwardBy: header)
            var payload = buffer.readSlice(length: length)!
            self.inbound = buffer.readableBytes > 0 ? buffer : nil
            if masked {
                // Servers must not mask; tolerate it anyway (copy then unmask).
                var copy = context.channel.allocator.buffer(capacity: length)
                copy.writeImmutableBuffer(payload)
                copy.withUnsafeMutableReadableBytes { p in
                    for i in 0..<p.count { p[i] ^= UInt8(truncatingIfNeeded: maskKey >> UInt32(24 - 8 * (i & 3))) }
                }
                payload = copy
            }
            self.handleFrame(fin: b0 & 0x80 != 0, opcode: b0 & 0x0F, payload: payload, context: context)
            if self.inactive { return }
        }
    }

    private func handleFrame(fin: Bool, opcode: UInt8, payload: ByteBuffer, context: ChannelHandlerContext) {
        switch opcode {
        case 0x1, 0x2:
            if fin {
                self.handleMessage(payload)
            } else {
                self.fragments = payload
            }
        case 0x0:
            guard var f = self.fragments else { return }
            f.writeImmutableBuffer(payload)
            if fin {
                self.fragments = nil
                self.handleMessage(f)
            } else {
                self.fragments = f
            }
        case 0x8:
            if !self.closing {
                self.closing = true
                if self.established { self.shard.drops += 1 }
                self.writeFrame(opcode: 0x8, payload: payload.getSlice(at: payload.readerIndex, length: min(2, payload.readableBytes)), countFailures: false)
            }
            context.close(promise: nil)
        case 0x9:
            self.writeFrame(opcode: 0xA, payload: payload, countFailures: false)
        default:
            break
        }
    }

    private func handleMessage(_ payload: ByteBuffer) {
        switch classify(payload) {
        case .delivery(let sentAt):
            self.shard.delivered += 1
            if let sentAt {
                let now = monotonicNanos()
                self.shard.histogram.record(now > sentAt ? now - sentAt : 0)
            }
        case .ack:
            self.shard.acks += 1
        case .error:
            if let pending = self.pending {
                self.resolve(pending, payload)
            } else {
                self.shard.errorCodes[errorCode(payload), default: 0] += 1
            }
        case .other:
            if let pending = self.pending { self.resolve(pending, payload) }
        }
    }

    private func resolve(_ pending: (promise: EventLoopPromise<Reply>, timeout: Scheduled<Void>), _ payload: ByteBuffer) {
        self.pending = nil
        pending.timeout.cancel()
        pending.promise.succeed(Reply(payload))
    }

    // MARK: Sending (on the loop)

    func request(_ text: String, timeout: TimeAmount) -> EventLoopFuture<Reply> {
        let loop = self.shard.loop
        guard !self.inactive, !self.closing, self.context != nil else {
            return loop.makeFailedFuture(BenchFailure("connection closed"))
        }
        guard self.pending == nil else {
            return loop.makeFailedFuture(BenchFailure("request already outstanding"))
        }
        let promise = loop.makePromise(of: Reply.self)
        let scheduled = loop.scheduleTask(in: timeout) { [self] in
            if let p = self.pending, p.promise.futureResult === promise.futureResult {
                self.pending = nil
                promise.fail(BenchFailure("request timed out"))
            }
        }
        self.pending = (promise, scheduled)
        self.sendText(text, countFailures: false)
        return promise.futureResult
    }

    func sendText(_ text: String, countFailures: Bool) {
        guard let context = self.context, !self.inactive, !self.closing else {
            if countFailures { self.shard.sendFailures += 1 }
            return
        }
        var utf8 = text
        let frame = utf8.withUTF8 { bytes in
            Self.makeFrame(opcode: 0x1, bytes: UnsafeRawBufferPointer(bytes), allocator: context.channel.allocator, mask: UInt32(truncatingIfNeeded: self.shard.rng.next()))
        }
        self.write(frame, context: context, countFailures: countFailures)
    }

    private func writeFrame(opcode: UInt8, payload: ByteBuffer?, countFailures: Bool) {
        guard let context = self.context, !self.inactive else { return }
        let frame = (payload ?? ByteBuffer()).withUnsafeReadableBytes { bytes in
            Self.makeFrame(opcode: opcode, bytes: bytes, allocator: context.channel.allocator, mask: UInt32(truncatingIfNeeded: self.shard.rng.next()))
        }
        self.write(frame, context: context, countFailures: countFailures)
    }

    private func write(_ frame: ByteBuffer, context: ChannelHandlerContext, countFailures: Bool) {
        if countFailures {
            let promise = context.eventLoop.makePromise(of: Void.self)
            let shard = self.shard
            promise.futureResult.whenFailure { _ in shard.sendFailures += 1 }
            context.writeAndFlush(self.wrapOutboundOut(frame), promise: promise)
        } else {
            context.writeAndFlush(self.wrapOutboundOut(frame), promise: nil)
        }
    }

    static func makeFrame(opcode: UInt8, bytes: UnsafeRawBufferPointer, allocator: ByteBufferAllocator, mask: UInt32) -> ByteBuffer {
        let n = bytes.count
        var buffer = allocator.buffer(capacity: n + 14)
        buffer.writeInteger(UInt8(0x80 | opcode))
        if n < 126 {
            buffer.writeInteger(UInt8(0x80 | n))
        } else if n < 65536 {
            buffer.writeInteger(UInt8(0x80 | 126))
            buffer.writeInteger(UInt16(n))
        } else {
            buffer.writeInteger(UInt8(0x80 | 127))
            buffer.writeInteger(UInt64(n))
        }
        buffer.writeInteger(mask)
        let start = buffer.writerIndex
        buffer.writeBytes(bytes)
        let m0 = UInt8(truncatingIfNeeded: mask >> 24), m1 = UInt8(truncatingIfNeeded: mask >> 16)
        let m2 = UInt8(truncatingIfNeeded: mask >> 8), m3 = UInt8(truncatingIfNeeded: mask)
        buffer.withUnsafeMutableReadableBytes { p in
            var i = start
            let end = p.count
            while i + 4 <= end {
                p[i] ^= m0; p[i + 1] ^= m1; p[i + 2] ^= m2; p[i + 3] ^= m3
                i += 4
            }
            var k = 0
            while i < end {
                p[i] ^= k == 0 ? m0 : k == 1 ? m1 : m2
                i += 1
                k += 1
            }
        }
        return buffer
    }

    /// Sends a close frame (1000) and closes the channel; the future completes once it is closed.
    func closeGracefully() -> EventLoopFuture<Void> {
        guard let context = self.context, !self.inactive else {
            return self.shard.loop.makeSucceededVoidFuture()
        }
        let channel = context.channel
        if !self.closing {
            self.closing = true
            var status = ByteBuffer()
            status.writeInteger(UInt16(1000))
            let frame = status.withUnsafeReadableBytes {
                Self.makeFrame(opcode: 0x8, bytes: $0, allocator: channel.allocator, mask: UInt32(truncatingIfNeeded: self.shard.rng.next()))
            }
            context.writeAndFlush(self.wrapOutboundOut(frame)).whenComplete { _ in channel.close(promise: nil) }
        }
        return channel.closeFuture
    }
}
