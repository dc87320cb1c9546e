// swift-tools-version:6.1
import PackageDescription

let strictSwift: [SwiftSetting] = [
    .enableUpcomingFeature("ExistentialAny"),
    .enableUpcomingFeature("MemberImportVisibility"),
]

let package = Package(
    name: "spillway",
    platforms: [.macOS(.v15)],
    products: [
        .library(name: "Resilience", targets: ["Resilience"]),
        .library(name: "ResilienceTesting", targets: ["ResilienceTesting"]),
        .executable(name: "spillway", targets: ["spillway"]),
    ],
    dependencies: [
        .package(url: "https://github.com/apple/swift-nio.git", from: "2.101.2"),
        .package(url: "https://github.com/apple/swift-log.git", from: "1.16.2"),
        .package(url: "https://github.com/apple/swift-metrics.git", from: "2.13.0"),
        .package(url: "https://github.com/apple/swift-argument-parser.git", from: "1.8.2"),
    ],
    targets: [
        // The lock-free many-producer / one-consumer byte ring. C11, no dependencies.
        .target(name: "CRingBuffer", cSettings: [.unsafeFlags(["-O2"])]),
        // Spill segment files: io_uring writer, zstd, CRC32C. Links liburing and libzstd.
        .target(name: "CSpill", linkerSettings: [.linkedLibrary("uring"), .linkedLibrary("zstd")]),
        // gzip for OTLP/HTTP request bodies (OTEL_EXPORTER_OTLP_COMPRESSION=gzip). Links zlib.
        .target(name: "CGzip", linkerSettings: [.linkedLibrary("z")]),
        .target(
            name: "Resilience",
            dependencies: [
                "CRingBuffer", "CSpill", "CGzip",
                .product(name: "NIOCore", package: "swift-nio"),
                .product(name: "NIOPosix", package: "swift-nio"),
                .product(name: "NIOHTTP1", package: "swift-nio"),
                .product(name: "Logging", package: "swift-log"),
                .product(name: "CoreMetrics", package: "swift-metrics"),
            ],
            swiftSettings: strictSwift
        ),
        .target(
            name: "ResilienceTesting",
            dependencies: [
                "Resilience", "CGzip",
                .product(name: "NIOCore", package: "swift-nio"),
                .product(name: "NIOPosix", package: "swift-nio"),
                .product(name: "NIOHTTP1", package: "swift-nio"),
            ],
            swiftSettings: strictSwift
        ),
        .executableTarget(
            name: "spillway",
            dependencies: [
                "Resilience", "ResilienceTesting", "CSpill",
                .product(name: "ArgumentParser", package: "swift-argument-parser"),
            ],
            swiftSettings: strictSwift
        ),
        .testTarget(name: "CRingBufferTests", dependencies: ["CRingBuffer"], swiftSettings: strictSwift),
        .testTarget(name: "CSpillTests", dependencies: ["CSpill", "Resilience", "ResilienceTesting"], swiftSettings: strictSwift),
        .testTarget(
            name: "ResilienceTests",
            dependencies: [
                "Resilience", "ResilienceTesting",
                .product(name: "MetricsTestKit", package: "swift-metrics"),
            ],
            swiftSettings: strictSwift
        ),
    ],
    cLanguageStandard: .c11
)
