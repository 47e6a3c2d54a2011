/// What the call client does once it is logged in.
public enum CallAction: Sendable, Hashable {
    /// `call_start` to one user (a 1:1 call).
    case call(user: String)
    /// `call_start` to a group; members join with `call_accept`.
    case callGroup(name: String)
    /// Waits for `call_incoming` and accepts the first call that rings.
    case answer
    /// `call_accept` for a call id given up front (a group call that is
    /// already running, or a re-join after a dropped connection).
    case join(callID: String)
}

/// One synthetic video source to publish.
public struct VideoSourceOptions: Sendable, Hashable {
    public var width: Int
    public var height: Int
    public var framesPerSecond: Int
    /// Encoder target, kilobits per second; REMB from the SFU may lower it.
    public var bitrateKbps: Int

    public init(width: Int, height: Int, framesPerSecond: Int, bitrateKbps: Int) {
        self.width = width
        self.height = height
        self.framesPerSecond = framesPerSecond
        self.bitrateKbps = bitrateKbps
    }

    /// 640x360 at 30 fps, 800 kbit/s: a typical camera send resolution.
    public static let camera = VideoSourceOptions(width: 640, height: 360, framesPerSecond: 30, bitrateKbps: 800)
    /// 960x540 at 10 fps, 500 kbit/s: slides and text change rarely, so
    /// screens trade frame rate for resolution.
    public static let screen = VideoSourceOptions(width: 960, height: 540, framesPerSecond: 10, bitrateKbps: 500)
}

/// What to publish.
public struct MediaOptions: Sendable, Hashable {
    /// Opus speech, 48 kHz stereo, 20 ms frames.
    public var audio: Bool
    public var audioBitrate: Int
    /// The camera; nil publishes no camera.
    public var camera: VideoSourceOptions?
    /// A screen share (`publish_track {source:"screen"}`); nil for none.
    public var screen: VideoSourceOptions?
    /// Synthetic frames are rendered once for this many frame indices (on a
    /// background thread, from start-up) and then replayed in a loop:
    /// drawing a picture in Swift costs more than encoding it, and a load
    /// client should spend its real-time CPU on the codec and the network.
    /// 0 renders every frame afresh, on the media loop.
    public var renderedLoopFrames: Int

    public init(audio: Bool = true, audioBitrate: Int = 48_000, camera: VideoSourceOptions? = .camera,
                screen: VideoSourceOptions? = nil, renderedLoopFrames: Int = 30) {
        self.audio = audio
        self.audioBitrate = audioBitrate
        self.camera = camera
        self.screen = screen
        self.renderedLoopFrames = renderedLoopFrames
    }
}

/// Everything one call client run needs.
public struct CallClientConfiguration: Sendable {
    /// `ws://host:port/ws`.
    public var url: String
    public var username: String
    public var password: String
    /// Send `register` first; "username taken" is not an error (re-runs).
    public var register: Bool
    public var action: CallAction
    /// How long to stay in the call once joined; nil: until `call_ended`.
    public var duration: Duration?
    /// With `.answer`: how long to wait for a call to ring.
    public var ringTimeout: Duration
    public var media: MediaOptions
    /// Local address for the media sockets; nil picks the address the
    /// kernel routes to the server from.
    public var localAddress: String?
    /// `HOST:PORT` to send media to instead of the SFU's candidates: an
    /// impairment proxy in front of the SFU's media port (tests). ICE then
    /// checks through it like any other path.
    public var mediaVia: String?

    public init(url: String, username: String, password: String, register: Bool = false, action: CallAction,
                duration: Duration? = .seconds(10), ringTimeout: Duration = .seconds(60),
                media: MediaOptions = MediaOptions(), localAddress: String? = nil, mediaVia: String? = nil) {
        self.url = url
        self.username = username
        self.password = password
        self.register = register
        self.action = action
        self.duration = duration
        self.ringTimeout = ringTimeout
        self.media = media
        self.localAddress = localAddress
        self.mediaVia = mediaVia
    }
}

/// Why a run failed before or outside the call.
public enum CallClientError: Error, Sendable, CustomStringConvertible {
    case badURL(String)
    case connectionClosed
    case registrationFailed(String)
    case loginFailed(String)
    /// The server refused a call request (`error` frame or a failed accept).
    case callRefused(code: String, reason: String)
    /// Nothing rang within the ring timeout (`--answer`).
    case noIncomingCall
    case media(String)

    public var description: String {
        switch self {
        case .badURL(let url): "not a ws:// URL: \(url)"
        case .connectionClosed: "the signaling connection closed"
        case .registrationFailed(let reason): "registration failed: \(reason)"
        case .loginFailed(let reason): "login failed: \(reason)"
        case .callRefused(let code, let reason): "call refused (\(code)): \(reason)"
        case .noIncomingCall: "no call rang within the ring timeout"
        case .media(let what): "media: \(what)"
        }
    }
}
