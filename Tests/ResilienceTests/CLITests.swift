import Foundation
import Glibc
import Resilience
import ResilienceTesting
import Synchronization
import Testing

/// `spillway load` and the command line as a user meets them: interrupts, bad numbers, exit codes.
@Suite struct CLITests {
    /// SIGINT during `spillway load` once ended the process with no summary.
    @Test(.timeLimit(.minutes(3)))
    func anInterruptedLoadStopsEmittingSpillsWhatItEmittedPrintsTheBooksAndExits130() async throws {
        let directory = FileToolTests.temporaryDirectory() + "/spill"
        let process = Process()
        process.executableURL = URL(fileURLWithPath: FileToolTests.tool)
        process.arguments = [
            "load", "--endpoint", "http://127.0.0.1:9", "--spans", "10000000", "--rate", "20000", "--spill-dir", directory, "--quiet"
        ]
        let out = Pipe()
        process.standardOutput = out
        process.standardError = FileHandle.nullDevice
        try process.run()
        try await Task.sleep(for: .milliseconds(1_500))
        process.interrupt()
        let data = try await blockingCall {
            let data = out.fileHandleForReading.readDataToEndOfFile()
            process.waitUntilExit()
            return data
        }
        let output = String(decoding: data, as: UTF8.self)
        #expect(process.terminationStatus == 130, "\(output)")
        #expect(output.contains("interrupted after") && output.contains("emitted:") && output.contains("dropped:  0 spans"), "\(output)")
        // Everything it emitted is on disk: the books line says so, and inspect counts it.
        let emitted = output.split(separator: "\n").first { $0.hasPrefix("emitted:") }.flatMap {
            $0.split(separator: " ").dropFirst().first
        }.flatMap { Int($0) }
        let inspect = try await FileToolTests.run(["inspect", directory])
        let emittedCount = try #require(emitted)
        #expect(emittedCount > 1_000 && inspect.output.contains("\(grouped(emittedCount)) records"), "\(inspect.output)")
    }

    @Test func badNumbersAreUsageErrorsNeverTraps() async throws {
        for arguments in [
            ["load", "--spans", "9223372036854775807"], ["load", "--spans", "-5"], ["load", "--rate", "nan"], ["load", "--threads", "0"],
            ["replay", "x", "--give-up-after", "0"], ["demo", "--faults", "2"], ["receive", "--fail", "999"],
            ["faults", "--report", "/nonexistent/dir/table.md"], ["demo", "--outage", "0s"], ["demo", "--outage", "soon"],
            ["demo", "--outage", "1s", "--svg", "/nonexistent/dir/outage.svg"], ["demo", "--outage", "1s", "--svg", "/tmp"],
            ["status", "not a url"], ["status", ":0"]
        ] {
            let result = try await FileToolTests.run(
                arguments + ["--endpoint", "http://127.0.0.1:9"].filter { _ in arguments[0] == "load" })
            #expect(result.status == 64, "\(arguments): exit \(result.status) \(result.error)")
            #expect(result.error.contains(arguments[0] == "status" ? "Error: URL:" : "Error: --"), "\(arguments): \(result.error)")
            #expect(result.error.contains("Usage: spillway \(arguments[0])"), "the subcommand's usage: \(result.error)")
        }
    }
}

