#!/usr/bin/env bash
# Depends on Spillway the way a service does: a throw-away package that resolves it by version
# (`from:`) from a tagged clone of this checkout's HEAD. SwiftPM refuses, while it loads the
# package graph, any dependency whose targets use unsafe build flags; this check fails then.
# It stops after planning (resolve + the dependency graph): it does not build everything.
set -euo pipefail
repo="$(cd "$(dirname "$0")/../.." && pwd)"
work="$repo/.build/consumer"
version="$(sed -n 's/^package let spillwayVersion = "\(.*\)"/\1/p' "$repo/Sources/Resilience/Model/Version.swift")"
[ -n "$version" ] || { echo "consumer: no spillwayVersion in Sources/Resilience/Model/Version.swift" >&2; exit 1; }
rm -rf "$work"
mkdir -p "$work/app/Sources/App"
git clone -q "$repo" "$work/spillway"
git -C "$work/spillway" tag "$version"
cat > "$work/app/Package.swift" <<PACKAGE
// swift-tools-version:6.1
import PackageDescription
let package = Package(
    name: "app",
    dependencies: [.package(url: "file://$work/spillway", from: "$version")],
    targets: [
        .executableTarget(name: "App", dependencies: [
            .product(name: "SpillwayIntegration", package: "spillway"),
            .product(name: "Resilience", package: "spillway"),
        ]),
        .testTarget(name: "AppTests", dependencies: [.product(name: "ResilienceTesting", package: "spillway")]),
    ]
)
PACKAGE
echo 'import SpillwayIntegration' > "$work/app/Sources/App/main.swift"
mkdir -p "$work/app/Tests/AppTests" && echo 'import ResilienceTesting' > "$work/app/Tests/AppTests/AppTests.swift"
cd "$work/app"
swift package resolve
swift package show-dependencies --format flatlist | grep -q spillway
echo "consumer: a package depending on spillway from: \"$version\" resolves and plans"
# The same with the package traits turned off (a plaintext OTLP/HTTP user: no TLS, no gRPC).
sed -i "s|from: \"$version\")\]|from: \"$version\", traits: [])]|" Package.swift
grep -q 'traits: \[\])' Package.swift || { echo "consumer: could not write the traits: [] variant" >&2; exit 1; }
swift package resolve
swift package show-dependencies --format flatlist | grep -q spillway
echo "consumer: the same with traits: [] resolves and plans"
