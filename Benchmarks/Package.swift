// swift-tools-version:6.1
// Benchmarks for Parley's media primitives (package-benchmark). A package of
// its own so that `make test` never builds the benchmark harness; run with
// `make bench-primitives` or `swift package benchmark` in this folder, and
// `swift run -c release SRTPCompare` for the SRTP ratio printout.
import PackageDescription

let package = Package(
    name: "ParleyBenchmarks",
    platforms: [.macOS(.v15)],
    dependencies: [
        .package(path: ".."),
        .package(url: "https://github.com/ordo-one/benchmark", from: "1.38.1", traits: ["MallocInterposer"]),
    ],
    targets: [
        // libsrtp2 (the reference SRTP) under a module name that cannot clash
        // with the root package's CSRTP.
        .systemLibrary(name: "BenchSRTP", pkgConfig: "libsrtp2", providers: [.apt(["libsrtp2-dev"])]),
        // Fixtures and the libsrtp2 / OpenSSL-only SRTP drivers shared by
        // the benchmarks and SRTPCompare.
        .target(
            name: "BenchSupport",
            dependencies: [
                "BenchSRTP",
                .product(name: "ParleyMedia", package: "main"),
            ]
        ),
        .executableTarget(
            name: "MediaPrimitives",
            dependencies: [
                "BenchSupport",
                .product(name: "Benchmark", package: "benchmark"),
                .product(name: "ParleyMedia", package: "main"),
            ],
            path: "Benchmarks/MediaPrimitives",
            plugins: [.plugin(name: "BenchmarkPlugin", package: "benchmark")]
        ),
        // Same-run SRTP throughput ratios: Parley vs libsrtp2 vs OpenSSL alone.
        .executableTarget(
            name: "SRTPCompare",
            dependencies: [
                "BenchSupport",
                .product(name: "ParleyMedia", package: "main"),
            ]
        ),
    ]
)
