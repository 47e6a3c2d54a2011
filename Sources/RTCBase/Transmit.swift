/// A datagram an engine wants sent. Engines queue these; the IO edge drains
/// them with `pollTransmit()` and writes them to the socket.
public struct Transmit: Sendable, Equatable {
    /// The local address to send from, when the engine cares (an ICE agent
    /// with several host candidates); nil means "the socket you have".
    public var source: TransportAddress?
    public var destination: TransportAddress
    public var payload: [UInt8]

    public init(source: TransportAddress? = nil, destination: TransportAddress, payload: [UInt8]) {
        self.source = source
        self.destination = destination
        self.payload = payload
    }
}
