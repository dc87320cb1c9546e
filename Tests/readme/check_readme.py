#!/usr/bin/env python3
"""Builds the documentation's Swift examples against this checkout, so that they keep compiling.

Usage: check_readme.py REPO_DIR WORK_DIR

Extracts the quick start from README.md and the Hummingbird-style service from docs/ecosystem.md
into a package in WORK_DIR (which depends on REPO_DIR by path, and on Hummingbird) and runs
`swift build`. Run by `make examples`; not part of `make test`, because Hummingbird takes minutes.
"""
import os
import subprocess
import sys

repo, work = sys.argv[1], sys.argv[2]
readme = open(os.path.join(repo, "README.md")).read()
ecosystem = open(os.path.join(repo, "docs/ecosystem.md")).read()


def block_after(text, marker):
    at = text.index(marker)
    at = text.index("```swift\n", at) + len("```swift\n")
    return text[at:text.index("```", at)]


quick = block_after(readme, "## Quick start")
service = block_after(ecosystem, "# The Swift server ecosystem")

package = f"""// swift-tools-version:6.1
import PackageDescription
let package = Package(
    name: "readme-examples", platforms: [.macOS(.v15)],
    dependencies: [
        .package(path: "{os.path.abspath(repo)}"),
        .package(url: "https://github.com/hummingbird-project/hummingbird.git", from: "2.28.1"),
        .package(url: "https://github.com/apple/swift-log.git", from: "1.16.2"),
        .package(url: "https://github.com/apple/swift-metrics.git", from: "2.13.0"),
        .package(url: "https://github.com/apple/swift-distributed-tracing.git", from: "1.7.3"),
        .package(url: "https://github.com/swift-server/swift-service-lifecycle.git", from: "2.13.0"),
    ],
    targets: [
        .executableTarget(name: "QuickStart", dependencies: [
            .product(name: "SpillwayIntegration", package: "{os.path.basename(os.path.abspath(repo))}"),
            .product(name: "Logging", package: "swift-log"),
            .product(name: "CoreMetrics", package: "swift-metrics"),
            .product(name: "Tracing", package: "swift-distributed-tracing"),
            .product(name: "ServiceLifecycle", package: "swift-service-lifecycle"),
        ]),
        .executableTarget(name: "Checkout", dependencies: [
            .product(name: "SpillwayIntegration", package: "{os.path.basename(os.path.abspath(repo))}"),
            .product(name: "Hummingbird", package: "hummingbird"),
            .product(name: "Logging", package: "swift-log"),
            .product(name: "ServiceLifecycle", package: "swift-service-lifecycle"),
        ]),
    ]
)
"""
os.makedirs(os.path.join(work, "Sources/QuickStart"), exist_ok=True)
os.makedirs(os.path.join(work, "Sources/Checkout"), exist_ok=True)
open(os.path.join(work, "Package.swift"), "w").write(package)
# The quick start is a whole main.swift, as printed.
open(os.path.join(work, "Sources/QuickStart/main.swift"), "w").write(quick)
open(os.path.join(work, "Sources/Checkout/Checkout.swift"), "w").write(service)
result = subprocess.run(["swift", "build"], cwd=work)
print("README examples: " + ("they compile" if result.returncode == 0 else "they do NOT compile"))
sys.exit(result.returncode)
