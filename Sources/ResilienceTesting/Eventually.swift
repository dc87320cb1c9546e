/// Polls `condition` every 10 ms until it holds or `timeout` passes; returns whether it held.
///
/// For tests of asynchronous outcomes (a batch exported, a reload applied) without fixed sleeps:
/// `#expect(await eventually { receiver.spanCount == 10 })`. The condition is checked once more
/// at the deadline, so a slow machine gets the whole timeout.
public func eventually(timeout: Duration = .seconds(10), _ condition: () -> Bool) async -> Bool {
    let deadline = ContinuousClock.now + timeout
    while ContinuousClock.now < deadline {
        if condition() { return true }
        try? await Task.sleep(for: .milliseconds(10))
    }
    return condition()
}
