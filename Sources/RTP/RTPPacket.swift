import RTCBase

/// One RFC 8285 element, owned (for building headers).
public struct RTPHeaderExtension: Sendable, Hashable {
    public var id: UInt8
    public var value: [UInt8]

    public init(id: UInt8, value: [UInt8]) {
        self.id = id
        self.value = value
    }
}

/// An owned extension block: the elements and the form to write them in.
public enum RTPHeaderExtensionBlock: Sendable, Equatable {
    case oneByte([RTPHeaderExtension])
    case twoByte(appBits: UInt8, [RTPHeaderExtension])
    /// An RFC 3550 §5.3.1 extension; `data` must be a whole number of 32-bit words.
    case generic(profile: UInt16, data: [UInt8])

    /// The one-byte form when every element fits it (RFC 8285 §4.2: ids 1–14,
    /// 1–16 bytes), else the two-byte form.
    public static func automatic(_ elements: [RTPHeaderExtension]) -> RTPHeaderExtensionBlock {
        let fitsOneByte = elements.allSatisfy { (1...14).contains($0.id) && (1...16).contains($0.value.count) }
        return fitsOneByte ? .oneByte(elements) : .twoByte(appBits: 0, elements)
    }

    public var elements: [RTPHeaderExtension] {
        switch self {
        case .oneByte(let e), .twoByte(_, let e): return e
        case .generic: return []
        }
    }

    /// Bytes of extension data after the 4-byte extension header, padded to a word.
    public var dataLength: Int {
        let raw: Int
        switch self {
        case .oneByte(let e): raw = e.reduce(0) { $0 + 1 + $1.value.count }
        case .twoByte(_, let e): raw = e.reduce(0) { $0 + 2 + $1.value.count }
        case .generic(_, let data): raw = data.count
        }
        return (raw + 3) & ~3
    }
}

/// An owned RTP header (RFC 3550 §5.1): for building packets and for tests and
/// tools. The forwarding path uses `RTPHeaderView` / `MutableRTPHeaderView`.
public struct RTPHeader: Sendable, Equatable {
    public var marker: Bool
    public var payloadType: PayloadType
    public var sequenceNumber: SequenceNumber
    public var timestamp: UInt32
    public var ssrc: SSRC
    public var csrcs: [SSRC]
    public var extensions: RTPHeaderExtensionBlock?

    public init(
        marker: Bool = false, payloadType: PayloadType, sequenceNumber: SequenceNumber,
        timestamp: UInt32, ssrc: SSRC, csrcs: [SSRC] = [], extensions: RTPHeaderExtensionBlock? = nil
    ) {
        self.marker = marker
        self.payloadType = payloadType
        self.sequenceNumber = sequenceNumber
        self.timestamp = timestamp
        self.ssrc = ssrc
        self.csrcs = csrcs
        self.extensions = extensions
    }

    /// Copies the fields out of a parsed view. RFC 8285 padding bytes between
    /// elements are not kept; the block is rewritten compactly.
    public init(_ view: some RTPHeaderFields) throws(RTPError) {
        marker = view.marker
        payloadType = view.payloadType
        sequenceNumber = view.sequenceNumber
        timestamp = view.timestamp
        ssrc = view.ssrc
        csrcs = (0..<view.csrcCount).compactMap { view.csrc(at: $0) }
        if let ext = view.extensions {
            try ext.validate()
            switch ext.form {
            case .oneByte:
                extensions = .oneByte(ext.map { RTPHeaderExtension(id: $0.id, value: Array($0.value)) })
            case .twoByte(let appBits):
                extensions = .twoByte(appBits: appBits, ext.map { RTPHeaderExtension(id: $0.id, value: Array($0.value)) })
            case .generic(let profile):
                extensions = .generic(profile: profile, data: Array(ext.data))
            }
        } else {
            extensions = nil
        }
    }

    /// Bytes `write` produces.
    public var marshalSize: Int {
        12 + csrcs.count * 4 + (extensions.map { 4 + $0.dataLength } ?? 0)
    }

