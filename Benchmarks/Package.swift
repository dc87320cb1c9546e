// swift-tools-version:6.1
// Benchmarks live in their own package so that the library's users never build
// ordo-one/benchmark or swift-otel (the peer measured side by side).
import PackageDescription

/// The back ends and the ecosystem APIs both executables use.
let serverProducts: [Target.Dependency] = [
    .product(name: "SpillwayIntegration", package: "spillway"),
    .product(name: "Logging", package: "swift-log"),
    .product(name: "OTel", package: "swift-otel"),
    .product(name: "Tracing", package: "swift-distributed-tracing"),
    .product(name: "ServiceLifecycle", package: "swift-service-lifecycle"),
]

let package = Package(
    name: "SpillwayBenchmarks",
    platforms: [.macOS(.v15)],
    dependencies: [
        .package(name: "spillway", path: ".."),
        .package(url: "https://github.com/ordo-one/benchmark.git", from: "1.38.1", traits: ["MallocInterposer"]),
        .package(url: "https://github.com/swift-otel/swift-otel.git", exact: "1.6.0"),
        .package(url: "https://github.com/apple/swift-distributed-tracing.git", from: "1.7.3"),
        .package(url: "https://github.com/swift-server/swift-service-lifecycle.git", from: "2.13.0"),
        .package(url: "https://github.com/apple/swift-log.git", from: "1.16.2"),
        .package(url: "https://github.com/apple/swift-metrics.git", from: "2.13.0"),
        .package(url: "https://github.com/swift-server/swift-prometheus.git", exact: "2.4.1"),
        .package(url: "https://github.com/hummingbird-project/hummingbird.git", from: "2.28.1"),
    ],
    targets: [
        .executableTarget(
            name: "SpillwayBenchmarks",
            dependencies: [
                .product(name: "Benchmark", package: "benchmark"),
                .product(name: "Resilience", package: "spillway"),
                .product(name: "ResilienceTesting", package: "spillway"),
            ] + serverProducts + [
                .product(name: "CoreMetrics", package: "swift-metrics"),
                .product(name: "Prometheus", package: "swift-prometheus"),
            ],
            path: "Benchmarks/SpillwayBenchmarks",
            plugins: [.plugin(name: "BenchmarkPlugin", package: "benchmark")]
        ),
        // `make bench-service`: a Hummingbird service with no back end, Spillway or swift-otel,
        // loaded by wrk (Benchmarks/Service/run.sh); not a benchmark target (see its path).
        .executableTarget(
            name: "ServiceBench",
            dependencies: serverProducts + [.product(name: "Hummingbird", package: "hummingbird")],
            // Not under a folder named Benchmarks: ordo-one/benchmark runs every executable there.
            path: "Service/Sources/ServiceBench"
        ),
    ]
)
