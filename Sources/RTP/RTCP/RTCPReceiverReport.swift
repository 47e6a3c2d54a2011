import RTCBase

/// Receiver report, PT=201 (RFC 3550 §6.4.2).
public struct RTCPReceiverReport: Sendable, Equatable {
    public var ssrc: SSRC
    public var reports: [RTCPReportBlock]
    public var profileExtension: [UInt8]

    public init(ssrc: SSRC, reports: [RTCPReportBlock] = [], profileExtension: [UInt8] = []) {
        self.ssrc = ssrc
        self.reports = reports
        self.profileExtension = profileExtension
    }

    public init(parsing p: RTCPPacketView) throws(RTCPError) {
        guard p.packetType == RTCPPacketType.receiverReport else { throw .wrongType }
        var r = RTCPBodyReader(p.body)
        ssrc = try r.ssrc()
        (reports, profileExtension) = try readReportBlocks(count: p.count, from: &r)
    }

    public var marshalSize: Int { 8 + reports.count * RTCPReportBlock.size + profileExtension.count }

    public func write(to writer: inout ByteWriter) throws(RTCPError) {
        guard reports.count < 32, profileExtension.count % 4 == 0 else { throw .invalidValue }
        try writeRTCPHeader(to: &writer, count: UInt8(reports.count), packetType: RTCPPacketType.receiverReport, size: marshalSize)
        try writing(RTCPError.bufferTooSmall) { () throws(ByteReaderError) in
            try writer.write(ssrc.rawValue)
            for block in reports { try block.write(to: &writer) }
            try writer.write(contentsOf: profileExtension)
        }
    }
}
