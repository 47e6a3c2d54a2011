import Chat
import Synchronization

/// The ordered stream of everything one WebSocket connection is sent: direct
/// responses and pushed events alike, so a client sees them in the order the
/// server produced them. Pushes may come from any thread.
final class OutboundQueue: ClientSink {
    enum Item: Sendable {
        case event(ChatEvent)
        case text(String)
    }

    let stream: AsyncStream<Item>
    private let continuation: AsyncStream<Item>.Continuation
    /// While a login assembles its pending messages, pushes wait here so they
    /// cannot overtake the `login_response` that precedes them.
    private let held = Mutex<[ChatEvent]?>(nil)
    private let overflowed = Atomic<Bool>(false)

    /// `capacity` bounds what a slow reader can make the server hold; past it
    /// the connection is closed rather than growing without limit.
    init(capacity: Int) {
        (stream, continuation) = AsyncStream.makeStream(of: Item.self, bufferingPolicy: .bufferingOldest(capacity))
    }

    func push(_ event: ChatEvent) {
        held.withLock { held in
            if held != nil {
                held!.append(event)
            } else {
                enqueue(.event(event))
            }
        }
    }

    func send(_ object: JSONObject) {
        held.withLock { _ in enqueue(.text(object.serialized)) }
    }

    /// A line of the line protocol (the writer adds the newline).
    func sendLine(_ line: String) {
        held.withLock { _ in enqueue(.text(line)) }
    }

    func beginHold() {
        held.withLock { held in if held == nil { held = [] } }
    }

    func endHold() {
        held.withLock { held in
            for event in held ?? [] { enqueue(.event(event)) }
            held = nil
        }
    }

    var didOverflow: Bool { overflowed.load(ordering: .relaxed) }

    func finish() { continuation.finish() }

    private func enqueue(_ item: Item) {
        if case .dropped = continuation.yield(item) {
            overflowed.store(true, ordering: .relaxed)
            continuation.finish()
        }
    }
}

/// A token bucket: `rate` frames per second, bursts of `burst`.
struct RateLimiter {
    let rate: Double
    let burst: Double
    private var tokens: Double
    private var last: ContinuousClock.Instant

    init(rate: Double, burst: Double, now: ContinuousClock.Instant) {
        self.rate = rate
        self.burst = burst
        self.tokens = burst
        self.last = now
    }

    mutating func allow(now: ContinuousClock.Instant) -> Bool {
        let elapsed = now - last
        last = now
        let seconds = Double(elapsed.components.seconds) + Double(elapsed.components.attoseconds) / 1e18
        tokens = min(burst, tokens + seconds * rate)
        guard tokens >= 1 else { return false }
        tokens -= 1
        return true
    }
}
