import Logging
import Synchronization

/// Logs the first message of each kind at once, then a summary of the repeats at most every
/// `interval` (a full disk once logged one warning per dropped batch: 461 lines in one run).
/// The stats and the handlers still see every occurrence. Thread-safety: safe from any thread.
final class LogThrottle: Sendable {
    private struct Entry {
        var repeats = 0
        var records = 0
        var last = ""
        var lastLogged: UInt64 = 0
    }

    private let entries = Mutex<[String: Entry]>([:])
    private let logger: Logger
    private let interval: UInt64

    init(logger: Logger, interval: Duration = .seconds(5)) {
        self.logger = logger
        self.interval = UInt64(clamping: interval.nanoseconds)
    }

    /// Logs `message` (first of its `kind`), or counts it for the next summary.
    func warning(_ kind: String, records: Int, _ message: @autoclosure () -> String) {
        let now = monotonicNanos()
        let text = message()
        let first = entries.withLock { entries -> Bool in
            if entries[kind] == nil {
                entries[kind] = Entry(lastLogged: now)
                return true
            }
            entries[kind]!.repeats += 1
            entries[kind]!.records += records
            entries[kind]!.last = text
            return false
        }
        if first { logger.warning("\(text)") } else { flush(now: now, force: false) }
    }

    /// Logs the summaries that are due (`force`: all of them, e.g. at shutdown).
    func flush(now: UInt64 = monotonicNanos(), force: Bool) {
        let due = entries.withLock { entries -> [(String, Entry)] in
            var due: [(String, Entry)] = []
            for (kind, entry) in entries where entry.repeats > 0 && (force || now &- entry.lastLogged >= interval) {
                due.append((kind, entry))
                entries[kind] = Entry(lastLogged: now)
            }
            return due
        }
        for (kind, entry) in due {
            logger.warning("\(entry.repeats) more of \(kind) (\(entry.records) records) since the last report; the latest: \(entry.last)")
        }
    }
}
