/// Which new spans are recorded: the OpenTelemetry built-in samplers.
///
/// The decision is made once, when a span starts, and travels with the trace in the W3C
/// `sampled` flag. ``traceIDRatio(_:)`` is deterministic per trace id (the same trace id gives
/// the same decision in every process that uses the same ratio), by the rule that the other
/// OTel SDKs use: the last 8 bytes of the trace id, shifted right by one, compared with
/// `ratio × 2⁶³`. ``parentBased(root:)`` follows the parent's `sampled` flag and uses `root` for
/// roots only.
///
/// A span that is not sampled costs one random number and a branch: it has a valid context
/// (so its children and the requests it makes carry the trace), records nothing and is never
/// exported. Unsampled spans are not drops: they are not counted in ``PipelineStats``.
///
/// - Default value: ``parentBasedAlwaysOn``.
/// - Environment variables: `OTEL_TRACES_SAMPLER` (`always_on`, `always_off`, `traceidratio`,
///   `parentbased_always_on`, `parentbased_always_off`, `parentbased_traceidratio`) and
///   `OTEL_TRACES_SAMPLER_ARG` (the ratio, 0 … 1, default 1). Live: the ratio and the sampler can
///   change while the pipeline runs (``TelemetryPipeline/reconfigure(_:)``).
public struct TraceSampler: Sendable, Hashable, CustomStringConvertible {
    /// How a root span (or, without ``isParentBased``, every span) is decided.
    public enum Root: Sendable, Hashable {
        /// Every span is sampled.
        case alwaysOn
        /// No span is sampled.
        case alwaysOff
        /// A fraction of traces, by trace id: 0 … 1.
        case traceIDRatio(Double)
    }

    /// The decision for roots.
    public var root: Root
    /// Whether a span with a parent follows the parent's `sampled` flag.
    public var isParentBased: Bool

    /// A sampler deciding roots by `root`, and children by their parent when `isParentBased`.
    public init(root: Root, isParentBased: Bool) {
        self.root = root
        self.isParentBased = isParentBased
    }

    /// `always_on`.
    public static let alwaysOn = TraceSampler(root: .alwaysOn, isParentBased: false)
    /// `always_off`.
    public static let alwaysOff = TraceSampler(root: .alwaysOff, isParentBased: false)
    /// `parentbased_always_on`: the default.
    public static let parentBasedAlwaysOn = TraceSampler(root: .alwaysOn, isParentBased: true)
    /// `traceidratio` with `ratio`.
    public static func traceIDRatio(_ ratio: Double) -> TraceSampler { TraceSampler(root: .traceIDRatio(ratio), isParentBased: false) }
    /// `parentbased_<root>`.
    public static func parentBased(root: Root) -> TraceSampler { TraceSampler(root: root, isParentBased: true) }

    /// The `OTEL_TRACES_SAMPLER` spelling, with the ratio.
    public var description: String {
        let prefix = isParentBased ? "parentbased_" : ""
        switch root {
        case .alwaysOn: return prefix + "always_on"
        case .alwaysOff: return prefix + "always_off"
        case .traceIDRatio(let r): return prefix + "traceidratio(\(r))"
        }
    }

    /// Whether a span of trace `traceID` with parent `parent` (none for a root) is sampled.
    public func shouldSample(traceID: TraceID, parent: SpanContext?) -> Bool {
        SamplerState(self).shouldSample(traceID: traceID, parent: parent)
    }

    func validate() throws(ConfigurationError) {
        if case .traceIDRatio(let r) = root, !(r >= 0 && r <= 1) {
            throw ConfigurationError(key: "sampler", value: "\(self)", allowed: "a ratio from 0 to 1")
        }
    }
}

/// A sampler in two words, for the pipeline's atomics: `mode` (bit 0–1 root kind, bit 2 parent-based)
/// and the ratio's bound on 63 bits.
struct SamplerState: Sendable {
    var mode: UInt8
    var bound: UInt64

    init(mode: UInt8, bound: UInt64) {
        self.mode = mode
        self.bound = bound
    }

    init(_ sampler: TraceSampler) {
        switch sampler.root {
        case .alwaysOn: (mode, bound) = (0, 0)
        case .alwaysOff: (mode, bound) = (1, 0)
        case .traceIDRatio(let r):
            mode = 2
            bound = r >= 1 ? UInt64.max : UInt64(max(0, r) * 9_223_372_036_854_775_808.0)
        }
        if sampler.isParentBased { mode |= 4 }
    }

    @inline(__always)
    func shouldSample(traceID: TraceID, parent: SpanContext?) -> Bool {
        if mode & 4 != 0, let parent, parent.isValid { return parent.traceFlags & 1 != 0 }
        switch mode & 3 {
        case 0: return true
        case 1: return false
        default: return bound == .max || (traceID.low >> 1) < bound
        }
    }
}
