/// The replay list of RFC 3711 §3.3.2 as a sliding bitmap over packet
/// indices: the highest index accepted so far and one bit for each of the
/// `size` indices at and below it. Its storage is allocated once, when the
/// stream is first seen.
struct ReplayWindow {
    enum Verdict: Equatable {
        /// Above the highest index: accept and slide the window.
        case ahead
        /// Inside the window and not seen yet.
        case inside
        case replayed
        case tooOld
    }

    private(set) var highest: UInt64
    private var bits: [UInt64]
    /// `size - 1`; size is a power of two so the bit of an index is a mask.
    private let mask: UInt64

    /// A window whose first accepted index is `first`. `size` is a power of
    /// two ≥ 64 (SRTPContext rounds it).
    init(size: Int, first: UInt64) {
        precondition(size >= 64 && size & (size - 1) == 0)
        bits = [UInt64](repeating: 0, count: size / 64)
        mask = UInt64(size - 1)
        highest = first
        set(first)
    }

    var size: Int { Int(mask) + 1 }

    /// What accepting `index` would mean; changes nothing (the tag is checked
    /// between `check` and `accept`, so a forged packet cannot move the window).
    func check(_ index: UInt64) -> Verdict {
        if index > highest { return .ahead }
        if highest - index > mask { return .tooOld }
        return isSet(index) ? .replayed : .inside
    }

    /// Records `index` as received (after its tag verified).
    mutating func accept(_ index: UInt64) {
        if index > highest {
            let delta = index - highest
            if delta > mask {
                for w in bits.indices { bits[w] = 0 }
            } else {
                // Bits between the old and the new highest now stand for
                // indices never received.
                var i = highest &+ 1
                while i < index {
                    clear(i)
                    i &+= 1
                }
            }
            highest = index
            clear(index)
        }
        set(index)
    }

    @inline(__always) private func isSet(_ index: UInt64) -> Bool {
        let bit = index & mask
        return bits[Int(bit >> 6)] & (1 << (bit & 63)) != 0
    }

    @inline(__always) private mutating func set(_ index: UInt64) {
        let bit = index & mask
        bits[Int(bit >> 6)] |= 1 << (bit & 63)
    }

    @inline(__always) private mutating func clear(_ index: UInt64) {
        let bit = index & mask
        bits[Int(bit >> 6)] &= ~(1 << (bit & 63))
    }
}

/// The packet index a received (or sent) sequence number most likely has,
/// given the highest index so far (RFC 3711 §3.3.1, Appendix A): the ROC of
/// the highest index, one less, or one more, whichever puts SEQ closest to
/// s_l. Nil when the guess would be ROC − 1 with ROC = 0 (a packet from
/// before the stream started).
@inline(__always)
func estimateIndex(sequence: UInt16, highest: UInt64) -> UInt64? {
    let roc = highest >> 16
    let sl = UInt16(truncatingIfNeeded: highest)
    var v = roc
    if sl < 0x8000 {
        if sequence > sl && sequence - sl > 0x8000 {
            guard roc > 0 else { return nil }
            v = roc - 1
        }
    } else if sl - 0x8000 > sequence {
        v = roc + 1
    }
    return v << 16 | UInt64(sequence)
}
