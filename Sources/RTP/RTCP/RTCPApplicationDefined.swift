import RTCBase

/// Application-defined packet, PT=204 (RFC 3550 §6.7).
public struct RTCPApplicationDefined: Sendable, Equatable {
    /// 5-bit subtype, carried in the count field.
    public var subtype: UInt8
    public var ssrc: SSRC
    /// Four ASCII characters naming the application.
    public var name: UInt32
    /// Application data; a whole number of words.
    public var data: [UInt8]

    public init(subtype: UInt8, ssrc: SSRC, name: UInt32, data: [UInt8]) {
        self.subtype = subtype
        self.ssrc = ssrc
        self.name = name
        self.data = data
    }

    public init(parsing p: RTCPPacketView) throws(RTCPError) {
        guard p.packetType == RTCPPacketType.application else { throw .wrongType }
        var r = RTCPBodyReader(p.body)
        subtype = p.count
        ssrc = try r.ssrc()
        name = try r.u32()
        data = r.rest()
    }

    public var marshalSize: Int { 12 + data.count }

    public func write(to writer: inout ByteWriter) throws(RTCPError) {
        guard data.count % 4 == 0 else { throw .invalidValue }
        try writeRTCPHeader(to: &writer, count: subtype, packetType: RTCPPacketType.application, size: marshalSize)
        try writing(RTCPError.bufferTooSmall) { () throws(ByteReaderError) in
            try writer.write(ssrc.rawValue)
            try writer.write(name)
            try writer.write(contentsOf: data)
        }
    }
}
