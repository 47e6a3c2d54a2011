import Foundation
import Testing
import RTCBase
@testable import SDP

/// Driven by Fixtures/capture_chromium.py `verify`: it puts fresh Chromium
/// offers in $SDP_LIVE_DIR, runs this suite, and feeds the answers written here
/// back to Chromium's setRemoteDescription. It also exchanges a subscriber
/// offer made here for Chromium's answer. Skipped when $SDP_LIVE_DIR is unset
/// (CI): the browser check is manual.
@Suite(.enabled(if: ProcessInfo.processInfo.environment["SDP_LIVE_DIR"] != nil))
struct LiveBrowserAnswerTests {
    let dir = ProcessInfo.processInfo.environment["SDP_LIVE_DIR"] ?? "/nonexistent"

    @Test func writeAnswersToLiveOffers() throws {
        let names = try FileManager.default.contentsOfDirectory(atPath: dir)
            .filter { $0.hasPrefix("offer-") && $0.hasSuffix(".sdp") }
        #expect(!names.isEmpty)
        for name in names {
            let offer = try SessionDescription(parsing: Array(try Data(contentsOf: URL(fileURLWithPath: "\(dir)/\(name)"))))
            // A recvonly viewer gets media from the SFU; a publisher only sends to it.
            let viewer = offer.media.allSatisfy { $0.effectiveDirection == .recvonly || $0.kind == .application }
            let answer = try SessionDescription.answer(to: offer, config: TestValues.answerConfig(allowSending: viewer))
            let out = "\(dir)/answer-" + name.dropFirst("offer-".count)
            try Data(answer.serialized().utf8).write(to: URL(fileURLWithPath: out))
        }
        // The subscriber offer, for Chromium to answer.
        let offer = SessionDescription.subscriberOffer(tracks: SubscriberFixtures.tracks, config: SubscriberFixtures.config)
        try Data(offer.serialized().utf8).write(to: URL(fileURLWithPath: "\(dir)/subscriber-offer.sdp"))
        // Chromium's answer to it, when the script has already fetched one.
        let answerPath = "\(dir)/subscriber-answer.sdp"
        if FileManager.default.fileExists(atPath: answerPath) {
            let answer = try SessionDescription(parsing: Array(try Data(contentsOf: URL(fileURLWithPath: answerPath))))
            let read = try SessionDescription.readSubscriberAnswer(answer, to: offer)
            #expect(read.acceptedMids.map(\.rawValue) == ["0", "1"])
            #expect(read.setup == .active)
            let report = "ufrag=\(read.iceUfrag) setup=\(read.setup.rawValue) accepted=\(read.acceptedMids.map(\.rawValue)) " +
                "fingerprint=\(read.fingerprints.first?.hashFunction ?? "none")\n"
            try Data(report.utf8).write(to: URL(fileURLWithPath: "\(dir)/subscriber-read.txt"))
        }
    }
}
