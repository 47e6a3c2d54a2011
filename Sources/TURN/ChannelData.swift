import RTCBase
import STUN

/// The ChannelData message (RFC 8656 §12.4): a 2-byte channel number
/// (0x4000–0x4FFF), a 2-byte length of the application data, the data, and
/// over TCP/TLS padding to a multiple of 4.
public enum TURNChannelData {
    /// Valid channel numbers (RFC 8656 §12).
    public static let channelRange: ClosedRange<UInt16> = 0x4000...0x4FFF
    public static let headerSize = 4

    /// Why a buffer is not a usable ChannelData message.
    public enum ParseError: Error, Sendable, Equatable {
        /// Shorter than the 4-byte header.
        case truncated
        /// The channel number is outside 0x4000–0x4FFF.
        case badChannel
        /// The length field claims more bytes than there are, or more than
        /// 3 bytes of padding follow the data.
        case badLength
    }

    /// Reads the header in place. Up to 3 trailing padding bytes are
    /// allowed (required over streams, optional over UDP, RFC 8656 §12.5).
    @inline(__always)
    public static func parse(_ bytes: UnsafeRawBufferPointer) throws(ParseError) -> (channel: UInt16, payload: Range<Int>) {
        guard bytes.count >= headerSize else { throw .truncated }
        let channel = UInt16(bytes[0]) << 8 | UInt16(bytes[1])
        guard channelRange.contains(channel) else { throw .badChannel }
        let length = Int(bytes[2]) << 8 | Int(bytes[3])
        let extra = bytes.count - headerSize - length
        guard extra >= 0, extra < 4 else { throw .badLength }
        return (channel, headerSize..<(headerSize + length))
    }

    /// Writes the 4-byte header for `length` bytes of data on `channel`
    /// into the first 4 bytes of `buffer` (returns false if it is too small
    /// or `length` does not fit in 16 bits).
    @discardableResult
    public static func writeHeader(channel: UInt16, length: Int, into buffer: UnsafeMutableRawBufferPointer) -> Bool {
        guard buffer.count >= headerSize, length >= 0, length <= 0xFFFF else { return false }
        buffer[0] = UInt8(channel >> 8)
        buffer[1] = UInt8(truncatingIfNeeded: channel)
        buffer[2] = UInt8(length >> 8)
        buffer[3] = UInt8(truncatingIfNeeded: length)
        return true
    }

    /// A whole ChannelData message as bytes (tests and slow paths).
    public static func encode(channel: UInt16, payload: some Collection<UInt8>, padded: Bool) -> [UInt8] {
        var out: [UInt8] = [UInt8(channel >> 8), UInt8(truncatingIfNeeded: channel),
                            UInt8(truncatingIfNeeded: payload.count >> 8), UInt8(truncatingIfNeeded: payload.count)]
        out.append(contentsOf: payload)
        if padded { out.append(contentsOf: repeatElement(0, count: (4 - payload.count % 4) % 4)) }
        return out
    }
}

/// Why a TURN stream cannot be read further: the edge should close it.
public enum TURNFramingError: Error, Sendable, Equatable {
    /// The next message announces more bytes than the configured maximum.
    case oversize(Int)
    /// The first bytes are neither STUN (top bits 00 + magic cookie) nor a
    /// ChannelData channel number (RFC 8656 §12.5 leaves no way to resync).
    case garbage
}

/// Splits a TCP/TLS byte stream from a TURN client into whole STUN and
/// ChannelData messages (RFC 8656 §12.5): STUN messages are 20 bytes plus
/// their header length; ChannelData is 4 bytes plus its length, padded to 4.
/// Handles reads that carry part of a message or several at once. Sans-IO:
/// feed it bytes, then take messages until it returns nil.
public struct TURNStreamFramer: Sendable {
    private var buffer: [UInt8] = []
    private var start = 0
    public let maxMessageSize: Int

    public init(maxMessageSize: Int = 65_535 + 20) {
        self.maxMessageSize = maxMessageSize
    }

    /// Bytes held that do not yet form a whole message.
    public var bufferedByteCount: Int { buffer.count - start }

    public mutating func append(_ bytes: UnsafeRawBufferPointer) {
        // Compact lazily: only when the consumed prefix dominates, so a burst
        // of small messages costs amortized O(1) per byte.
        if start > 0 && (start >= buffer.count || start > 4096 && start * 2 > buffer.count) {
            buffer.removeSubrange(0..<start)
            start = 0
        }
        buffer.append(contentsOf: bytes)
    }

    public mutating func append(_ bytes: [UInt8]) {
        bytes.withUnsafeBytes { append($0) }
    }

    /// Size of the message at the head of the buffer, nil if not yet known.
    private func nextSize() throws(TURNFramingError) -> Int? {
        let available = buffer.count - start
        guard available >= 4 else {
            // The first byte alone already tells garbage apart.
            if available >= 1, buffer[start] & 0xC0 != 0, !(0x40...0x4F).contains(buffer[start]) { throw .garbage }
            return nil
        }
        let b0 = buffer[start]
        let length = Int(buffer[start + 2]) << 8 | Int(buffer[start + 3])
        let size: Int
        if b0 & 0xC0 == 0 {
            size = stunHeaderSize + length
            if available >= 8 {
                guard buffer[start + 4] == 0x21, buffer[start + 5] == 0x12,
                      buffer[start + 6] == 0xA4, buffer[start + 7] == 0x42 else { throw .garbage }
            }
            guard length % 4 == 0 else { throw .garbage }
        } else if (0x40...0x4F).contains(b0) {
            size = TURNChannelData.headerSize + (length + 3) & ~3
        } else {
            throw .garbage
        }
        guard size <= maxMessageSize else { throw .oversize(size) }
        return available >= size ? size : nil
    }

    /// Calls `body` with the next whole message, in place and without
    /// copying, and consumes it. Nil when more bytes are needed.
    public mutating func withNextMessage<R>(_ body: (UnsafeRawBufferPointer) -> R) throws(TURNFramingError) -> R? {
        guard let size = try nextSize() else { return nil }
        let from = start
        start += size
        let result = buffer.withUnsafeBytes { body(UnsafeRawBufferPointer(rebasing: $0[from..<(from + size)])) }
        if start == buffer.count { buffer.removeAll(keepingCapacity: true); start = 0 }
        return result
    }

    /// The next whole message as an array (allocates), nil when more bytes
    /// are needed.
    public mutating func nextMessage() throws(TURNFramingError) -> [UInt8]? {
        try withNextMessage { Array($0) }
    }
}
