// swift-tools-version:6.1
// The emit path's instruction count under callgrind (`make bench-instructions`): exact, and the
// same on every run, where wall-clock numbers on a shared 2-core machine are not.
import PackageDescription

let package = Package(
    name: "EmitInstructions",
    platforms: [.macOS(.v15)],
    dependencies: [
        .package(name: "spillway", path: "../.."),
        .package(url: "https://github.com/apple/swift-metrics.git", from: "2.13.0"),
        .package(url: "https://github.com/apple/swift-log.git", from: "1.16.2"),
        .package(url: "https://github.com/apple/swift-distributed-tracing.git", from: "1.7.3"),
    ],
    targets: [
        .executableTarget(
            name: "EmitInstructions",
            dependencies: [
                .product(name: "Resilience", package: "spillway"), .product(name: "SpillwayIntegration", package: "spillway"),
                .product(name: "CoreMetrics", package: "swift-metrics"),
                .product(name: "Logging", package: "swift-log"),
                .product(name: "Tracing", package: "swift-distributed-tracing"),
            ])
    ]
)
