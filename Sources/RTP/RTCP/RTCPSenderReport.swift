import RTCBase

/// Sender report, PT=200 (RFC 3550 §6.4.1).
public struct RTCPSenderReport: Sendable, Equatable {
    public var ssrc: SSRC
    /// 64-bit NTP timestamp (RFC 3550 §4): seconds since 1900 in the high
    /// word, fraction in the low word.
    public var ntpTimestamp: UInt64
    public var rtpTimestamp: UInt32
    public var packetCount: UInt32
    public var octetCount: UInt32
    public var reports: [RTCPReportBlock]
    /// Profile-specific extension after the report blocks; a whole number of words.
    public var profileExtension: [UInt8]

    public init(
        ssrc: SSRC, ntpTimestamp: UInt64, rtpTimestamp: UInt32, packetCount: UInt32, octetCount: UInt32,
        reports: [RTCPReportBlock] = [], profileExtension: [UInt8] = []
    ) {
        self.ssrc = ssrc
        self.ntpTimestamp = ntpTimestamp
        self.rtpTimestamp = rtpTimestamp
        self.packetCount = packetCount
        self.octetCount = octetCount
        self.reports = reports
        self.profileExtension = profileExtension
    }

    public init(parsing p: RTCPPacketView) throws(RTCPError) {
        guard p.packetType == RTCPPacketType.senderReport else { throw .wrongType }
        var r = RTCPBodyReader(p.body)
        ssrc = try r.ssrc()
        ntpTimestamp = try r.u64()
        rtpTimestamp = try r.u32()
        packetCount = try r.u32()
        octetCount = try r.u32()
        (reports, profileExtension) = try readReportBlocks(count: p.count, from: &r)
    }

    public var marshalSize: Int { 28 + reports.count * RTCPReportBlock.size + profileExtension.count }

    public func write(to writer: inout ByteWriter) throws(RTCPError) {
        guard reports.count < 32, profileExtension.count % 4 == 0 else { throw .invalidValue }
        try writeRTCPHeader(to: &writer, count: UInt8(reports.count), packetType: RTCPPacketType.senderReport, size: marshalSize)
        try writing(RTCPError.bufferTooSmall) { () throws(ByteReaderError) in
            try writer.write(ssrc.rawValue)
            try writer.write64(ntpTimestamp)
            try writer.write(rtpTimestamp)
            try writer.write(packetCount)
            try writer.write(octetCount)
            for block in reports { try block.write(to: &writer) }
            try writer.write(contentsOf: profileExtension)
        }
    }
}