    /// Writes the header. `padding` only sets the P bit; the packet writer
    /// appends the padding itself.
    public func write(to writer: inout ByteWriter, padding: Bool = false) throws(RTPError) {
        guard csrcs.count <= 15 else { throw .tooManyCSRCs }
        try validateExtensions()
        guard writer.remaining >= marshalSize else { throw .bufferTooSmall }
        try writing(RTPError.bufferTooSmall) { () throws(ByteReaderError) in
            var first: UInt8 = 0x80 | UInt8(csrcs.count)
            if padding { first |= 0x20 }
            if extensions != nil { first |= 0x10 }
            try writer.write(first)
            try writer.write((marker ? 0x80 : 0) | payloadType.rawValue)
            try writer.write(sequenceNumber.rawValue)
            try writer.write(timestamp)
            try writer.write(ssrc.rawValue)
            for csrc in csrcs { try writer.write(csrc.rawValue) }
            guard let extensions else { return }
            let form: RTPHeaderExtensionForm
            switch extensions {
            case .oneByte: form = .oneByte
            case .twoByte(let appBits, _): form = .twoByte(appBits: appBits)
            case .generic(let profile, _): form = .generic(profile: profile)
            }
            try writer.write(form.profile)
            try writer.write(UInt16(extensions.dataLength / 4))
            let start = writer.offset
            switch extensions {
            case .oneByte(let elements):
                for e in elements {
                    try writer.write(e.id << 4 | UInt8(e.value.count - 1))
                    try writer.write(contentsOf: e.value)
                }
            case .twoByte(_, let elements):
                for e in elements {
                    try writer.write(e.id)
                    try writer.write(UInt8(e.value.count))
                    try writer.write(contentsOf: e.value)
                }
            case .generic(_, let data):
                try writer.write(contentsOf: data)
            }
            while writer.offset - start < extensions.dataLength { try writer.write(UInt8(0)) }
        }
    }

    private func validateExtensions() throws(RTPError) {
        switch extensions {
        case nil: return
        case .oneByte(let elements):
            for e in elements where !(1...14).contains(e.id) || !(1...16).contains(e.value.count) {
                throw .invalidExtension
            }
        case .twoByte(let appBits, let elements):
            guard appBits < 16 else { throw .invalidExtension }
            for e in elements where e.id == 0 || e.value.count > 255 { throw .invalidExtension }
        case .generic(_, let data):
            guard data.count % 4 == 0 else { throw .invalidExtension }
        }
        guard let ext = extensions, ext.dataLength / 4 <= 0xFFFF else { throw .invalidExtension }
    }
}

/// An owned RTP packet: header, payload and padding.
public struct RTPPacket: Sendable, Equatable {
    public var header: RTPHeader
    public var payload: [UInt8]
    /// Padding octets after the payload, the count octet included; 0 for none.
    public var paddingLength: UInt8

    public init(header: RTPHeader, payload: [UInt8], paddingLength: UInt8 = 0) {
        self.header = header
        self.payload = payload
        self.paddingLength = paddingLength
    }

    public init(parsing bytes: UnsafeRawBufferPointer) throws(RTPError) {
        let view = try RTPHeaderView(bytes)
        header = try RTPHeader(view)
        payload = Array(view.payload)
        paddingLength = UInt8(view.paddingLength)
    }

    public init(parsing bytes: [UInt8]) throws(RTPError) {
        self = try withBytes(bytes) { (b) throws(RTPError) in try RTPPacket(parsing: b) }
    }

    public var marshalSize: Int { header.marshalSize + payload.count + Int(paddingLength) }

    public func write(to writer: inout ByteWriter) throws(RTPError) {
        try withBytes(payload) { (p) throws(RTPError) in
            try RTPPacket.write(header: header, payload: p, paddingLength: paddingLength, to: &writer)
        }
    }

    /// Writes a packet whose payload is already in some buffer. Padding bytes
    /// are zero except the last, which counts them (RFC 3550 §5.1).
    public static func write(
        header: RTPHeader, payload: UnsafeRawBufferPointer, paddingLength: UInt8 = 0, to writer: inout ByteWriter
    ) throws(RTPError) {
        guard writer.remaining >= header.marshalSize + payload.count + Int(paddingLength) else { throw .bufferTooSmall }
        try header.write(to: &writer, padding: paddingLength > 0)
        try writing(RTPError.bufferTooSmall) { () throws(ByteReaderError) in
            try writer.write(payload)
            if paddingLength > 0 {
                for _ in 1..<paddingLength { try writer.write(UInt8(0)) }
                try writer.write(paddingLength)
            }
        }
    }

    public func serialized() throws(RTPError) -> [UInt8] {
        var out = [UInt8](repeating: 0, count: marshalSize)
        try withMutableBytes(&out) { (buffer) throws(RTPError) in
            var writer = ByteWriter(buffer)
            try write(to: &writer)
        }
        return out
    }
}
