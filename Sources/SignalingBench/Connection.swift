import Foundation
#if canImport(Glibc)
import Glibc
#elseif canImport(Darwin)
import Darwin
#endif
import NIOCore
import NIOPosix

/// Monotonic clock, nanoseconds (same clock on every thread of this process).
@inline(__always)
func monotonicNanos() -> UInt64 {
    NIODeadline.now().uptimeNanoseconds
}

struct BenchFailure: Error, CustomStringConvertible, LocalizedError {
    var description: String
    init(_ description: String) { self.description = description }
    var errorDescription: String? { self.description }
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
//
// The hot path works on raw pointers with memchr/memcmp so that it stays cheap even in debug builds.

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

/// Offset of `needle` in `p[from...]`, via memchr + memcmp.
@inline(__always)
private func find(_ needle: [UInt8], in p: UnsafeRawBufferPointer, from: Int) -> Int? {
    guard let base = p.baseAddress, !needle.isEmpty else { return nil }
    let n = p.count, k = needle.count
    var i = from
    return needle.withUnsafeBytes { nd -> Int? in
        let first = Int32(needle[0])
        while i <= n - k {
            guard let hit = memchr(base + i, first, n - k - i + 1) else { return nil }
            let at = base.distance(to: UnsafeRawPointer(hit))
            if memcmp(base + at, nd.baseAddress!, k) == 0 { return at }
            i = at + 1
        }
        return nil
    }
}

@inline(__always)
private func isSpace(_ b: UInt8) -> Bool { b == 0x20 || b == 0x09 || b == 0x0A || b == 0x0D }

/// Finds `key` then `: "` and returns the range of the string value's bytes (no unescaping).
private func stringValue(of key: [UInt8], in p: UnsafeRawBufferPointer) -> Range<Int>? {
    guard let base = p.baseAddress else { return nil }
    let n = p.count
    var from = 0
    while let at = find(key, in: p, from: from) {
        from = at + 1
        var v = at + key.count
        while v < n, isSpace(p[v]) { v += 1 }
        guard v < n, p[v] == UInt8(ascii: ":") else { continue }
        v += 1
        while v < n, isSpace(p[v]) { v += 1 }
        guard v < n, p[v] == UInt8(ascii: "\"") else { continue }
        v += 1
        var e = v
        while e < n {
            guard let q = memchr(base + e, Int32(UInt8(ascii: "\"")), n - e) else { return nil }
            e = base.distance(to: UnsafeRawPointer(q))
            // An escaped quote has an odd number of backslashes before it.
            var backslashes = 0
            while e - 1 - backslashes >= v, p[e - 1 - backslashes] == UInt8(ascii: "\\") { backslashes += 1 }
            if backslashes % 2 == 0 { return v..<e }
            e += 1
        }
        return nil
    }
    return nil
}

@inline(__always)
private func equals(_ p: UnsafeRawBufferPointer, _ r: Range<Int>, _ s: [UInt8]) -> Bool {
    guard r.count == s.count else { return false }
    return s.withUnsafeBytes { memcmp(p.baseAddress! + r.lowerBound, $0.baseAddress!, r.count) == 0 }
}

private func classify(_ p: UnsafeRawBufferPointer) -> FrameKind {
    guard let t = stringValue(of: typeKey, in: p) else { return .other }
    if equals(p, t, tReceiveMessage) || equals(p, t, tReceiveGroupMessage) {
        guard let c = stringValue(of: contentKey, in: p), c.count > 3,
              p[c.lowerBound] == UInt8(ascii: "b"), p[c.lowerBound + 1] == UInt8(ascii: "t"),
              p[c.lowerBound + 2] == UInt8(ascii: "=")
        else { return .delivery(nil) }
        var v: UInt64 = 0
        var i = c.lowerBound + 3
        while i < c.upperBound {
            let d = p[i] &- 0x30
            guard d < 10 else { break }
            v = v &* 10 &+ UInt64(d)
            i += 1
        }
        return .delivery(v)
    }
    if equals(p, t, tMessageSent) || equals(p, t, tGroupMessageSent) { return .ack }
    if equals(p, t, tError) { return .error }
    return .other
}

private func errorCode(_ p: UnsafeRawBufferPointer) -> String {
    guard let r = stringValue(of: codeKey, in: p) else { return "error" }
    return String(decoding: UnsafeRawBufferPointer(rebasing: p[r]), as: UTF8.self)
}

/// Channel handler speaking just enough WebSocket: HTTP/1.1 upgrade, masked text frames out,
/// text/continuation/ping/close in. Every instance lives on its shard's event loop.
final class WSClientHandler: ChannelInboundHandler, @unchecked Sendable {
    typealias InboundIn = ByteBuffer
    typealias OutboundOut = ByteBuffer

