import ResilienceTesting
import Testing

@testable import Resilience

/// A thread's pooled buffer keeps the pipeline of its last span (``ScratchBuffer/beginSpan(intake:recordType:)``),
/// so a pipeline that was released lives on while an idle buffer names it; it must go once the
/// buffer serves another pipeline, and not be leaked.
@Suite struct EmitBufferTests {
    /// What the emitting thread holds, so that it can let the first pipeline go by itself.
    private final class Held: @unchecked Sendable {
        var pipeline: TelemetryPipeline?
        var tracer: Resilience.Tracer?
        weak var intake: Intake?
    }

    /// Twice in one process: the second round's first pipeline is named by the buffer that the
    /// first round's second pipeline left, on a new thread with a new pool.
    @Test(.timeLimit(.minutes(2)))
    func aReleasedPipelineABufferStillNamesIsFreedOnceTheBufferServesAnother() async throws {
        for round in 1...2 {
            let held = Held()
            held.pipeline = try TelemetryPipeline(configuration: PipelineConfiguration(serviceName: "first"), exporter: RecordingExporter())
            held.tracer = held.pipeline?.tracer(scope: "first")
            held.intake = held.tracer?.intake
            let second = try TelemetryPipeline(configuration: PipelineConfiguration(serviceName: "second"), exporter: RecordingExporter())
            let nextTracer = second.tracer(scope: "second")
            let namedAfterRelease = await onThread {
                held.tracer?.startSpan("in the first").end()
                (held.tracer, held.pipeline) = (nil, nil)  // released without a shutdown
                let stillNamed = held.intake != nil
                nextTracer.startSpan("in the second, in the same buffer").end()
                return stillNamed
            }
            #expect(namedAfterRelease, "round \(round): the idle buffer kept the released pipeline's intake")
            #expect(
                await eventually(timeout: .seconds(30)) { held.intake == nil },
                "round \(round): freed (off the emitting thread) once the buffer served the second pipeline")
            _ = await second.shutdown(deadline: .now + .seconds(10))
        }
    }
}
