/// The queue an engine fills and its IO edge drains with `poll()` (the
/// `pollTransmit` / `pollEvent` of every engine here): appends at the back,
/// polls from the front without shifting, and reuses its storage once empty.
public struct PollQueue<Element> {
    private var items: [Element?] = []
    private var head = 0

    public init() {}

    public var isEmpty: Bool { head == items.count }

    public mutating func append(_ element: Element) { items.append(element) }

    /// The oldest element, released from the queue's storage at once.
    public mutating func poll() -> Element? {
        guard head < items.count else { return nil }
        let element = items[head].take()
        head += 1
        if head == items.count {
            items.removeAll(keepingCapacity: true)
            head = 0
        }
        return element
    }
}