extension CLITests {
    /// `spillway demo --outage`: the picture is well-formed XML (Python's parser), and its series
    /// add up to the demo's books, which count every record (nothing lost through the outage).
    @Test(.timeLimit(.minutes(3)))
    func theOutageDemoDrawsATimelineWhoseSeriesAddUpToItsBooks() async throws {
        let svg = FileToolTests.temporaryDirectory() + "/outage.svg"
        let result = try await FileToolTests.run(["demo", "--outage", "1s", "--spans", "20000", "--logs", "2000", "--svg", svg, "--quiet"])
        #expect(result.status == 0, "\(result.output) \(result.error)")
        #expect(result.output.contains("lost:        0") && result.output.contains("timeline:    \(svg)"), "\(result.output)")
        let script = """
            import json, sys, xml.etree.ElementTree as ET
            root = ET.parse(sys.argv[1]).getroot()
            meta = next(e for e in root.iter() if e.tag.endswith('metadata'))
            data = json.loads(meta.text)
            sums = {name: sum(values) for name, values in data['series'].items()}
            lines = [e for e in root.iter() if e.tag.endswith('polyline')]
            print(json.dumps({'sums': sums, 'books': data['books'], 'lines': len(lines), 'marks': [m['label'] for m in data['marks']],
                              'breaker': sorted(set(data['breaker']))}))
            """
        let check = try await runPython(["-c", script, svg])
        #expect(check.status == 0, "\(check.output)")
        let json = try #require(try JSONSerialization.jsonObject(with: Data(check.output.utf8)) as? [String: Any])
        let sums = try #require(json["sums"] as? [String: Int])
        let books = try #require(json["books"] as? [String: Int])
        #expect(sums == books, "the series add up to the books: \(sums) against \(books)")
        #expect(books["emitted"] == 22_000 && books["exported"] == 22_000 && books["dropped"] == 0)
        #expect((books["spilled"] ?? 0) > 0 && books["replayed"] == books["spilled"], "the outage was ridden out on disk")
        #expect(json["lines"] as? Int == 5)
        let marks = json["marks"] as? [String] ?? []
        #expect(marks.contains("collector down") && marks.contains("collector up") && marks.contains("breaker open"), "\(marks)")
        #expect((json["breaker"] as? [String])?.contains("open") == true)
    }
}

extension CLITests {
    /// `spillway status` against a pipeline's status endpoint, against an OTLP receiver (not a
    /// status endpoint) and against a closed port.
    @Test func theStatusViewReadsAServicesEndpointAndRefusesForeignOnes() async throws {
        let receiver = try await OTLPReceiver.start()
        var configuration = PipelineConfiguration(serviceName: "status-view")
        configuration.exporter.endpoint = receiver.endpoint
        configuration.traces.scheduleDelay = .milliseconds(20)
        configuration.statusEndpoint = PipelineConfiguration.StatusEndpoint(port: 0)
        let pipeline = try TelemetryPipeline(configuration: configuration)
        for _ in 0..<1234 { pipeline.tracer(scope: "view").startSpan("x").end() }
        await pipeline.forceFlush()
        let port = try #require(pipeline.statusEndpointPort)
        let view = try await FileToolTests.run(["status", ":\(port)", "--once"])
        #expect(view.status == 0, "\(view.error)")
        #expect(view.output.contains("healthy") && view.output.contains("1,234"), "\(view.output)")
        // A name, resolved: each of localhost's addresses is tried until one answers.
        let named = try await FileToolTests.run(["status", "http://localhost:\(port)/", "--once"])
        #expect(named.status == 0 && named.output.contains("1,234"), "\(named.error)")
        let receiverPort = try #require(Int(receiver.endpoint.split(separator: ":").last ?? ""))
        let foreign = try await FileToolTests.run(["status", "127.0.0.1:\(receiverPort)", "--once"])
        #expect(foreign.status == 1 && foreign.error.contains("not a Spillway status endpoint"), "\(foreign.error)")
        _ = await pipeline.shutdown(deadline: .now + .seconds(5))
        let closed = try await FileToolTests.run(["status", ":\(port)", "--once"])
        #expect(closed.status == 1 && closed.error.contains("\(port)"), "\(closed.error)")
        try await receiver.stop()
    }

    /// A status endpoint on the IPv6 loopback address, viewed as `[::1]:port`.
    @Test func theStatusViewReadsAnIPv6Endpoint() async throws {
        var configuration = PipelineConfiguration(serviceName: "status-view-6")
        configuration.exporter.endpoint = "http://127.0.0.1:9"
        configuration.statusEndpoint = try PipelineConfiguration.StatusEndpoint(parsing: "[::1]:0")
        let pipeline = try TelemetryPipeline(configuration: configuration)
        let port = try #require(pipeline.statusEndpointPort)
        let view = try await FileToolTests.run(["status", "[::1]:\(port)", "--once"])
        #expect(view.status == 0 && view.output.contains("[::1]:\(port)"), "\(view.output) \(view.error)")
        let unbracketed = try await FileToolTests.run(["status", "::1:\(port)", "--once"])
        #expect(unbracketed.status == 64 && unbracketed.error.contains("[ipv6]:port"), "\(unbracketed.error)")
        _ = await pipeline.shutdown(deadline: .now + .seconds(5))
    }
}

private func grouped(_ n: Int) -> String {
    let digits = String(n)
    var out = ""
    for (i, c) in digits.enumerated() {
        if i > 0 && (digits.count - i) % 3 == 0 { out += "," }
        out.append(c)
    }
    return out
}
