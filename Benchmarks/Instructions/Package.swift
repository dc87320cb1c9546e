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
    ],
    targets: [
        .executableTarget(
            name: "EmitInstructions",
            dependencies: [
                .product(name: "Resilience", package: "spillway"), .product(name: "SpillwayIntegration", package: "spillway"),
                .product(name: "CoreMetrics", package: "swift-metrics"),
            ])
    ]
)
