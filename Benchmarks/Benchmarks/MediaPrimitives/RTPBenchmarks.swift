import Benchmark
import BenchSupport
import RTCBase
import RTP

func registerRTPBenchmarks() {
    // The SFU's forwarding rewrite of one 1200-octet VP8 packet in place:
    // parse the header layout, read what the forwarder keys on, then write
    // SSRC, sequence number, timestamp, payload type, marker and the
    // transport-cc sequence number (RFC 8285 one-byte extension).
    let packet = ownedBuffer(makeVP8RTPPacket())
    Benchmark("RTP parse + rewrite 1200B VP8 (SSRC, seq, ts, PT, marker, transport-cc)") { benchmark throws in
        var transportSequence: UInt16 = 0
        for _ in benchmark.scaledIterations {
            let v = try MutableRTPHeaderView(packet)
            let ssrc = v.ssrc
            let seq = v.sequenceNumber
            let ts = v.timestamp
            let pt = v.payloadTypeValue
            let marker = v.marker
            v.setSSRC(SSRC(ssrc.rawValue ^ 0x5A5A_5A5A))
            v.setSequenceNumber(SequenceNumber(seq.rawValue &+ 1))
            v.setTimestamp(ts &+ 3000)
            v.setPayloadTypeValue(pt ^ 0x01)
            v.setMarker(!marker)
            try v.setTransportSequenceNumber(id: VideoExtensionID.transportCC, transportSequence)
            transportSequence &+= 1
        }
        blackHole(packet[2])
    }

    // VP8 payload descriptor rewrite (RFC 7741 §4.2) for a forwarded layer:
    // find the payload, parse the descriptor layout, read and rewrite the
    // 15-bit PictureID and TL0PICIDX in place.
    Benchmark("VP8 PictureID + TL0PICIDX rewrite (in RTP packet)") { benchmark throws in
        for _ in benchmark.scaledIterations {
            let rtp = try RTPHeaderLayout(parsing: UnsafeRawBufferPointer(packet))
            let payload = UnsafeMutableRawBufferPointer(rebasing: packet[rtp.payloadOffset..<rtp.payloadEnd])
            let layout = try VP8DescriptorLayout(parsing: UnsafeRawBufferPointer(payload))
            let pictureID = layout.pictureID(in: UnsafeRawBufferPointer(payload)) ?? 0
            let tl0 = layout.tl0PicIndex(in: UnsafeRawBufferPointer(payload)) ?? 0
            try layout.setPictureID(pictureID &+ 1, in: payload)
            try layout.setTL0PicIndex(tl0 &+ 1, in: payload)
        }
        blackHole(packet[vp8PacketPayloadOffset + 3])
    }
}

func registerRTCPBenchmarks() {
    let compound = ownedBuffer(try! makeRTCPCompound())

    // The non-allocating walk: RTCPCompoundIterator over SR + SDES + REMB +
    // NACK + TWCC, reading the sender SSRC of each packet and expanding the
    // NACK's lost sequence numbers straight from the bytes.
    Benchmark("RTCP compound iterate (SR+SDES+REMB+NACK+TWCC), RTCPCompoundIterator") { benchmark throws in
        var acc: UInt32 = 0
        for _ in benchmark.scaledIterations {
            var it = RTCPCompoundIterator(UnsafeRawBufferPointer(compound))
            while let p = try it.next() {
                switch p.packetType {
                case RTCPPacketType.transportFeedback where p.count == RTCPGenericNACK.format:
                    try RTCPGenericNACK.forEachLost(in: p) { acc &+= UInt32($0) }
                case RTCPPacketType.senderReport, RTCPPacketType.transportFeedback, RTCPPacketType.payloadFeedback:
                    acc &+= p.senderSSRC?.rawValue ?? 0
                default:
                    acc &+= UInt32(p.body.count)
                }
            }
        }
        blackHole(acc)
    }

    // The owned parse: every packet decoded into RTCPPacket values (arrays
    // for report blocks, SDES items, NACK pairs, TWCC results).
    Benchmark("RTCP compound parse (SR+SDES+REMB+NACK+TWCC), RTCPCompound.parse owned") { benchmark throws in
        for _ in benchmark.scaledIterations {
            let packets = try RTCPCompound.parse(UnsafeRawBufferPointer(compound))
            blackHole(packets)
        }
    }
}

func registerVP8Benchmarks() {
    // A 12 000-octet frame cut into RTP payloads for 1200-octet packets
    // with the fixture's 28-octet header (payload limit 1172 octets: 11
    // balanced packets), each payload copied (descriptor + data) into a
    // caller-owned packet buffer: the allocation-free API.
    var rng = SplitMix64(seed: 12)
    let frameBytes = rng.bytes(12_000)
    let frame = ownedBuffer(frameBytes)
    let maxPayload = 1200 - vp8PacketPayloadOffset
    let out = UnsafeMutableRawBufferPointer.allocate(byteCount: 16 * 1200, alignment: 16)
    var packetizer = VP8Packetizer(pictureID: 0, usesPictureID: true, longPictureID: true, tl0PicIndex: 0)
    Benchmark("VP8 packetize 12KB frame at 1200B MTU, into caller buffers") { benchmark throws in
        var packets = 0
        for _ in benchmark.scaledIterations {
            var k = 0
            try packetizer.packetize(frame: UnsafeRawBufferPointer(frame), maxPayloadSize: maxPayload) { descriptor, data, _ in
                let dst = out.baseAddress! + k * 1200 + vp8PacketPayloadOffset
                dst.copyMemory(from: descriptor.baseAddress!, byteCount: descriptor.count)
                (dst + descriptor.count).copyMemory(from: data.baseAddress!, byteCount: data.count)
                k += 1
            }
            packets &+= k
        }
        blackHole(packets)
    }

    // The convenience API returning one [UInt8] per packet.
    var owned = VP8Packetizer(pictureID: 0, usesPictureID: true, longPictureID: true, tl0PicIndex: 0)
    Benchmark("VP8 packetize 12KB frame at 1200B MTU, owned [[UInt8]]") { benchmark throws in
        for _ in benchmark.scaledIterations {
            blackHole(try owned.packetize(frame: frameBytes, maxPayloadSize: maxPayload))
        }
    }
}
