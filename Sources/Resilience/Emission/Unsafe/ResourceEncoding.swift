#if canImport(Glibc)
    import Glibc
#elseif canImport(Darwin)
    import Darwin
#endif

/// Encodes the `Resource` and `InstrumentationScope` messages once; batches copy the bytes.
enum ResourceEncoding {
    /// `Resource { repeated KeyValue attributes = 1; }` with the service, host, OS, process and SDK attributes.
    static func encode(_ configuration: PipelineConfiguration) -> [UInt8] {
        var attributes: [(String, AttributeValue)] = []
        attributes.append(("service.name", .string(configuration.serviceName ?? "unknown_service:\(processName())")))
        if let version = configuration.serviceVersion { attributes.append(("service.version", .string(version))) }
        attributes.append(("host.name", .string(hostName())))
        #if os(macOS)
            attributes.append(("os.type", "darwin"))
        #else
            attributes.append(("os.type", "linux"))
        #endif
        attributes.append(("process.pid", .int(Int64(getpid()))))
        attributes.append(("process.runtime.name", "swift"))
        attributes.append(("process.runtime.version", .string(swiftVersion)))
        attributes.append(("telemetry.sdk.name", "spillway"))
        attributes.append(("telemetry.sdk.language", "swift"))
        attributes.append(("telemetry.sdk.version", .string(spillwayVersion)))
        var seen = Set(attributes.map(\.0))
        for (key, value) in configuration.resourceAttributes.sorted(by: { $0.key < $1.key }) {
            if let i = attributes.firstIndex(where: { $0.0 == key }) { attributes[i].1 = value } else { attributes.append((key, value)) }
            seen.insert(key)
        }
        let buffer = ScratchBuffer()
        for (key, value) in attributes { buffer.putAttribute(field: 1, key: key, value: value, valueLimit: .max) }
        return Array(UnsafeRawBufferPointer(start: buffer.base, count: buffer.count))
    }

    /// `InstrumentationScope { string name = 1; string version = 2; }`.
    static func encodeScope(name: String, version: String?) -> [UInt8] {
        let buffer = ScratchBuffer(capacity: 256)
        buffer.putStringField(1, name)
        if let version, !version.isEmpty { buffer.putStringField(2, version) }
        return Array(UnsafeRawBufferPointer(start: buffer.base, count: buffer.count))
    }

    static func processName() -> String {
        guard let path = CommandLine.arguments.first, let last = path.split(separator: "/").last else { return "swift" }
        return String(last)
    }

    static func hostName() -> String {
        var name = [CChar](repeating: 0, count: 256)
        guard gethostname(&name, name.count - 1) == 0 else { return "localhost" }
        return String(decoding: name.prefix(while: { $0 != 0 }).map { UInt8(bitPattern: $0) }, as: UTF8.self)
    }

    static var swiftVersion: String {
        #if swift(>=6.3)
            return "6.3"
        #elseif swift(>=6.2)
            return "6.2"
        #else
            return "6.1"
        #endif
    }
}
