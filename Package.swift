// swift-tools-version:6.1
import PackageDescription

let strict: [SwiftSetting] = [
    .enableUpcomingFeature("ExistentialAny"),
]

let package = Package(
    name: "Parley",
    platforms: [.macOS(.v15)],
    products: [
        .executable(name: "parley", targets: ["parley"]),
        // The media core, for the benchmarks package and embedders.
        .executable(name: "parley-fuzz", targets: ["ParleyFuzz"]),
        .executable(name: "parley-echo-peer", targets: ["EchoPeer"]),
        .executable(name: "parley-call", targets: ["ParleyCall"]),
        .library(name: "ParleyMedia", targets: ["RTCBase", "STUN", "ICE", "DTLS", "SDP", "SRTP", "RTP", "PeerSession", "TURN", "Codecs",
                                                "SFU", "Recording"]),
    ],
    dependencies: [
        .package(url: "https://github.com/apple/swift-argument-parser.git", from: "1.8.2"),
        .package(url: "https://github.com/apple/swift-log.git", from: "1.16.2"),
        .package(url: "https://github.com/apple/swift-nio.git", from: "2.101.2"),
        .package(url: "https://github.com/swift-server/swift-service-lifecycle.git", from: "2.13.0"),
        .package(url: "https://github.com/hummingbird-project/hummingbird.git", from: "2.28.1"),
        .package(url: "https://github.com/hummingbird-project/hummingbird-websocket.git", from: "2.8.1"),
        .package(url: "https://github.com/groue/GRDB.swift.git", from: "7.10.0"),
        .package(url: "https://github.com/swift-server/swift-prometheus.git", from: "2.4.1"),
        .package(url: "https://github.com/apple/swift-nio-ssl.git", from: "2.37.6"),
    ],
    targets: [
        // C libraries the media side needs, through pkg-config.
        .systemLibrary(name: "COpenSSL", pkgConfig: "openssl", providers: [.apt(["libssl-dev"])]),
        .systemLibrary(name: "COpus", pkgConfig: "opus", providers: [.apt(["libopus-dev"])]),
        .systemLibrary(name: "CVPX", pkgConfig: "vpx", providers: [.apt(["libvpx-dev"])]),
        // recvmmsg/sendmmsg, epoll and eventfd, which Swift's Glibc module does not import.
        .target(name: "CSockets"),
        // Raw non-blocking UDP for the media hot path: recvmmsg into
        // preallocated slots, sendmmsg batches per socket, epoll.
        .target(name: "UDPIO", dependencies: ["CSockets", "RTCBase"], swiftSettings: strict),
        .systemLibrary(name: "CSRTP", pkgConfig: "libsrtp2", providers: [.apt(["libsrtp2-dev"])]),

        // Media core, written here from the RFCs, sans-IO.
        .target(name: "RTCBase", swiftSettings: strict),
        .target(name: "STUN", dependencies: ["RTCBase", "COpenSSL"], swiftSettings: strict),
        .target(name: "ICE", dependencies: ["STUN", "RTCBase"], swiftSettings: strict),
        .target(name: "DTLS", dependencies: ["COpenSSL", "RTCBase"], swiftSettings: strict),
        .target(name: "SDP", dependencies: ["RTCBase"], swiftSettings: strict),
        .target(name: "RTP", dependencies: ["RTCBase"], swiftSettings: strict),
        .target(name: "TURN", dependencies: ["STUN", "RTCBase"], swiftSettings: strict),
        // VP8 (libvpx) and Opus (libopus) wrappers, synthetic sources, media files.
        .target(name: "Codecs", dependencies: ["CVPX", "COpus"], swiftSettings: strict),
        // `parley bench codec`: Parley's VP8/Opus vs vpxenc/vpxdec/opusenc/opusdec, loss round trip.
        .target(name: "CodecBench", dependencies: ["Codecs", "RTP", "RTCBase"], swiftSettings: strict),
        // One WebRTC transport: ICE + DTLS + SRTP, sans-IO.
        .target(name: "PeerSession", dependencies: ["ICE", "DTLS", "SRTP", "TURN", "RTCBase"], swiftSettings: strict),
        .target(name: "SRTP", dependencies: ["COpenSSL", "RTCBase"], swiftSettings: strict),
        // The selective forwarding unit, sans-IO: rooms, publish/subscribe
        // transports, forwarding with rewriting, RTCP (NACK/RTX, PLI, TWCC, REMB).
        .target(name: "SFU", dependencies: ["PeerSession", "SDP", "RTP", "ICE", "DTLS", "SRTP", "STUN", "RTCBase"],
                swiftSettings: strict),
        // Call recording: forwarded RTP to IVF (VP8) and Ogg Opus files.
        .target(name: "Recording", dependencies: ["RTP", "Codecs", "RTCBase"], swiftSettings: strict),

        // The chat domain: users, messages, groups, contacts; the ChatStore protocol.
        .target(
            name: "Chat",
            dependencies: ["COpenSSL"],
            swiftSettings: strict
        ),
        .target(
            name: "ChatStoreSQLite",
            dependencies: ["Chat", .product(name: "GRDB", package: "GRDB.swift")],
            swiftSettings: strict
        ),
        // WebSocket + line protocol + HTTP: routes frames between connections.
        .target(
            name: "Signaling",
            dependencies: [
                "Chat",
                .product(name: "Hummingbird", package: "hummingbird"),
                .product(name: "HummingbirdWebSocket", package: "hummingbird-websocket"),
                .product(name: "NIOCore", package: "swift-nio"),
                .product(name: "NIOPosix", package: "swift-nio"),
                .product(name: "Logging", package: "swift-log"),
                .product(name: "ServiceLifecycle", package: "swift-service-lifecycle"),
                .product(name: "Prometheus", package: "swift-prometheus"),
            ],
            resources: [.copy("Web")],
            swiftSettings: strict
        ),
        // The IO edge of the media side: UDP edges on their own epoll threads
        // (recvmmsg/sendmmsg) hosting the TURN engine and one SFU engine per
        // media worker; TURN TCP/TLS and ICE-TCP on SwiftNIO.
        .target(
            name: "MediaServer",
            dependencies: [
                "TURN", "STUN", "RTCBase", "UDPIO", "SFU", "DTLS", "Recording",
                .product(name: "NIOCore", package: "swift-nio"),
                .product(name: "NIOPosix", package: "swift-nio"),
                .product(name: "NIOSSL", package: "swift-nio-ssl"),
                .product(name: "Logging", package: "swift-log"),
                .product(name: "ServiceLifecycle", package: "swift-service-lifecycle"),
                .product(name: "Prometheus", package: "swift-prometheus"),
            ],
            swiftSettings: strict
        ),
        // The signaling load generator behind `parley bench signaling`.
        .target(
            name: "SignalingBench",
            dependencies: [
                .product(name: "HummingbirdWSClient", package: "hummingbird-websocket"),
                .product(name: "NIOCore", package: "swift-nio"),
                .product(name: "NIOPosix", package: "swift-nio"),
                .product(name: "Logging", package: "swift-log"),
            ],
            swiftSettings: strict
        ),
        // The STUN/TURN load generator behind `parley bench stun|turn` (Parley vs coturn).
        .target(
            name: "TURNBench",
            dependencies: [
                "STUN", "RTCBase", "UDPIO",
                .product(name: "NIOCore", package: "swift-nio"),
                .product(name: "NIOPosix", package: "swift-nio"),
            ],
            swiftSettings: strict
        ),
        .executableTarget(
            name: "parley",
            dependencies: [
                "Chat", "ChatStoreSQLite", "Signaling", "SignalingBench", "TURNBench", "MediaServer", "TURN", "RTCBase",
                "CodecBench", "Codecs", "SFU",
                .product(name: "ArgumentParser", package: "swift-argument-parser"),
                .product(name: "Prometheus", package: "swift-prometheus"),
                .product(name: "Logging", package: "swift-log"),
                .product(name: "ServiceLifecycle", package: "swift-service-lifecycle"),
                .product(name: "NIOCore", package: "swift-nio"),
                .product(name: "NIOPosix", package: "swift-nio"),
            ],
            swiftSettings: strict
        ),

        // A headless call client: signaling over WebSocket, publish and
        // subscribe transports, synthetic camera/screen/Opus sources, decoding.
        .target(
            name: "CallClient",
            dependencies: [
                "PeerSession", "SDP", "RTP", "ICE", "DTLS", "RTCBase", "Codecs",
                .product(name: "HummingbirdWSClient", package: "hummingbird-websocket"),
                .product(name: "NIOCore", package: "swift-nio"),
                .product(name: "NIOPosix", package: "swift-nio"),
                .product(name: "Logging", package: "swift-log"),
            ],
            swiftSettings: strict
        ),
        // `parley-call`: the headless call client on the command line.
        .executableTarget(
            name: "ParleyCall",
            dependencies: [
                "CallClient",
                .product(name: "ArgumentParser", package: "swift-argument-parser"),
            ],
            path: "Samples/ParleyCall",
            swiftSettings: strict
        ),
        // A headless peer that answers an offer and echoes RTP (the aiortc check).
        .executableTarget(
            name: "EchoPeer",
            dependencies: [
                "PeerSession", "SDP", "DTLS", "ICE", "RTCBase",
                .product(name: "NIOCore", package: "swift-nio"),
                .product(name: "NIOPosix", package: "swift-nio"),
            ],
            path: "Samples/EchoPeer",
            swiftSettings: strict
        ),
        // libFuzzer harnesses for the parsers (Fuzz/run.sh); a normal build
        // makes a regression runner over saved inputs.
        .executableTarget(
            name: "ParleyFuzz",
            dependencies: ["RTCBase", "STUN", "ICE", "SDP", "RTP"],
            path: "Fuzz/ParleyFuzz",
            swiftSettings: strict
        ),

        .testTarget(name: "CLibrariesTests", dependencies: ["COpenSSL", "COpus", "CVPX", "CSRTP"]),
        .testTarget(name: "ChatTests", dependencies: ["Chat", "ChatStoreSQLite"]),
        .testTarget(name: "ChatStoreSQLiteTests", dependencies: ["Chat", "ChatStoreSQLite"]),
        .testTarget(name: "SignalingTests", dependencies: ["Chat", "Signaling"]),
        .testTarget(name: "RTCBaseTests", dependencies: ["RTCBase"]),
        .testTarget(name: "STUNTests", dependencies: ["STUN", "RTCBase"], swiftSettings: strict),
        .testTarget(name: "ICETests", dependencies: ["ICE", "STUN", "RTCBase"], swiftSettings: strict),
        .testTarget(name: "SDPTests", dependencies: ["SDP", "RTCBase"], exclude: ["Fixtures"], swiftSettings: strict),
        .testTarget(name: "RTPTests", dependencies: ["RTP", "RTCBase"], swiftSettings: strict),
        .testTarget(name: "SRTPTests", dependencies: ["SRTP", "CSRTP", "RTCBase"], swiftSettings: strict),
        .testTarget(name: "PeerSessionTests", dependencies: ["PeerSession", "ICE", "DTLS", "SRTP", "TURN", "STUN", "RTCBase"], swiftSettings: strict),
        .testTarget(name: "TURNTests", dependencies: ["TURN", "STUN", "RTCBase"], swiftSettings: strict),
        // Test support: finding and running ffprobe, vpxenc, opusdec and friends.
        .target(name: "ExternalTools", path: "Tests/ExternalTools", swiftSettings: strict),
        .testTarget(name: "CodecsTests", dependencies: ["Codecs", "ExternalTools"], swiftSettings: strict),
        .testTarget(name: "TURNBenchTests", dependencies: ["TURNBench", "STUN", "RTCBase"], swiftSettings: strict),
        .testTarget(name: "UDPIOTests", dependencies: ["UDPIO", "RTCBase"], swiftSettings: strict),
        .testTarget(
            name: "MediaServerTests",
            dependencies: [
                "MediaServer", "TURN", "STUN", "RTCBase",
                .product(name: "NIOCore", package: "swift-nio"),
                .product(name: "NIOPosix", package: "swift-nio"),
                .product(name: "Prometheus", package: "swift-prometheus"),
            ],
            swiftSettings: strict
        ),
        .testTarget(name: "CodecBenchTests", dependencies: ["CodecBench", "Codecs"], swiftSettings: strict),
        .testTarget(name: "DTLSTests", dependencies: ["DTLS", "COpenSSL", "RTCBase"], swiftSettings: strict),
        .testTarget(name: "SFUTests", dependencies: ["SFU", "PeerSession", "SDP", "RTP", "ICE", "DTLS", "STUN", "RTCBase"],
                    swiftSettings: strict),
        .testTarget(name: "RecordingTests", dependencies: ["Recording", "Codecs", "RTP", "RTCBase", "ExternalTools"], swiftSettings: strict),
        .testTarget(name: "CallClientTests", dependencies: ["CallClient", "PeerSession", "SDP", "RTP", "Codecs", "RTCBase"],
                    swiftSettings: strict),
    ]
)
