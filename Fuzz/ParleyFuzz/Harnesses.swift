import ICE
import RTCBase
import RTP
import SDP
import STUN

/// One fuzz entry point per parser. Each harness parses arbitrary bytes and,
/// when parsing succeeds, checks invariants that must hold for every accepted
/// input (re-serializing and re-parsing gives the same value), so the fuzzer
/// finds wrong answers as well as crashes.
enum Harness: String, CaseIterable {
    case stun, sdp, candidate, rtp, rtcp, vp8

    func run(_ bytes: UnsafeRawBufferPointer) {
        switch self {
        case .stun: fuzzSTUN(bytes)
        case .sdp: fuzzSDP(bytes)
        case .candidate: fuzzCandidate(bytes)
        case .rtp: fuzzRTP(bytes)
        case .rtcp: fuzzRTCP(bytes)
        case .vp8: fuzzVP8(bytes)
        }
    }
}

/// A failed invariant: abort so libFuzzer records the input as a crash.
func invariant(_ condition: @autoclosure () -> Bool, _ message: @autoclosure () -> String) {
    if !condition() { fatalError("invariant failed: \(message())") }
}

private let fuzzKey = STUNIntegrityKey(shortTermPassword: "fuzz-password")

func fuzzSTUN(_ bytes: UnsafeRawBufferPointer) {
    guard let view = try? STUNMessageView(bytes) else { return }
    _ = try? view.verifyFingerprint()
    _ = try? view.verifyMessageIntegrity(key: fuzzKey)
    _ = try? view.verifyMessageIntegritySHA256(key: fuzzKey)
    _ = view.unknownComprehensionRequired()
    for attribute in view.attributes {
        _ = try? attribute.decode(transactionID: view.transactionID)
    }
    guard let message = try? STUNMessage(view) else { return }
    // What we accepted we must be able to write, and read back the same.
    guard let encoded = try? message.encoded() else { return }
    let again = try? STUNMessage(parsing: encoded)
    invariant(again != nil, "re-encoded STUN message does not parse")
    invariant(again?.type == message.type && again?.transactionID == message.transactionID, "STUN header changed in a round trip")
}

func fuzzSDP(_ bytes: UnsafeRawBufferPointer) {
    guard let description = try? SessionDescription(parsing: bytes) else { return }
    _ = description.mediaSummaries()
    let text = description.serialized()
    let again = try? SessionDescription(parsing: text)
    invariant(again != nil, "serialized SDP does not parse")
    invariant(again?.serialized() == text, "SDP serialization is not stable")
}

func fuzzCandidate(_ bytes: UnsafeRawBufferPointer) {
    guard let text = String(validating: bytes, as: UTF8.self),
          let candidate = try? ICECandidate(parsing: text) else { return }
    let again = try? ICECandidate(parsing: candidate.description)
    invariant(again != nil, "serialized candidate does not parse")
    invariant(again?.description == candidate.description, "candidate serialization is not stable")
}

func fuzzRTP(_ bytes: UnsafeRawBufferPointer) {
    guard let view = try? RTPHeaderView(bytes) else { return }
    if let extensions = view.extensions {
        for element in extensions { _ = element }
    }
    _ = view.payload.count
    // The SFU's in-place rewrite, then a re-read sees exactly what was written.
    var copy = Array(bytes)
    copy.withUnsafeMutableBytes { raw in
        guard let mutable = try? MutableRTPHeaderView(raw) else {
            invariant(false, "mutable view rejects what the read-only view accepted")
            return
        }
        mutable.setSSRC(SSRC(0xDEAD_BEEF))
        mutable.setSequenceNumber(SequenceNumber(4242))
        mutable.setTimestamp(0x0102_0304)
        mutable.setMarker(true)
        let again = try? RTPHeaderView(UnsafeRawBufferPointer(raw))
        invariant(again?.ssrc == SSRC(0xDEAD_BEEF) && again?.sequenceNumber == SequenceNumber(4242)
                  && again?.timestamp == 0x0102_0304 && again?.marker == true, "RTP rewrite did not stick")
        invariant(again?.payload.count == view.payload.count, "RTP rewrite changed the payload")
    }
    guard let packet = try? RTPPacket(parsing: bytes), let encoded = try? packet.serialized() else { return }
    let reparsed = try? RTPPacket(parsing: encoded)
    invariant(reparsed == packet, "RTP packet changed in a round trip")
}

func fuzzRTCP(_ bytes: UnsafeRawBufferPointer) {
    var iterator = RTCPCompoundIterator(bytes)
    while let packet = try? iterator.next() { _ = packet }
    guard let packets = try? RTCPCompound.parse(bytes), !packets.isEmpty,
          let first = try? RTCPCompound.serialize(packets) else { return }
    // One round trip may normalise (e.g. a delta's width); after that the
    // bytes must be stable.
    let again = try? RTCPCompound.parse(first)
    invariant(again != nil, "serialized RTCP does not parse")
    let second = again.flatMap { try? RTCPCompound.serialize($0) }
    invariant(second == first, "RTCP serialization is not stable")
}

func fuzzVP8(_ bytes: UnsafeRawBufferPointer) {
    _ = VP8PayloadDescriptor.isKeyFrame(rtpPayload: bytes)
    guard let descriptor = try? VP8PayloadDescriptor(parsing: bytes) else { return }
    guard let encoded = try? descriptor.serialized() else { return }
    invariant(encoded.count == descriptor.length, "VP8 descriptor length disagrees with what is written")
    let again = try? VP8PayloadDescriptor(parsing: encoded)
    // Values, not bytes: bits a receiver must ignore (TID/Y when T=0, RFC
    // 7741 §4.2) are written as zero.
    invariant(again == descriptor, "VP8 descriptor changed in a round trip")
}
