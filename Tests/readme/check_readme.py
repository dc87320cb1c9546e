#!/usr/bin/env python3
"""Builds the README's Swift examples against this checkout, so that they keep compiling.

Usage: check_readme.py REPO_DIR WORK_DIR

Extracts the quick start and the Hummingbird-style service from README.md into a package in
WORK_DIR (which depends on REPO_DIR by path, and on Hummingbird) and runs `swift build`.
Run by `make examples`; not part of `make test`, because Hummingbird takes minutes to build.
"""
import os
import subprocess
import sys

repo, work = sys.argv[1], sys.argv[2]
readme = open(os.path.join(repo, "README.md")).read()


def block_after(marker, start_text):
    at = readme.index(marker)
    at = readme.index("```swift\n", readme.index(start_text, at) if start_text else at) + len("```swift\n")
    return readme[at:readme.index("```", at)]


quick = block_after("## Quick start", None)
service = block_after("## The Swift server ecosystem", None)

package = f"""// swift-tools-version:6.1
import PackageDescription
let package = Package(
    name: "readme-examples", platforms: [.macOS(.v15)],
    dependencies: [
        .package(path: "{os.path.abspath(repo)}"),
        .package(url: "https://github.com/hummingbird-project/hummingbird.git", from: "2.28.1"),
        .package(url: "https://github.com/apple/swift-log.git", from: "1.16.2"),
        .package(url: "https://github.com/apple/swift-distributed-tracing.git", from: "1.7.3"),
        .package(url: "https://github.com/swift-server/swift-service-lifecycle.git", from: "2.13.0"),
    ],
    targets: [
        .executableTarget(name: "QuickStart", dependencies: [
            .product(name: "SpillwayIntegration", package: "{os.path.basename(os.path.abspath(repo))}"),
            .product(name: "Logging", package: "swift-log"),
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
# The quick start is a fragment: give it the imports it names and a stand-in `server`.
prelude = "import Logging\nimport ServiceLifecycle\nimport Tracing\nstruct Server: Service { func run() async throws {} }\nlet server = Server()\n"
open(os.path.join(work, "Sources/QuickStart/main.swift"), "w").write(prelude + quick)
open(os.path.join(work, "Sources/Checkout/Checkout.swift"), "w").write(service)
result = subprocess.run(["swift", "build"], cwd=work)
print("README examples: " + ("they compile" if result.returncode == 0 else "they do NOT compile"))
sys.exit(result.returncode)
