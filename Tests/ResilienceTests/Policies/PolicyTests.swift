import ResilienceTesting
import Synchronization
import Testing

@testable import Resilience

private func batch(_ records: Int = 3) -> ExportBatch {
    ExportBatch(signal: .traces, body: [], recordCount: records, sequence: 0)
}

private func status(_ code: Int, retryAfter: String? = nil) -> OTLPExportError {
    OTLPExportError(code: .httpStatus, statusCode: code, retryAfter: retryAfter, message: "")
}

@Suite struct ExportFailureKindTests {
    @Test func statusesAndTransportErrorsAreClassifiedByTheOTLPRules() {
        #expect(ExportFailureKind.classify(status(429)) == .throttled)
        for code in [502, 503, 504] { #expect(ExportFailureKind.classify(status(code)) == .retryable) }
        for code in [400, 500, 501] { #expect(ExportFailureKind.classify(status(code)) == .permanent, "\(code)") }
        for code in [401, 403, 404, 405, 407, 413, 415] { #expect(ExportFailureKind.classify(status(code)) == .misconfigured, "\(code)") }
        for code: OTLPExportError.Code in [.timeout, .connectionFailed, .connectionClosed] {
            #expect(ExportFailureKind.classify(OTLPExportError(code: code, message: "")) == .transport)
        }
        #expect(ExportFailureKind.classify(OTLPExportError(code: .invalidResponse, message: "")) == .misconfigured, "not an OTLP collector")
        #expect(ExportFailureKind.classify(ResilienceError(code: .circuitOpen, message: "")) == .circuitOpen)
        #expect(ExportFailureKind.classify(CancellationError()) == .shutdown)
        struct Unknown: Error {}
        #expect(ExportFailureKind.classify(Unknown()) == .permanent)
    }

    @Test func retryAfterIsReadInBothForms() {
        #expect(status(503, retryAfter: "2").retryAfterDelay() == .seconds(2))
        #expect(status(503, retryAfter: " 120 ").retryAfterDelay() == .seconds(120))
        // 1994-11-06 08:49:37 UTC is 784111777.
        let now = 784_111_777.0 - 30
        #expect(status(429, retryAfter: "Sun, 06 Nov 1994 08:49:37 GMT").retryAfterDelay(now: now) == .seconds(30))
        #expect(status(429, retryAfter: "Sunday, 06-Nov-94 08:49:37 GMT").retryAfterDelay(now: now) == .seconds(30))
        #expect(status(429, retryAfter: "Sun Nov  6 08:49:37 1994").retryAfterDelay(now: now) == .seconds(30))
        #expect(status(429, retryAfter: "Sun, 06 Nov 1994 08:49:37 GMT").retryAfterDelay(now: now + 60) == .zero, "a date in the past")
        #expect(status(429, retryAfter: "soon").retryAfterDelay() == nil)
        #expect(status(429, retryAfter: "-5").retryAfterDelay() == nil)
        #expect(status(429).retryAfterDelay() == nil)
    }
}

@Suite struct ExportRetryPolicyTests {
    @Test func delaysGrowByTheMultiplierUpToTheCap() {
        let policy = ExportRetryPolicy(initialDelay: .seconds(1), maximumDelay: .seconds(5), multiplier: 2, jitter: .none)
        var generator = SystemRandomNumberGenerator()
        #expect(
            (1...5).map { policy.delay(forRetry: $0, using: &generator) } == [
                .seconds(1), .seconds(2), .seconds(4), .seconds(5), .seconds(5)
            ])
    }

    @Test func jitterStaysWithinItsBounds() {
        var generator = SystemRandomNumberGenerator()
        let proportional = ExportRetryPolicy.collector
        let full = ExportRetryPolicy(initialDelay: .seconds(4), jitter: .full)
        var seen = Set<Duration>()
        for _ in 0..<200 {
            let d = proportional.delay(forRetry: 1, using: &generator)
            #expect(d >= .milliseconds(2500) && d <= .milliseconds(7500))
            seen.insert(d)
            let f = full.delay(forRetry: 1, using: &generator)
            #expect(f >= .zero && f <= .seconds(4))
        }
        #expect(seen.count > 100, "jitter must actually vary the delay")
    }

    @Test func theCollectorDefaultsAreOffered() {
        let c = ExportRetryPolicy.collector
        #expect(c.initialDelay == .seconds(5) && c.maximumDelay == .seconds(30) && c.multiplier == 1.5)
        #expect(c.jitter == .proportional(0.5) && c.maximumElapsedTime == .seconds(300))
        let d = ExportRetryPolicy()
        #expect(d.maximumElapsedTime == .seconds(10) && d.initialDelay == .seconds(1) && d.maximumDelay == .seconds(5))
    }
}

@Suite struct RetryingExporterTests {
    let noJitter = ExportRetryPolicy(
        initialDelay: .milliseconds(100), maximumDelay: .seconds(1), multiplier: 2, jitter: .none, maximumElapsedTime: nil)

    @Test func retryableFailuresAreRetriedWithBackoffUntilSuccess() async throws {
        let clock = TestClock(advancesOnSleep: true)
        let scripted = ScriptedExporter([
            .failure(status(503)), .failure(OTLPExportError(code: .connectionClosed, message: "")), .failure(status(429))
        ])
        let exporter = RetryingExporter(wrapping: scripted, policy: noJitter, clock: clock)
        _ = try await exporter.export(batch())
        #expect(scripted.callCount == 4)
        #expect(clock.sleeps == [.milliseconds(100), .milliseconds(200), .milliseconds(400)])
    }

    @Test func retryAfterIsAFloorOnTheDelay() async throws {
        let clock = TestClock(advancesOnSleep: true)
        let scripted = ScriptedExporter(failing: 2, with: status(503, retryAfter: "2"))
        _ = try await RetryingExporter(wrapping: scripted, policy: noJitter, clock: clock).export(batch())
        #expect(clock.sleeps == [.seconds(2), .seconds(2)])
        // A Retry-After shorter than the backoff does not shorten it.
        let short = TestClock(advancesOnSleep: true)
        let scripted2 = ScriptedExporter(failing: 1, with: status(503, retryAfter: "0"))
        _ = try await RetryingExporter(wrapping: scripted2, policy: noJitter, clock: short).export(batch())
        #expect(short.sleeps == [.milliseconds(100)])
    }

    @Test(arguments: [400, 401, 404, 413, 500])
    func aPermanentFailureIsNotRetried(_ code: Int) async {
        let scripted = ScriptedExporter(failing: 1, with: status(code))
        let clock = TestClock(advancesOnSleep: true)
        await #expect(throws: OTLPExportError.self) {
            try await RetryingExporter(wrapping: scripted, policy: noJitter, clock: clock).export(batch())
        }
        #expect(scripted.callCount == 1 && clock.sleeps.isEmpty)
    }

    @Test func thePolicyBudgetEndsTheLoopWithTheLastError() async {
        let clock = TestClock(advancesOnSleep: true)
        let attempts = ScriptedExporter(failing: 10, with: status(503))
        var policy = noJitter
        policy.maximumAttempts = 3
        await #expect(throws: OTLPExportError.self) {
            try await RetryingExporter(wrapping: attempts, policy: policy, clock: clock).export(batch())
        }
        #expect(attempts.callCount == 3)

        let elapsed = ScriptedExporter(failing: 10, with: status(503))
        policy = noJitter
        policy.maximumElapsedTime = .milliseconds(500)  // 100 + 200 fit, + 400 would not
        let clock2 = TestClock(advancesOnSleep: true)
        await #expect(throws: OTLPExportError.self) {
            try await RetryingExporter(wrapping: elapsed, policy: policy, clock: clock2).export(batch())
        }
        #expect(elapsed.callCount == 3 && clock2.sleeps == [.milliseconds(100), .milliseconds(200)])
    }

    @Test func cancellationEndsTheWaitAtOnce() async throws {
        let clock = TestClock()  // never advances by itself
        let scripted = ScriptedExporter(failing: 1, with: status(503))
        let exporter = RetryingExporter(wrapping: scripted, policy: noJitter, clock: clock)
        let task = Task { try await exporter.export(batch()) }
        while clock.sleeperCount == 0 { try await Task.sleep(for: .milliseconds(1)) }
        task.cancel()
        let result = await task.result
        guard case .failure(let error as ResilienceError) = result else {
            Issue.record("got \(result)")
            return
        }
        #expect(error.code == .shutDown)
        #expect(scripted.callCount == 1)
    }

    /// Shutdown with a spill store cuts the back-off: one more attempt at once, then the last
    /// error (so the error-handling stage spills the batch with the collector's reason).
    @Test func theShutdownCutEndsABackOffWithOneMoreAttempt() async throws {
        let clock = TestClock()  // never advances by itself: only the cut ends the wait
        let scripted = ScriptedExporter(failing: 10, with: status(503))
        let exporter = RetryingExporter(wrapping: scripted, policy: noJitter, clock: clock)
        let cutoff = RetryCutoff()
        let context = ExportAttemptContext(cutoff: cutoff) { _, _, _, _, _ in }
        let task = Task { try await ExportAttemptContext.$current.withValue(context) { try await exporter.export(batch()) } }
        #expect(await eventually { clock.sleeperCount == 1 })
        cutoff.cut()
        let result = await task.result
        guard case .failure(let error as OTLPExportError) = result else {
            Issue.record("got \(result)")
            return
        }
        #expect(error.statusCode == 503)
        #expect(scripted.callCount == 2, "the waiting batch is sent once more, then not again")
        #expect(clock.sleeps == [.milliseconds(100)] && clock.sleeperCount == 0)
    }

    /// The cut came while the attempt was under way: the retry goes at once, and the event says so.
    @Test func aCutDuringAnAttemptRetriesAtOnceAndTheEventSaysSo() async {
        let clock = TestClock()  // never advances: a real wait would hang until the time limit
        let cutoff = RetryCutoff()
        let delays = Mutex<[Duration]>([])
        let context = ExportAttemptContext(cutoff: cutoff) { _, _, _, _, delay in delays.withLock { $0.append(delay) } }
        let scripted = ScriptedExporter(failing: 10, with: status(503))
        let cutting = CuttingStage(next: scripted, cutoff: cutoff)
        let exporter = RetryingExporter(wrapping: cutting, policy: noJitter, clock: clock)
        await #expect(throws: OTLPExportError.self) {
            try await ExportAttemptContext.$current.withValue(context) { try await exporter.export(batch()) }
        }
        #expect(scripted.callCount == 2, "one more attempt, then not again")
        #expect(delays.withLock { $0 } == [.zero] && clock.sleeps.isEmpty)
    }

    @Test func anAttemptThatBeganAfterTheCutIsNotRetried() async {
        let clock = TestClock(advancesOnSleep: true)
        let scripted = ScriptedExporter(failing: 10, with: status(503))
        let cutoff = RetryCutoff()
        cutoff.cut()
        let context = ExportAttemptContext(cutoff: cutoff) { _, _, _, _, _ in }
        let exporter = RetryingExporter(wrapping: scripted, policy: noJitter, clock: clock)
        await #expect(throws: OTLPExportError.self) {
            try await ExportAttemptContext.$current.withValue(context) { try await exporter.export(batch()) }
        }
        #expect(scripted.callCount == 1 && clock.sleeps.isEmpty)
        // A success after the cut is a success.
        let succeeding = ScriptedExporter(failing: 0, with: status(503))
        _ = try? await ExportAttemptContext.$current.withValue(context) {
            try await RetryingExporter(wrapping: succeeding, policy: noJitter, clock: clock).export(batch())
        }
        #expect(succeeding.callCount == 1)
    }

    @Test func theCutoffsSleepEndsByTheClockByTheCutOrByCancellation() async throws {
        let clock = TestClock()
        let cutoff = RetryCutoff()
        let full = Task { try await cutoff.sleep(for: .seconds(5), on: clock) }
        #expect(await eventually { clock.sleeperCount == 1 })
        clock.advance(by: .seconds(5))
        #expect(try await full.value == true, "the whole delay passed")

        let cancelled = Task { try await cutoff.sleep(for: .seconds(5), on: clock) }
        #expect(await eventually { clock.sleeperCount == 1 })
        cancelled.cancel()
        await #expect(throws: CancellationError.self) { try await cancelled.value }

        let cut = Task { try await cutoff.sleep(for: .seconds(5), on: clock) }
        #expect(await eventually { clock.sleeperCount == 1 })
        cutoff.cut()
        #expect(try await cut.value == false)
        #expect(try await cutoff.sleep(for: .seconds(5), on: clock) == false, "after the cut, no wait at all")
        #expect(clock.sleeperCount == 0, "the clock's sleeper went with the cut")
    }
}

