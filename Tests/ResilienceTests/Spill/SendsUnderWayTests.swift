import Testing

@testable import Resilience

/// The replayer's record of its sends under way: cancelling the round must reach every send,
/// including one started after the cancellation (a frame is then never sent behind its back).
@Suite struct SendsUnderWayTests {
    /// A send that waits a minute and succeeds, or fails as soon as it is cancelled.
    private func waitingSend() -> Task<Replayer.Outcome, Never> {
        Task {
            do {
                try await Task.sleep(for: .seconds(60))
                return .whole(.success(ExportResponse()))
            } catch {
                return .whole(.failure(error))
            }
        }
    }

    private func wasCancelled(_ outcome: Replayer.Outcome?) -> Bool {
        if case .whole(.failure(let error))? = outcome { error is CancellationError } else { false }
    }

    @Test(.timeLimit(.minutes(2)))
    func cancellingReachesTheSendsUnderWayAndOnesAddedAfter() async {
        let sends = SendsUnderWay()
        let before = waitingSend()
        sends.add(before)
        sends.cancelAll()
        #expect(before.isCancelled)
        let after = waitingSend()
        sends.add(after)
        #expect(after.isCancelled, "a send added after the cancellation is cancelled as it is added")
        // Both end by their cancellation, not after their minute.
        #expect(wasCancelled(await sends.answer(before)))
        #expect(wasCancelled(await sends.answer(after)))
    }

    @Test(.timeLimit(.minutes(2)))
    func anAnsweredSendIsForgottenAndNotCancelledLater() async {
        let sends = SendsUnderWay()
        let quick = Task { () -> Replayer.Outcome in .whole(.success(ExportResponse())) }
        sends.add(quick)
        guard case .whole(.success)? = await sends.answer(quick) else {
            Issue.record("the send's own outcome is returned")
            return
        }
        #expect(await sends.answer(nil) == nil, "damage: no send, no outcome")
        let waiting = waitingSend()
        sends.add(waiting)
        sends.cancelAll()
        #expect(waiting.isCancelled && !quick.isCancelled, "only sends still under way are cancelled")
        #expect(wasCancelled(await sends.answer(waiting)))
    }
}
