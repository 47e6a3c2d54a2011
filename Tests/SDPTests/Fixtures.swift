import Foundation
import RTCBase
@testable import SDP

/// Fixture files live beside the tests (read by path from `#filePath`, no
/// SwiftPM resources). See Fixtures/README.md for how each was captured.
enum Fixture {
    static let directory: String = {
        let file = "\(#filePath)"
        let dir = file.split(separator: "/", omittingEmptySubsequences: false).dropLast().joined(separator: "/")
        return dir + "/Fixtures/"
    }()

    static let chromium = ["chromium_audio_video.sdp", "chromium_simulcast.sdp",
                           "chromium_datachannel_audio.sdp", "chromium_recvonly.sdp"]
    static let aiortc = ["aiortc_audio_video.sdp"]
    static let rfc = ["rfc8829_offer_a1.sdp", "rfc8829_offer_b1.sdp", "rfc8853_simulcast_offer.sdp"]
    static let all = chromium + aiortc + rfc

    static func bytes(_ name: String) throws -> [UInt8] {
        Array(try Data(contentsOf: URL(fileURLWithPath: directory + name)))
    }

    static func text(_ name: String) throws -> String {
        String(decoding: try bytes(name), as: UTF8.self)
    }

    /// The fixture with bare LF line endings (byte-wise: in Swift "\r\n" is
    /// one Character, so String replacement is not to be trusted for this).
    static func lfText(_ name: String) throws -> String {
        var out: [UInt8] = []
        for b in try bytes(name) where b != 0x0D { out.append(b) }
        return String(decoding: out, as: UTF8.self)
    }

    static func parse(_ name: String) throws -> SessionDescription {
        try SessionDescription(parsing: try text(name))
    }

    /// An independent oracle: the values of `a=<name>:` lines found by plain
    /// string search, in order.
    static func grep(_ name: String, attribute: String) throws -> [String] {
        // Split on bytes: in Swift "\r\n" is one Character, so String-level
        // splitting on "\n" would not see it.
        try bytes(name).split(separator: 0x0A).compactMap { raw in
            let line = raw.last == 0x0D ? raw.dropLast() : raw
            let prefix = Array("a=\(attribute):".utf8)
            guard line.starts(with: prefix) else { return nil }
            return String(decoding: line.dropFirst(prefix.count), as: UTF8.self)
        }
    }
}

enum TestValues {
    static let fingerprint = Fingerprint(hashFunction: "sha-256", bytes: (0..<32).map { UInt8($0 * 7 & 0xFF) })

    static func answerConfig(allowSending: Bool = false, setup: SetupRole = .passive) -> AnswerConfiguration {
        AnswerConfiguration(
            iceUfrag: "sfuA", icePassword: "sfuPasswordSfuPassword12", fingerprint: fingerprint,
            candidates: ["1 1 udp 2130706431 127.0.0.1 40000 typ host"],
            sessionID: 4_611_686_018_427_387_904, sessionVersion: 2, setupRole: setup, allowSending: allowSending)
    }
}
