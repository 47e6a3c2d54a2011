import RTCBase

/// Goodbye, PT=203 (RFC 3550 §6.6).
public struct RTCPGoodbye: Sendable, Equatable {
    public var sources: [SSRC]
    /// Optional reason for leaving, up to 255 bytes of UTF-8.
    public var reason: [UInt8]?

    public init(sources: [SSRC], reason: String? = nil) {
        self.sources = sources
        self.reason = reason.map { Array($0.utf8) }
    }

    public var reasonText: String? { reason.map { String(decoding: $0, as: UTF8.self) } }

    public init(parsing p: RTCPPacketView) throws(RTCPError) {
        guard p.packetType == RTCPPacketType.goodbye else { throw .wrongType }
        var r = RTCPBodyReader(p.body)
        sources = []
        for _ in 0..<p.count { sources.append(try r.ssrc()) }
        if r.remaining > 0 {
            let length = Int(try r.u8())
            reason = try r.bytes(length)
        } else {
            reason = nil
        }
    }

    public var marshalSize: Int {
        4 + sources.count * 4 + (reason.map { (1 + $0.count + 3) & ~3 } ?? 0)
    }

    public func write(to writer: inout ByteWriter) throws(RTCPError) {
        guard sources.count < 32, (reason?.count ?? 0) <= 255 else { throw .invalidValue }
        try writeRTCPHeader(to: &writer, count: UInt8(sources.count), packetType: RTCPPacketType.goodbye, size: marshalSize)
        try writing(RTCPError.bufferTooSmall) { () throws(ByteReaderError) in
            for s in sources { try writer.write(s.rawValue) }
            if let reason {
                try writer.write(UInt8(reason.count))
                try writer.write(contentsOf: reason)
                try writer.pad(to: 4)
            }
        }
    }
}