@Suite struct CircuitBreakerTests {
    @Test func openBreakerLetsOneProbeThroughAfterTheCooldown() {
        var breaker = CircuitBreakerStateMachine<ContinuousClock.Instant>(
            policy: CircuitBreakerPolicy(failureThreshold: 1, cooldown: .seconds(5), initialCooldown: .seconds(5)))
        let t0 = ContinuousClock.now
        breaker.exportFailed(at: t0)
        #expect(breaker.state == .open && breaker.trips == 1)
        #expect(breaker.exportRequested(at: t0 + .seconds(1)) == .reject(retryAfter: .seconds(4)))
        #expect(breaker.exportRequested(at: t0 + .seconds(5)) == .probe)
        #expect(breaker.state == .halfOpen)
        #expect(breaker.exportRequested(at: t0 + .seconds(5)) == .reject(retryAfter: .seconds(1)))
        breaker.exportSucceeded()
        #expect(breaker.state == .closed)
        #expect(breaker.exportRequested(at: t0 + .seconds(6)) == .export)
    }

    @Test func itOpensAfterTheThresholdOfConsecutiveFailuresOnly() {
        var breaker = CircuitBreakerStateMachine<ContinuousClock.Instant>(
            policy: CircuitBreakerPolicy(failureThreshold: 3, cooldown: .seconds(30), initialCooldown: .seconds(30)))
        let t0 = ContinuousClock.now
        breaker.exportFailed(at: t0)
        breaker.exportFailed(at: t0)
        breaker.exportSucceeded()  // resets the run
        breaker.exportFailed(at: t0)
        breaker.exportFailed(at: t0)
        #expect(breaker.state == .closed)
        breaker.exportFailed(at: t0)
        #expect(breaker.state == .open && breaker.reopensAt == t0 + .seconds(30))
    }