    static let maxMessageBytes = 16 << 20

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
        var buffer: ByteBuffer
        if var leftover = self.inbound {
            self.inbound = nil  // keep `leftover` uniquely referenced so appending does not copy
            leftover.writeImmutableBuffer(incoming)
            buffer = leftover
        } else {
            buffer = incoming
        }
        if !self.handshakeDone {
            guard self.parseHandshake(&buffer, context: context) else {
                self.inbound = buffer.readableBytes > 0 ? buffer : nil
                return
            }
        }
        let consumed = buffer.withUnsafeReadableBytes { self.parseFrames($0, context: context) }
        buffer.moveReaderIndex(forwardBy: consumed)
        self.inbound = buffer.readableBytes > 0 && !self.inactive ? buffer : nil
    }

    /// Returns true once the 101 response has been consumed.
    private func parseHandshake(_ buffer: inout ByteBuffer, context: ChannelHandlerContext) -> Bool {
        let end: Int? = buffer.withUnsafeReadableBytes { p in
            guard let at = find([13, 10, 13, 10], in: p, from: 0) else { return nil }
            return at + 4
        }
        guard let end else {
            if buffer.readableBytes > 16384 {
                self.upgraded.fail(BenchFailure("oversized upgrade response"))
                context.close(promise: nil)
            }
            return false
        }
        let head = buffer.readString(length: end) ?? ""
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

    /// Handles every complete frame in `p`; returns the bytes consumed.
    private func parseFrames(_ p: UnsafeRawBufferPointer, context: ChannelHandlerContext) -> Int {
        var r = 0
        let n = p.count
        while n - r >= 2, !self.inactive {
            let b0 = p[r], b1 = p[r + 1]
            var length = Int(b1 & 0x7F)
            var header = 2
            if length == 126 {
                guard n - r >= 4 else { break }
                length = Int(p[r + 2]) << 8 | Int(p[r + 3])
                header = 4
            } else if length == 127 {
                guard n - r >= 10 else { break }
                var l: UInt64 = 0
                for i in 2..<10 { l = l << 8 | UInt64(p[r + i]) }
                guard l <= UInt64(Self.maxMessageBytes) else {
                    context.close(promise: nil)
                    return n
                }
                length = Int(l)
                header = 10
            }
            let masked = b1 & 0x80 != 0
            if masked { header += 4 }
            guard n - r >= header + length else { break }
            let payloadStart = r + header
            let fin = b0 & 0x80 != 0
            let opcode = b0 & 0x0F
            if !masked && fin && opcode == 0x1 {
                // Hot path: a complete unmasked text message, handled in place.
                self.handleMessage(UnsafeRawBufferPointer(rebasing: p[payloadStart..<(payloadStart + length)]), context: context)
            } else {
                var payload = context.channel.allocator.buffer(capacity: length)
                payload.writeBytes(UnsafeRawBufferPointer(rebasing: p[payloadStart..<(payloadStart + length)]))
                if masked {
                    // Servers must not mask; tolerate it anyway.
                    let key = (p[r + header - 4], p[r + header - 3], p[r + header - 2], p[r + header - 1])
                    payload.withUnsafeMutableReadableBytes { q in
                        for i in 0..<q.count {
                            switch i & 3 {
                            case 0: q[i] ^= key.0
                            case 1: q[i] ^= key.1
                            case 2: q[i] ^= key.2
                            default: q[i] ^= key.3
                            }
                        }
                    }
                }
                self.handleFrame(fin: fin, opcode: opcode, payload: payload, context: context)
            }
            r = payloadStart + length
        }
        return r
    }

    private func handleFrame(fin: Bool, opcode: UInt8, payload: ByteBuffer, context: ChannelHandlerContext) {
        switch opcode {
        case 0x1, 0x2:
            if fin {
                payload.withUnsafeReadableBytes { self.handleMessage($0, context: context) }
            } else {
                self.fragments = payload
            }
        case 0x0:
            guard var f = self.fragments else { return }
            self.fragments = nil
            f.writeImmutableBuffer(payload)
            if fin {
                f.withUnsafeReadableBytes { self.handleMessage($0, context: context) }
            } else if f.readableBytes > Self.maxMessageBytes {
                context.close(promise: nil)
            } else {
                self.fragments = f
            }
        case 0x8:
            if !self.closing {
                self.closing = true
                if self.established { self.shard.drops += 1 }
                self.writeFrame(opcode: 0x8, payload: payload.getSlice(at: payload.readerIndex, length: min(2, payload.readableBytes)))
            }
            context.close(promise: nil)
        case 0x9:
            self.writeFrame(opcode: 0xA, payload: payload)
        default:
            break
        }
    }

    private func handleMessage(_ p: UnsafeRawBufferPointer, context: ChannelHandlerContext) {
        switch classify(p) {
        case .delivery(let sentAt):
            self.shard.delivered += 1
            if let sentAt {
                let now = monotonicNanos()
                self.shard.histogram.record(now > sentAt ? now - sentAt : 0)
            }
        case .ack:
            self.shard.acks += 1
        case .error:
            if self.pending != nil {
                self.resolvePending(p, context: context)
            } else {
                self.shard.errorCodes[errorCode(p), default: 0] += 1
            }
        case .other:
            if self.pending != nil { self.resolvePending(p, context: context) }
        }
    }

    private func resolvePending(_ p: UnsafeRawBufferPointer, context: ChannelHandlerContext) {
        guard let pending = self.pending else { return }
        self.pending = nil
        pending.timeout.cancel()
        pending.promise.succeed(Reply(context.channel.allocator.buffer(bytes: p)))
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

    /// Writes one masked text frame. A send on a closed connection counts as a failed send.
    func sendText(_ text: String, countFailures: Bool) {
        guard let context = self.context, !self.inactive, !self.closing else {
            if countFailures { self.shard.sendFailures += 1 }
            return
        }
        var text = text
        let mask = self.shard.rng.next()
        let frame = text.withUTF8 { bytes in
            Self.makeFrame(opcode: 0x1, bytes: UnsafeRawBufferPointer(bytes), allocator: context.channel.allocator, mask: mask)
        }
        context.writeAndFlush(self.wrapOutboundOut(frame), promise: nil)
    }

    private func writeFrame(opcode: UInt8, payload: ByteBuffer?) {
        guard let context = self.context, !self.inactive else { return }
        let mask = self.shard.rng.next()
        let frame = (payload ?? ByteBuffer()).withUnsafeReadableBytes { bytes in
            Self.makeFrame(opcode: opcode, bytes: bytes, allocator: context.channel.allocator, mask: mask)
        }
        context.writeAndFlush(self.wrapOutboundOut(frame), promise: nil)
    }

    /// One client frame (FIN, masked with the low 32 bits of `mask`), built with a single buffer write.
    static func makeFrame(opcode: UInt8, bytes: UnsafeRawBufferPointer, allocator: ByteBufferAllocator, mask: UInt64) -> ByteBuffer {
        let n = bytes.count
        var buffer = allocator.buffer(capacity: n + 14)
        buffer.writeWithUnsafeMutableBytes(minimumWritableBytes: n + 14) { out in
            let o = out.baseAddress!
            o.storeBytes(of: 0x80 | opcode, toByteOffset: 0, as: UInt8.self)
            var h: Int
            if n < 126 {
                o.storeBytes(of: UInt8(0x80 | n), toByteOffset: 1, as: UInt8.self)
                h = 2
            } else if n < 65536 {
                o.storeBytes(of: UInt8(0x80 | 126), toByteOffset: 1, as: UInt8.self)
                o.storeBytes(of: UInt16(n).bigEndian, toByteOffset: 2, as: UInt16.self)
                h = 4
            } else {
                o.storeBytes(of: UInt8(0x80 | 127), toByteOffset: 1, as: UInt8.self)
                o.storeBytes(of: UInt64(n).bigEndian, toByteOffset: 2, as: UInt64.self)
                h = 10
            }
            // The 4 key bytes as they appear on the wire; `key64` repeats them for 8-byte steps.
            let key = UInt32(truncatingIfNeeded: mask)
            o.storeBytes(of: key, toByteOffset: h, as: UInt32.self)
            h += 4
            if n > 0 { memcpy(o + h, bytes.baseAddress!, n) }
            let key64 = UInt64(key) | UInt64(key) << 32
            var i = 0
            while i + 8 <= n {
                let v = (o + h + i).loadUnaligned(as: UInt64.self)
                (o + h + i).storeBytes(of: v ^ key64, as: UInt64.self)
                i += 8
            }
            while i < n {
                let k = UInt8(truncatingIfNeeded: key >> UInt32(8 * (i & 3)))  // little-endian byte i%4 of the stored key
                (o + h + i).storeBytes(of: (o + h + i).load(as: UInt8.self) ^ k, as: UInt8.self)
                i += 1
            }
            return h + n
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
            let status: [UInt8] = [0x03, 0xE8]  // 1000
            let frame = status.withUnsafeBytes {
                Self.makeFrame(opcode: 0x8, bytes: $0, allocator: channel.allocator, mask: self.shard.rng.next())
            }
            context.writeAndFlush(self.wrapOutboundOut(frame)).whenComplete { _ in channel.close(promise: nil) }
        }
        return channel.closeFuture
    }
}
