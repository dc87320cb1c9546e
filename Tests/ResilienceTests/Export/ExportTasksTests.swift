import ResilienceTesting
import Synchronization
import Testing

@testable import Resilience

/// The register of a pipeline's export tasks: shutdown reads ``ExportTasks/running`` as "no
/// export holds a batch" and cancels what is under way, so a task must count from the moment
/// `start` returns until its body has ended, and `cancelAll` must reach every task started before it.
@Suite struct ExportTasksTests {
    @Test(.timeLimit(.minutes(2)))
    func aTaskCountsFromItsStartUntilItsBodyHasEnded() async {
        let tasks = ExportTasks(chain: RecordingExporter())
        defer { tasks.executor.stop() }
        let gate = CountCell()
        tasks.start {
            while gate.value.load(ordering: .acquiring) == 0 { try? await Task.sleep(for: .milliseconds(1)) }
        }
        #expect(tasks.running == 1, "counted as soon as start returns, before the task has run")
        gate.value.store(1, ordering: .releasing)
        #expect(await eventually(timeout: .seconds(30)) { tasks.running == 0 })

        // Many short bodies, most of them done before `start` has registered their task: none is
        // left behind in the register.
        let ended = CountCell()
        for _ in 0..<2_000 { tasks.start { ended.value.add(1, ordering: .relaxed) } }
        #expect(await eventually(timeout: .seconds(30)) { tasks.running == 0 })
        #expect(ended.value.load(ordering: .relaxed) == 2_000)
    }

    /// Twice on one register (a pipeline's shutdown cancels once; the same register must still
    /// cancel what was started after): each `cancelAll` reaches the tasks under way, and a task
    /// started after it runs uncancelled.
    @Test(.timeLimit(.minutes(2)))
    func cancelAllReachesTheTasksUnderWayAndNotOnesStartedAfter() async {
        let tasks = ExportTasks(chain: RecordingExporter())
        defer { tasks.executor.stop() }
        for round in 1...2 {
            let began = CountCell()
            let cancelled = CountCell()
            for _ in 0..<3 {
                tasks.start {
                    began.value.add(1, ordering: .relaxed)
                    // A minute, unless cancelled.
                    if (try? await Task.sleep(for: .seconds(60))) == nil { cancelled.value.add(1, ordering: .relaxed) }
                }
            }
            #expect(await eventually(timeout: .seconds(30)) { began.value.load(ordering: .relaxed) == 3 }, "round \(round)")
            tasks.cancelAll()
            #expect(
                await eventually(timeout: .seconds(30)) { tasks.running == 0 },
                "round \(round): the three end by their cancellation, not after their minute")
            #expect(cancelled.value.load(ordering: .relaxed) == 3, "round \(round)")

            let later = CountCell()  // 1: ran uncancelled, 2: ran cancelled
            tasks.start { later.value.store(Task.isCancelled ? 2 : 1, ordering: .relaxed) }
            #expect(await eventually(timeout: .seconds(30)) { tasks.running == 0 })
            #expect(later.value.load(ordering: .relaxed) == 1, "round \(round): a task started after cancelAll runs uncancelled")
        }
    }
}
