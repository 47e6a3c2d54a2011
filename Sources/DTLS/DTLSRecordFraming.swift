/// DTLS record framing (RFC 6347 §4.1): a 13-byte header — content type,
/// version, epoch, 48-bit sequence number, 16-bit length — then the fragment.
/// The engine only looks at framing; OpenSSL does everything else.
enum DTLSRecordFraming {
    static let headerLength = 13
    /// RFC 6347 §4.1 / RFC 5246 §6.2.3: a ciphertext fragment is at most 2^14 + 2048.
    static let maximumFragmentLength = 16_384 + 2_048

    /// True when the datagram is one or more whole DTLS records with a known
    /// content type (RFC 5246 §6.2.1: 20–23) and a DTLS version (1.0 is 0xFEFF,
    /// which a DTLS 1.2 ClientHello may carry; 1.2 is 0xFEFD). Anything else
    /// never reaches OpenSSL: a memory BIO keeps no datagram boundaries, so a
    /// truncated record would make OpenSSL discard what follows it.
    static func isWellFormed(_ datagram: UnsafeRawBufferPointer) -> Bool {
        guard datagram.count >= headerLength else { return false }
        var offset = 0
        while offset < datagram.count {
            guard datagram.count - offset >= headerLength else { return false }
            let contentType = datagram[offset]
            guard (20...23).contains(contentType) else { return false }
            guard datagram[offset + 1] == 0xFE,
                  datagram[offset + 2] == 0xFD || datagram[offset + 2] == 0xFF
            else { return false }
            let length = Int(datagram[offset + 11]) << 8 | Int(datagram[offset + 12])
            guard length <= maximumFragmentLength,
                  datagram.count - offset - headerLength >= length
            else { return false }
            offset += headerLength + length
        }
        return true
    }

    /// Splits `bytes[range]` (whole records as OpenSSL wrote them) into
    /// datagrams of at most `mtu` bytes, never cutting a record: RFC 6347
    /// §4.1.1 lets several records share a datagram but a record must not
    /// span two. A record larger than the MTU (OpenSSL sizes handshake
    /// fragments to the MTU, so only oversized application data) travels alone.
    static func pack(_ bytes: [UInt8], _ range: Range<Int>, mtu: Int, into datagrams: inout [[UInt8]]) {
        var offset = range.lowerBound
        let end = range.upperBound
        var current: [UInt8] = []
        while offset < end {
            var recordEnd = end
            if end - offset >= headerLength {
                let length = Int(bytes[offset + 11]) << 8 | Int(bytes[offset + 12])
                recordEnd = min(end, offset + headerLength + length)
            }
            if !current.isEmpty, current.count + (recordEnd - offset) > mtu {
                datagrams.append(current)
                current = []
            }
            if current.isEmpty { current.reserveCapacity(min(mtu, end - offset)) }
            current.append(contentsOf: bytes[offset..<recordEnd])
            offset = recordEnd
        }
        if !current.isEmpty { datagrams.append(current) }
    }
}