    @Test func aFailedProbeOpensItAgainForAWholeCooldown() {
        var breaker = CircuitBreakerStateMachine<ContinuousClock.Instant>(
            policy: CircuitBreakerPolicy(failureThreshold: 2, cooldown: .seconds(10), initialCooldown: .seconds(10)))
        let t0 = ContinuousClock.now
        breaker.exportFailed(at: t0)
        breaker.exportFailed(at: t0)
        #expect(breaker.exportRequested(at: t0 + .seconds(10)) == .probe)
        breaker.exportFailed(at: t0 + .seconds(11))
        #expect(breaker.state == .open && breaker.trips == 2)
        #expect(breaker.exportRequested(at: t0 + .seconds(20)) == .reject(retryAfter: .seconds(1)))
        #expect(breaker.exportRequested(at: t0 + .seconds(21)) == .probe)
    }

    /// After a short outage the collector once sat idle for up to 30 s (a fixed cool-down).
    @Test func probesStartAfterASecondAndBackOffToAFifthOfTheOutageUpToTheCooldown() {
        var breaker = CircuitBreakerStateMachine<ContinuousClock.Instant>(
            policy: CircuitBreakerPolicy(failureThreshold: 1, cooldown: .seconds(30)))
        let t0 = ContinuousClock.now
        breaker.exportFailed(at: t0)
        #expect(breaker.reopensAt == t0 + .seconds(1), "the first probe after 1 s")
        var now = t0 + .seconds(1)
        var gaps: [Duration] = []
        while now < t0 + .seconds(400) {
            #expect(breaker.exportRequested(at: now) == .probe)
            breaker.exportFailed(at: now)
            let next = breaker.reopensAt!
            gaps.append(now.duration(to: next))
            now = next
        }
        // Probes while the outage is young come within 2 s of each other; later a fifth of the
        // outage, never more than the 30 s cool-down.
        var elapsed = Duration.seconds(1)
        for gap in gaps {
            #expect(gap >= .seconds(1) && gap <= .seconds(30))
            if elapsed < .seconds(10) { #expect(gap <= .seconds(2), "outage \(elapsed): next probe in \(gap)") }
            elapsed += gap
        }
        #expect(gaps.last == .seconds(30))
        breaker.exportSucceeded()
        breaker.exportFailed(at: now)
        #expect(breaker.reopensAt == now + .seconds(1), "a new outage starts from 1 s again")
    }

    @Test func aMisconfigurationOpensAtOnceUntilAProbeSucceedsOrTheConfigurationChanges() {
        var breaker = CircuitBreakerStateMachine<ContinuousClock.Instant>(
            policy: CircuitBreakerPolicy(failureThreshold: 5, cooldown: .seconds(30)))
        let t0 = ContinuousClock.now
        breaker.exportMisconfigured(at: t0, reason: "HTTP 401: bad key")
        #expect(breaker.state == .open && breaker.misconfiguration == "HTTP 401: bad key" && breaker.trips == 1)
        #expect(breaker.exportRequested(at: t0 + .milliseconds(500)) == .reject(retryAfter: .milliseconds(500)))
        #expect(breaker.exportRequested(at: t0 + .seconds(1)) == .probe)
        breaker.exportMisconfigured(at: t0 + .seconds(1), reason: "HTTP 401: bad key")
        #expect(breaker.state == .open, "still refused: open again")
        breaker.reset()  // reconfigure
        #expect(breaker.state == .closed && breaker.misconfiguration == nil)
        #expect(breaker.exportRequested(at: t0 + .seconds(1)) == .export)
        breaker.exportMisconfigured(at: t0 + .seconds(2), reason: "HTTP 403")
        #expect(breaker.exportRequested(at: t0 + .seconds(3)) == .probe)
        breaker.exportSucceeded()
        #expect(breaker.state == .closed && breaker.misconfiguration == nil, "a probe that succeeds ends it")
    }

    @Test func theBreakerInsideTheRetryLoopCountsEveryAttemptAndEndsTheLoop() async throws {
        // The breaker sees each attempt of the retry loop, not one failure per batch: two
        // failed attempts of one batch reach a threshold of 2.
        let clock = TestClock(advancesOnSleep: true)
        let scripted = ScriptedExporter([.failure(status(503)), .failure(status(503)), .success(.accepted), .failure(status(503))])
        let breaker = CircuitBreakingExporter(
            wrapping: scripted, policy: CircuitBreakerPolicy(failureThreshold: 2, cooldown: .seconds(30)), clock: clock)
        let policy = ExportRetryPolicy(initialDelay: .milliseconds(10), jitter: .none, maximumElapsedTime: nil)
        let chain = RetryingExporter(wrapping: breaker, policy: policy, clock: clock)
        // Two consecutive failures open it (threshold 2); the retry loop then ends at once.
        let opened = await #expect(throws: ResilienceError.self) { try await chain.export(batch()) }
        #expect(opened?.code == .circuitOpen && opened?.cause is OTLPExportError, "the failure that opened it is the cause")
        #expect(scripted.callCount == 2)
        #expect(breaker.snapshot.state == .open && breaker.snapshot.trips == 1)
        #expect(clock.sleeps == [.milliseconds(10)], "no backoff is waited out once the breaker is open")
        let thrown = await #expect(throws: ResilienceError.self) { try await chain.export(batch()) }
        #expect(thrown?.code == .circuitOpen && scripted.callCount == 2, "while open, the exporter is not called")
    }

    @Test func anOpenBreakerDoesNotCallTheExporter() async throws {
        let clock = TestClock()
        let scripted = ScriptedExporter(failing: 5, with: status(503))
        let breaker = CircuitBreakingExporter(
            wrapping: scripted, policy: CircuitBreakerPolicy(failureThreshold: 5, cooldown: .seconds(30)), clock: clock)
        for _ in 0..<5 { _ = try? await breaker.export(batch()) }
        #expect(breaker.snapshot.state == .open)
        for _ in 0..<100 {
            await #expect(throws: ResilienceError.self) { try await breaker.export(batch()) }
        }
        #expect(scripted.callCount == 5)
        clock.advance(by: .seconds(30))
        _ = try await breaker.export(batch())  // the probe, which succeeds
        #expect(scripted.callCount == 6 && breaker.snapshot.state == .closed)
    }

    @Test func aPermanentErrorMeansTheCollectorAnsweredAndDoesNotCount() async {
        let clock = TestClock()
        let scripted = ScriptedExporter(failing: 10, with: status(400))
        let breaker = CircuitBreakingExporter(wrapping: scripted, policy: CircuitBreakerPolicy(failureThreshold: 2), clock: clock)
        for _ in 0..<10 { _ = try? await breaker.export(batch()) }
        #expect(breaker.snapshot.state == .closed && scripted.callCount == 10)
    }
}

@Suite struct ErrorHandlingExporterTests {
    @Test func everyFailureReachesTheHandlerWithItsContext() async throws {
        let events = EventLog()
        let scripted = ScriptedExporter(failing: 1, with: status(400))
        let exporter = ErrorHandlingExporter(wrapping: scripted, processor: .simple, handler: events)
        await #expect(throws: OTLPExportError.self) { try await exporter.export(batch(7)) }
        #expect(await eventually { events.all.count == 1 })
        let event = try #require(events.all.first)
        #expect(event.kind == .permanent && event.processor == .simple && event.exporterName == "scripted")
        #expect(event.recordCount == 7 && event.outcome == .dropped(.exportFailed) && event.signal == .traces)
    }

