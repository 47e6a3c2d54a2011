import Foundation

/// What one TURN step (or the best step of a search) measured.
public struct RelayResult: Sendable, Equatable {
    /// The offered rate, messages per second in total.
    public var rate: Int
    public var sent: Int
    public var delivered: Int
    public var seconds: Double

    public init(rate: Int, sent: Int, delivered: Int, seconds: Double) {
        self.rate = rate
        self.sent = sent
        self.delivered = delivered
        self.seconds = seconds
    }

    public var deliveredPerSecond: Double { seconds > 0 ? Double(delivered) / seconds : 0 }
    /// Share of sent messages that never arrived, in percent.
    public var lossPercent: Double { sent > 0 ? Double(max(0, sent - delivered)) * 100 / Double(sent) : 0 }
}

/// The one-line summaries `parley bench stun|turn` end with. Targets that
/// did not run are left out; the ratio (parley ÷ coturn) needs both.
public enum SummaryLine {
    public static func stun(parley: Double?, coturn: Double?) -> String {
        var parts: [String] = []
        if let parley { parts.append("parley \(whole(parley)) resp/s") }
        if let coturn { parts.append("coturn \(whole(coturn)) resp/s") }
        if let parley, let coturn { parts.append("ratio " + ratio(parley, coturn)) }
        return "stun: " + (parts.isEmpty ? "no target ran" : parts.joined(separator: ", "))
    }

    public static func turn(payloadSize: Int, parley: RelayResult?, coturn: RelayResult?) -> String {
        func part(_ name: String, _ r: RelayResult) -> String {
            "\(name) \(whole(r.deliveredPerSecond)) msg/s loss \(String(format: "%.2f", r.lossPercent))%"
        }
        var parts: [String] = []
        if let parley { parts.append(part("parley", parley)) }
        if let coturn { parts.append(part("coturn", coturn)) }
        if let parley, let coturn { parts.append("ratio " + ratio(parley.deliveredPerSecond, coturn.deliveredPerSecond)) }
        return "turn \(payloadSize)B: " + (parts.isEmpty ? "no target ran" : parts.joined(separator: ", "))
    }

    static func whole(_ x: Double) -> String { x.isFinite ? String(Int(x.rounded())) : "0" }

    static func ratio(_ a: Double, _ b: Double) -> String {
        b > 0 && a.isFinite ? String(format: "%.2f", a / b) : "n/a"
    }
}
