// swift-tools-version:6.1
// The ring and its tests alone, for `make test-tsan`: ThreadSanitizer instruments everything it
// builds, and the main package's test build would compile swift-nio and the rest with it (four and
// a half minutes on two cores) to run tests that use only the ring. The two directories under
// Sources/ and Tests/ are links to the main package's own.
import PackageDescription

let package = Package(
    name: "ring-tsan",
    targets: [
        .target(name: "CRingBuffer"),
        .testTarget(name: "CRingBufferTests", dependencies: ["CRingBuffer"])
    ]
)
