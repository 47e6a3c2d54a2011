import RTCBase
import RTP

/// The last packets of one video source, as received (plaintext, RTX
/// unwrapped), so a subscriber's NACK is answered one hop away instead of
/// by the publisher (RFC 4588). Fixed slots, no allocation per packet.
final class RetransmissionCache {
    let slots: Int
    let slotSize: Int
    private let storage: UnsafeMutableRawPointer
    private var lengths: [Int]
    private var sequences: [UInt16]
    private var stored: [Bool]

    init(slots: Int = 512, slotSize: Int = 1500) {
        self.slots = slots
        self.slotSize = slotSize
        storage = .allocate(byteCount: slots * slotSize, alignment: 16)
        lengths = Array(repeating: 0, count: slots)
        sequences = Array(repeating: 0, count: slots)
        stored = Array(repeating: false, count: slots)
    }

    deinit { storage.deallocate() }

    @inline(__always)
    func store(_ packet: UnsafeRawBufferPointer, sequence: UInt16) {
        guard packet.count <= slotSize, let base = packet.baseAddress else { return }
        let slot = Int(sequence) % slots
        (storage + slot * slotSize).copyMemory(from: base, byteCount: packet.count)
        lengths[slot] = packet.count
        sequences[slot] = sequence
        stored[slot] = true
    }

    /// The stored packet with `sequence`, if it is still there.
    @inline(__always)
    func packet(_ sequence: UInt16) -> UnsafeRawBufferPointer? {
        let slot = Int(sequence) % slots
        guard stored[slot], sequences[slot] == sequence else { return nil }
        return UnsafeRawBufferPointer(start: storage + slot * slotSize, count: lengths[slot])
    }

    func clear() {
        for i in 0..<slots { stored[i] = false }
    }
}
