import RTCBase

/// SDES item types (RFC 3550 §6.5).
public struct RTCPSDESItemType: RawRepresentable, Hashable, Sendable {
    public var rawValue: UInt8
    public init(rawValue: UInt8) { self.rawValue = rawValue }

    public static let cname = RTCPSDESItemType(rawValue: 1)
    public static let name = RTCPSDESItemType(rawValue: 2)
    public static let email = RTCPSDESItemType(rawValue: 3)
    public static let phone = RTCPSDESItemType(rawValue: 4)
    public static let location = RTCPSDESItemType(rawValue: 5)
    public static let tool = RTCPSDESItemType(rawValue: 6)
    public static let note = RTCPSDESItemType(rawValue: 7)
    public static let privateExtension = RTCPSDESItemType(rawValue: 8)
}

/// Source description, PT=202 (RFC 3550 §6.5).
public struct RTCPSourceDescription: Sendable, Equatable {
    public struct Item: Sendable, Equatable {
        public var type: RTCPSDESItemType
        /// Up to 255 bytes; UTF-8 text for all standard items.
        public var value: [UInt8]

        public init(type: RTCPSDESItemType, value: [UInt8]) {
            self.type = type
            self.value = value
        }

        public init(type: RTCPSDESItemType, text: String) {
            self.init(type: type, value: Array(text.utf8))
        }

        public var text: String { String(decoding: value, as: UTF8.self) }
    }

    public struct Chunk: Sendable, Equatable {
        public var source: SSRC
        public var items: [Item]

        public init(source: SSRC, items: [Item]) {
            self.source = source
            self.items = items
        }

        /// SSRC, the items, at least one null octet ending the list, then
        /// zeros to the next word (RFC 3550 §6.5).
        var size: Int { (4 + items.reduce(0) { $0 + 2 + $1.value.count } + 1 + 3) & ~3 }
    }

    public var chunks: [Chunk]

    public init(chunks: [Chunk]) { self.chunks = chunks }

    /// A one-chunk SDES carrying just a CNAME, the common case.
    public init(source: SSRC, cname: String) {
        chunks = [Chunk(source: source, items: [Item(type: .cname, text: cname)])]
    }

    public init(parsing p: RTCPPacketView) throws(RTCPError) {
        guard p.packetType == RTCPPacketType.sourceDescription else { throw .wrongType }
        var r = RTCPBodyReader(p.body)
        chunks = []
        for _ in 0..<p.count {
            // Chunks start on word boundaries; the body starts on one too.
            var chunk = Chunk(source: try r.ssrc(), items: [])
            while true {
                let type = try r.u8()
                if type == 0 { break }
                let length = Int(try r.u8())
                chunk.items.append(Item(type: RTCPSDESItemType(rawValue: type), value: try r.bytes(length)))
            }
            // Skip the rest of the null padding, tolerating a body that ends
            // before the boundary (some senders trim the last chunk).
            let aligned = (r.offset + 3) & ~3
            try? r.skip(min(aligned, r.bytes.count) - r.offset)
            chunks.append(chunk)
        }
    }

    public var marshalSize: Int { 4 + chunks.reduce(0) { $0 + $1.size } }

    public func write(to writer: inout ByteWriter) throws(RTCPError) {
        guard chunks.count < 32 else { throw .invalidValue }
        for c in chunks { for i in c.items where i.value.count > 255 || i.type.rawValue == 0 { throw .invalidValue } }
        try writeRTCPHeader(to: &writer, count: UInt8(chunks.count), packetType: RTCPPacketType.sourceDescription, size: marshalSize)
        try writing(RTCPError.bufferTooSmall) { () throws(ByteReaderError) in
            for c in chunks {
                let start = writer.offset
                try writer.write(c.source.rawValue)
                for i in c.items {
                    try writer.write(i.type.rawValue)
                    try writer.write(UInt8(i.value.count))
                    try writer.write(contentsOf: i.value)
                }
                try writer.write(UInt8(0))
                while (writer.offset - start) % 4 != 0 { try writer.write(UInt8(0)) }
            }
        }
    }
}
