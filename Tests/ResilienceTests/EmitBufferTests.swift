import Foundation
import Testing

@testable import Resilience

/// A thread's pooled buffer keeps the pipeline of its last span (``ScratchBuffer/beginSpan(intake:recordType:)``),
/// so a pipeline that was released lives on while an idle buffer names it; it must go once the
/// buffer serves another pipeline, and not be leaked.
@Suite struct EmitBufferTests {
    private struct NoExporter: TelemetryExporter {
        var name: String { "none" }
        func export(_ batch: ExportBatch) async throws -> ExportResponse { ExportResponse() }
    }

    private final class WeakIntake: @unchecked Sendable { weak var intake: Intake? }

    @Test(.timeLimit(.minutes(2)))
    func aReleasedPipelineABufferStillNamesIsFreedOnceTheBufferServesAnother() async throws {
        let first = WeakIntake()
        let (namedAfterRelease, second) = try await onThread { () throws(ConfigurationError) -> (Bool, TelemetryPipeline) in
            do {
                let pipeline = try TelemetryPipeline(configuration: PipelineConfiguration(serviceName: "first"), exporter: NoExporter())
                let tracer = pipeline.tracer(scope: "first")
                first.intake = tracer.intake
                tracer.startSpan("in the first").end()
            }  // the first pipeline and its tracer released here, without a shutdown
            let stillNamed = first.intake != nil
            let next = try TelemetryPipeline(configuration: PipelineConfiguration(serviceName: "second"), exporter: NoExporter())
            next.tracer(scope: "second").startSpan("in the second, in the same buffer").end()
            return (stillNamed, next)
        }
        #expect(namedAfterRelease, "the idle buffer kept the released pipeline's intake")
        let deadline = ContinuousClock.now + .seconds(30)
        while first.intake != nil && ContinuousClock.now < deadline { try await Task.sleep(for: .milliseconds(5)) }
        #expect(first.intake == nil, "freed (off the emitting thread) once the buffer served the second pipeline")
        _ = await second.shutdown(deadline: .now + .seconds(10))
    }
}

/// Runs `body` on a new thread of its own (a fresh per-thread buffer pool), passing its error on.
private func onThread<T: Sendable>(_ body: @escaping @Sendable () throws(ConfigurationError) -> T) async throws -> T {
    try await withCheckedThrowingContinuation { continuation in
        Thread { continuation.resume(with: Result { () throws(ConfigurationError) in try body() }) }.start()
    }
}
