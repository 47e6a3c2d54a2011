import RTCBase

/// Builds outgoing RTP packets: the fixed header (RFC 3550 §5.1) and one
/// RFC 8285 §4.2 one-byte extension block with the mid (RFC 8843 §15.2:
/// every packet carries it, so a receiver can route before it learns the
/// SSRC) and the transport-wide sequence number
/// (draft-holmer-rmcat-transport-wide-cc-extensions-01 §2). Each packet is
/// one array of exactly its size: the transport takes arrays, and the
/// sender keeps the same array in its retransmission history.
struct RTPWriter {
    var midExtensionID: UInt8?
    var transportCCExtensionID: UInt8?
    /// The mid's bytes (RFC 8285 one-byte values are 1–16 bytes).
    var mid: [UInt8]

    init(mid: Mid, midExtensionID: UInt8?, transportCCExtensionID: UInt8?) {
        let bytes = Array(mid.rawValue.utf8.prefix(16))
        self.mid = bytes
        self.midExtensionID = bytes.isEmpty ? nil : midExtensionID
        self.transportCCExtensionID = transportCCExtensionID
    }

    /// Bytes of the extension block with its 4-byte header; 0 for none.
    var extensionLength: Int {
        var n = 0
        if midExtensionID != nil { n += 1 + mid.count }
        if transportCCExtensionID != nil { n += 3 }
        return n == 0 ? 0 : 4 + (n + 3) & ~3
    }

    var headerLength: Int { 12 + extensionLength }

    /// One packet whose payload is `prefix` (may be empty) followed by `payload`.
    func packet(marker: Bool, payloadType: UInt8, sequenceNumber: UInt16, timestamp: UInt32, ssrc: UInt32,
                transportSequence: UInt16, prefix: UnsafeRawBufferPointer, payload: UnsafeRawBufferPointer) -> [UInt8] {
        var out: [UInt8] = []
        out.reserveCapacity(headerLength + prefix.count + payload.count)
        let ext = extensionLength
        out.append(0x80 | (ext > 0 ? 0x10 : 0))  // V=2, no padding, X, CC=0
        out.append((marker ? 0x80 : 0) | (payloadType & 0x7F))
        append16(&out, sequenceNumber)
        append32(&out, timestamp)
        append32(&out, ssrc)
        if ext > 0 {
            append16(&out, 0xBEDE)
            append16(&out, UInt16((ext - 4) / 4))
            let start = out.count
            if let id = midExtensionID {
                out.append(id << 4 | UInt8(mid.count - 1))
                out.append(contentsOf: mid)
            }
            if let id = transportCCExtensionID {
                out.append(id << 4 | 1)
                append16(&out, transportSequence)
            }
            // RFC 8285 §4.2: zero padding to the 32-bit boundary.
            while out.count - start < ext - 4 { out.append(0) }
        }
        out.append(contentsOf: prefix)
        out.append(contentsOf: payload)
        return out
    }

    private func append16(_ out: inout [UInt8], _ v: UInt16) {
        out.append(UInt8(v >> 8))
        out.append(UInt8(truncatingIfNeeded: v))
    }

    private func append32(_ out: inout [UInt8], _ v: UInt32) {
        out.append(UInt8(truncatingIfNeeded: v >> 24))
        out.append(UInt8(truncatingIfNeeded: v >> 16))
        out.append(UInt8(truncatingIfNeeded: v >> 8))
        out.append(UInt8(truncatingIfNeeded: v))
    }
}

/// NTP time (RFC 3550 §4, 32.32 fixed point) for an `Instant`, from the
/// wall-clock offset the IO edge measured once: engines read no clock.
public struct NTPClock: Sendable, Hashable {
    /// NTP time at `Instant.zero`.
    public var ntpAtZero: UInt64

    public init(ntpAtZero: UInt64) { self.ntpAtZero = ntpAtZero }

    public func ntp(_ now: Instant) -> UInt64 {
        let ns = UInt64(max(0, now.nanoseconds))
        let seconds = ns / 1_000_000_000
        let fraction = (ns % 1_000_000_000) << 32 / 1_000_000_000
        return ntpAtZero &+ (seconds << 32 | fraction)
    }

    /// The middle 32 bits (RFC 3550 §6.4.1 LSR and the "A" of the RTT formula).
    public func compact(_ now: Instant) -> UInt32 { UInt32(truncatingIfNeeded: ntp(now) >> 16) }

    /// Round-trip time from a report block's LSR and DLSR received at `now`
    /// (RFC 3550 §6.4.1: A − LSR − DLSR, in 1/65536 s); nil without an SR
    /// echoed (LSR 0) or for a result that cannot be right (> 10 s).
    public func roundTrip(lastSenderReport lsr: UInt32, delay dlsr: UInt32, now: Instant) -> Duration? {
        guard lsr != 0 else { return nil }
        let rtt = compact(now) &- lsr &- dlsr
        guard rtt < 65536 * 10 else { return nil }
        return .nanoseconds(Int64(rtt) * 1_000_000_000 / 65536)
    }
}