    @Test func retriesScheduledInsideAreReportedWithTheirDelay() async throws {
        let events = EventLog()
        let clock = TestClock(advancesOnSleep: true)
        let scripted = ScriptedExporter(failing: 2, with: status(503, retryAfter: "3"))
        let policy = ExportRetryPolicy(initialDelay: .milliseconds(10), jitter: .none, maximumElapsedTime: nil)
        let exporter = ErrorHandlingExporter(wrapping: RetryingExporter(wrapping: scripted, policy: policy, clock: clock), handler: events)
        _ = try await exporter.export(batch())
        #expect(await eventually { events.all.count == 2 })
        #expect(events.all.map(\.outcome) == [.willRetry(after: .seconds(3)), .willRetry(after: .seconds(3))])
        #expect(events.all.map(\.attempt) == [1, 2])
        #expect(events.all.allSatisfy { $0.kind == .retryable })
    }

    @Test func aPartialSuccessReportsTheRejectedRecords() async throws {
        let events = EventLog()
        let scripted = ScriptedExporter([.success(ExportResponse(rejectedRecords: 2, errorMessage: "bad spans"))])
        let response = try await ErrorHandlingExporter(wrapping: scripted, handler: events).export(batch(5))
        #expect(response.rejectedRecords == 2)
        #expect(await eventually { events.all.count == 1 })
        let event = try #require(events.all.first)
        #expect(event.recordCount == 2 && event.outcome == .dropped(.rejected) && event.kind == .permanent)
        #expect("\(event.error)".contains("bad spans"))
    }
}

/// Cuts `cutoff` during its first export (shutdown arriving while a request is under way).
private struct CuttingStage: TelemetryExporter {
    let next: any TelemetryExporter
    let cutoff: RetryCutoff
    var name: String { next.name }

    func export(_ batch: ExportBatch) async throws -> ExportResponse {
        cutoff.cut()
        return try await next.export(batch)
    }
}
