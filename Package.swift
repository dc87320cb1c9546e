// swift-tools-version:6.1
import PackageDescription

let strictSwift: [SwiftSetting] = [
    .enableUpcomingFeature("ExistentialAny"),
    .enableUpcomingFeature("MemberImportVisibility"),
]
// The libraries also import their dependencies internally unless an import says `public`: a
// dependency's type in the public API is then a choice made in one place, not an accident.
let libraryStrictSwift: [SwiftSetting] = strictSwift + [.enableUpcomingFeature("InternalImportsByDefault")]

let package = Package(
    name: "spillway",
    platforms: [.macOS(.v15)],
    products: [
        .library(name: "Resilience", targets: ["Resilience"]),
        .library(name: "ResilienceTesting", targets: ["ResilienceTesting"]),
        .library(name: "SpillwayIntegration", targets: ["SpillwayIntegration"]),
        .executable(name: "spillway", targets: ["spillway"]),
    ],
    // Both on by default: most collectors a service meets outside its own host are `https://`, and
    // gRPC on port 4317 is the receiver most deployments open first. A build for a plaintext
    // OTLP/HTTP agent leaves them out (`traits: []` on the dependency): no BoringSSL, no HTTP/2.
    traits: [
        .trait(name: "TLS", description: "https:// collectors and mutual TLS, through swift-nio-ssl (BoringSSL)."),
        .trait(name: "GRPC", description: "OTLP/gRPC (OTEL_EXPORTER_OTLP_PROTOCOL=grpc), over HTTP/2 from swift-nio-http2."),
        .default(enabledTraits: ["TLS", "GRPC"]),
    ],
    dependencies: [
        .package(url: "https://github.com/apple/swift-nio.git", from: "2.101.2"),
        .package(url: "https://github.com/apple/swift-nio-ssl.git", from: "2.37.6"),
        .package(url: "https://github.com/apple/swift-nio-http2.git", from: "1.46.0"),
        .package(url: "https://github.com/apple/swift-log.git", from: "1.16.2"),
        .package(url: "https://github.com/apple/swift-metrics.git", from: "2.13.0"),
        .package(url: "https://github.com/apple/swift-argument-parser.git", from: "1.8.2"),
        .package(url: "https://github.com/swift-server/swift-service-lifecycle.git", from: "2.13.0"),
        .package(url: "https://github.com/apple/swift-distributed-tracing.git", from: "1.7.3"),
        .package(url: "https://github.com/apple/swift-system.git", from: "1.5.0"),
        .package(url: "https://github.com/jpsim/Yams.git", "5.4.0"..<"7.0.0"),
        .package(url: "https://github.com/apple/swift-configuration.git", from: "1.4.0", traits: ["JSON", "YAML", "Reloading"]),
    ],
    targets: [
        // The lock-free many-producer / one-consumer byte ring. C11, no dependencies.
        .target(name: "CRingBuffer"),
        // The system's libzstd and (Linux) liburing, found with pkg-config where it has them (so
        // Homebrew's prefix works on macOS). No unsafe flags: a package depending on Spillway by
        // version must be able to build it.
        .systemLibrary(
            name: "CZstd", pkgConfig: "libzstd", providers: [.apt(["libzstd-dev"]), .yum(["libzstd-devel"]), .brew(["zstd"])]),
        .systemLibrary(name: "CLibURing", pkgConfig: "liburing", providers: [.apt(["liburing-dev"]), .yum(["liburing-devel"])]),
        // Spill segment files: io_uring writer (Linux; pwrite elsewhere), zstd, CRC32C.
        .target(
            name: "CSpill",
            dependencies: ["CZstd", .target(name: "CLibURing", condition: .when(platforms: [.linux]))],
            linkerSettings: [.linkedLibrary("uring", .when(platforms: [.linux])), .linkedLibrary("zstd")]),
        // gzip for OTLP/HTTP request bodies (OTEL_EXPORTER_OTLP_COMPRESSION=gzip). Links zlib.
        .target(name: "CGzip", linkerSettings: [.linkedLibrary("z")]),
        .target(
            name: "Resilience",
            dependencies: [
                "CRingBuffer", "CSpill", "CGzip",
                .product(name: "NIOCore", package: "swift-nio"),
                .product(name: "NIOPosix", package: "swift-nio"),
                .product(name: "NIOHTTP1", package: "swift-nio"),
                .product(name: "NIOTLS", package: "swift-nio"),
                .product(name: "NIOConcurrencyHelpers", package: "swift-nio"),
                .product(name: "NIOSSL", package: "swift-nio-ssl", condition: .when(traits: ["TLS"])),
                .product(name: "NIOHTTP2", package: "swift-nio-http2", condition: .when(traits: ["GRPC"])),
                .product(name: "NIOHPACK", package: "swift-nio-http2", condition: .when(traits: ["GRPC"])),
                .product(name: "Logging", package: "swift-log"),
                .product(name: "CoreMetrics", package: "swift-metrics"),
                .product(name: "ServiceLifecycle", package: "swift-service-lifecycle"),
            ],
            swiftSettings: libraryStrictSwift
        ),
        // The Swift server ecosystem: swift-distributed-tracing back end, swift-log handler,
        // swift-configuration layers with live reload, and the one-call bootstrap.
        .target(
            name: "SpillwayIntegration",
            dependencies: [
                "Resilience",
                .product(name: "Tracing", package: "swift-distributed-tracing"),
                .product(name: "Instrumentation", package: "swift-distributed-tracing"),
                .product(name: "Logging", package: "swift-log"),
                .product(name: "CoreMetrics", package: "swift-metrics"),
                .product(name: "ServiceLifecycle", package: "swift-service-lifecycle"),
                .product(name: "Configuration", package: "swift-configuration"),
                .product(name: "SystemPackage", package: "swift-system"),
                .product(name: "Yams", package: "Yams"),
            ],
            swiftSettings: libraryStrictSwift
        ),
        .target(
            name: "ResilienceTesting",
            dependencies: [
                "Resilience", "CGzip",
                .product(name: "NIOCore", package: "swift-nio"),
                .product(name: "NIOPosix", package: "swift-nio"),
                .product(name: "NIOHTTP1", package: "swift-nio"),
                .product(name: "NIOSSL", package: "swift-nio-ssl", condition: .when(traits: ["TLS"])),
                .product(name: "NIOHTTP2", package: "swift-nio-http2", condition: .when(traits: ["GRPC"])),
                .product(name: "NIOHPACK", package: "swift-nio-http2", condition: .when(traits: ["GRPC"])),
            ],
            swiftSettings: libraryStrictSwift
        ),
        .executableTarget(
            name: "spillway",
            dependencies: [
                "Resilience", "ResilienceTesting", "SpillwayIntegration",
                .product(name: "ArgumentParser", package: "swift-argument-parser"),
                .product(name: "Logging", package: "swift-log"),
                .product(name: "Tracing", package: "swift-distributed-tracing"),
                .product(name: "ServiceLifecycle", package: "swift-service-lifecycle"),
                .product(name: "UnixSignals", package: "swift-service-lifecycle"),
            ],
            swiftSettings: strictSwift
        ),
        .testTarget(name: "CRingBufferTests", dependencies: ["CRingBuffer"], swiftSettings: strictSwift),
        .testTarget(name: "CSpillTests", dependencies: ["CSpill", "Resilience", "ResilienceTesting"], swiftSettings: strictSwift),
        .testTarget(
            name: "SpillwayIntegrationTests",
            dependencies: [
                "SpillwayIntegration", "Resilience", "ResilienceTesting",
                .product(name: "Tracing", package: "swift-distributed-tracing"),
                .product(name: "Logging", package: "swift-log"),
                .product(name: "ServiceLifecycle", package: "swift-service-lifecycle"),
                .product(name: "Configuration", package: "swift-configuration"),
            ],
            swiftSettings: strictSwift
        ),
        .testTarget(
            name: "ResilienceTests",
            dependencies: [
                "Resilience", "ResilienceTesting",
                .product(name: "MetricsTestKit", package: "swift-metrics"),
                .product(name: "Logging", package: "swift-log"),
            ],
            swiftSettings: strictSwift
        ),
    ],
    cLanguageStandard: .c11
)
