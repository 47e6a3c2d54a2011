// swift-tools-version:6.1
// Benchmarks for Parley's media primitives (package-benchmark). A package of
// its own so that `make test` never builds the benchmark harness; run with
// `make bench-primitives` or `swift package benchmark` in this folder.
import PackageDescription

let package = Package(
    name: "ParleyBenchmarks",
    platforms: [.macOS(.v15)],
    dependencies: [
        .package(path: ".."),
        .package(url: "https://github.com/ordo-one/benchmark", from: "1.38.1", traits: ["MallocInterposer"]),
    ],
    targets: [
        .executableTarget(
            name: "MediaPrimitives",
            dependencies: [
                .product(name: "Benchmark", package: "benchmark"),
                .product(name: "ParleyMedia", package: "main"),
            ],
            path: "Benchmarks/MediaPrimitives",
            plugins: [.plugin(name: "BenchmarkPlugin", package: "benchmark")]
        ),
    ]
)
