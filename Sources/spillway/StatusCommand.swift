import ArgumentParser
import Foundation
import ResilienceTesting

/// `spillway status URL`: a live view of a running service's status endpoint (`/stats` and
/// `/health`), redrawn every interval; `--once` prints one frame and exits (for scripts).
struct Status: AsyncParsableCommand {
    static let configuration = CommandConfiguration(
        abstract: "Watch a running service's status endpoint (SPILLWAY_STATUS_ADDRESS): books, rates, breaker, backlog.",
        discussion: """
            URL is the endpoint's address: http://127.0.0.1:9464, 127.0.0.1:9464 or :9464. Exit status 0; 1 when the \
            endpoint cannot be reached or does not answer as a Spillway status endpoint.
            """)

    @Argument(help: "The status endpoint: http://host:port, host:port, [ipv6]:port or :port.") var url: String
    @Option(help: "Seconds between frames.") var interval: Double = 1
    @Flag(help: "Print one frame and exit.") var once = false

    func validate() throws {
        guard interval >= 0.1 && interval <= 3600 else { throw ValidationError("--interval: seconds from 0.1 to 3600, got \(interval)") }
        guard parse() != nil else { throw ValidationError("URL: http://host:port, host:port, [ipv6]:port or :port, got \(url)") }
    }

    private func parse() -> (host: String, port: Int)? {
        var rest = Substring(url)
        if rest.hasPrefix("http://") { rest = rest.dropFirst(7) }
        while rest.hasSuffix("/") { rest = rest.dropLast() }
        guard let colon = rest.lastIndex(of: ":"), let port = Int(rest[rest.index(after: colon)...]), (1...65535).contains(port) else {
            return nil
        }
        var host = rest[..<colon]
        if host.hasPrefix("[") && host.hasSuffix("]") {
            host = host.dropFirst().dropLast()  // [::1]
        } else if host.contains(":") || host.contains("[") || host.contains("]") {
            return nil  // an IPv6 address needs its brackets
        }
        return (host.isEmpty ? "127.0.0.1" : String(host), port)
    }

    func run() async throws {
        let (host, port) = parse()!
        let target = HTTPClient.authority(host: host, port: port)
        var previous: (time: Date, exported: Int)?
        while true {
            let frame: String
            do {
                let stats = try HTTPClient.request(host: host, port: port, path: "/stats", timeout: 5)
                let health = try HTTPClient.request(host: host, port: port, path: "/health", timeout: 5)
                guard stats.status == 200, let books = try? JSONSerialization.jsonObject(with: Data(stats.body.utf8)) as? [String: Any]
                else {
                    throw HTTPClient.Failure(description: "GET /stats answered \(stats.status): not a Spillway status endpoint")
                }
                let exported = ["spans", "logs", "metrics"].reduce(0) { $0 + ((books[$1] as? [String: Any])?["exported"] as? Int ?? 0) }
                let now = Date()
                let rate = previous.map { Double(exported - $0.exported) / max(0.001, now.timeIntervalSince($0.time)) }
                previous = (now, exported)
                frame = Self.frame(books, health: health.body, rate: rate, target: target)
            } catch {
                printError("spillway status: \(target): \(error)")
                throw ExitCode(1)
            }
            if once {
                print(frame, terminator: "")
                return
            }
            // Clear the screen and draw from the top.
            print("\u{1B}[H\u{1B}[2J" + frame, terminator: "")
            fflush(nil)
            try await Task.sleep(for: .milliseconds(Int64(interval * 1000)))
        }
    }

    static func frame(_ books: [String: Any], health: String, rate: Double?, target: String) -> String {
        func number(_ value: Any?) -> String { (value as? Int).map(grouped) ?? "-" }
        let state = (try? JSONSerialization.jsonObject(with: Data(health.utf8)) as? [String: Any]) ?? [:]
        let reasons = (state["reasons"] as? [String] ?? []).joined(separator: ", ")
        var out = "spillway status \(target)  —  \(state["status"] as? String ?? "?")\(reasons.isEmpty ? "" : " (\(reasons))")\n"
        out += "exported \(rate.map { formatRate($0) + "/s" } ?? "-") · breaker \(books["circuit_breaker_state"] as? String ?? "none") "
        out += "(\(number(books["circuit_breaker_trips"])) trips) · ring \(number(books["ring_bytes_in_use"]))/"
        out += "\(number(books["ring_capacity"])) bytes · retries \(number(books["retries"]))\n\n"
        let columns = ["emitted", "exported", "dropped_total", "on_disk", "spilled", "replayed", "pending"]
        out += "signal  " + columns.map { ($0 == "dropped_total" ? "dropped" : $0).leftPadded(to: 13) }.joined() + "\n"
        for signal in ["spans", "logs", "metrics"] {
            let books = books[signal] as? [String: Any] ?? [:]
            out +=
                signal.padding(toLength: 8, withPad: " ", startingAt: 0) + columns.map { number(books[$0]).leftPadded(to: 13) }.joined()
                + "\n"
        }
        if let error = books["last_error"] as? String { out += "\nlast error: \(error.prefix(160))\n" }
        if let destinations = books["destinations"] as? [String: Any], !destinations.isEmpty {
            out += "\ndestinations: " + destinations.keys.sorted().joined(separator: ", ") + " (GET /stats has their books)\n"
        }
        return out
    }
}

extension String {
    func leftPadded(to width: Int) -> String { count >= width ? " " + self : String(repeating: " ", count: width - count) + self }
}
