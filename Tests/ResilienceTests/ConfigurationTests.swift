import Resilience
import Testing

@Suite struct ConfigurationTests {
    /// Liveness is stated once, by `ConfigurationKey.isLive`; `reconfigure` derives its refusals from it.
    @Test func restartOnlyChangesAreDerivedFromTheKeysLiveness() {
        for key in ConfigurationKey.all where key.property != "—" {
            #expect(
                PipelineConfiguration.propertyReaders[key.property] != nil,
                "\(key.environmentVariable) does not say how its property compares")
        }
        // The status endpoint's PUT /config applies every live key, and only those.
        for key in ConfigurationKey.all where key.isLive {
            #expect(
                PipelineConfiguration.liveSetters[key.property] != nil, "\(key.environmentVariable) is live but PUT /config cannot set it")
        }
        let running = PipelineConfiguration()
        func refusal(_ change: (inout PipelineConfiguration) -> Void) -> String? {
            var new = running
            change(&new)
            return running.restartOnlyChange(to: new)?.key
        }
        #expect(refusal { $0.overflowPolicy = .block(upTo: .milliseconds(5)) } == "overflowPolicy (SPILLWAY_OVERFLOW)")
        #expect(refusal { $0.limits.countLimit = 5 }?.contains("OTEL_SPAN_ATTRIBUTE_COUNT_LIMIT") == true)
        #expect(refusal { $0.ringCapacity = 1 << 22 } == "ringCapacity (SPILLWAY_RING_CAPACITY)")
        #expect(refusal { $0.retry = nil } == "retry")
        #expect(refusal { $0.processor = .simple } == "processor")
        #expect(refusal { $0.sampler = .alwaysOff } == nil)
        #expect(refusal { $0.exporter.endpoint = "http://127.0.0.1:1" } == nil)
        #expect(refusal { $0.traces.maxExportBatchSize = 7 } == nil)
        #expect(refusal { $0.isEnabled = false } == nil)
        #expect(refusal { $0.exceptionStackTraces = .never } == nil)
    }

    func error(_ configure: (inout PipelineConfiguration) -> Void) -> ConfigurationError? {
        var configuration = PipelineConfiguration()
        configure(&configuration)
        do {
            _ = try TelemetryPipeline(configuration: configuration)
            return nil
        } catch {
            return error
        }
    }

    @Test func invalidValuesAreRejectedWithTheKeyTheValueAndWhatIsAllowed() throws {
        let batch = try #require(error { $0.traces.maxExportBatchSize = -1 })
        #expect(batch.key == "traces.maxExportBatchSize" && batch.value == "-1" && batch.allowed.contains("> 0"))
        let delay = try #require(error { $0.logs.scheduleDelay = .zero })
        #expect(delay.key == "logs.scheduleDelay")
        let endpoint = try #require(error { $0.exporter.endpoint = "not a url" })
        #expect(endpoint.key == "exporter.endpoint" && endpoint.allowed.contains("http://"))
        #expect(error { $0.exporter.tracesEndpoint = "http://:4318/v1/traces" }?.key == "exporter.tracesEndpoint")
        #expect(error { $0.exporter.endpoint = "http://host:99999" }?.key == "exporter.endpoint")
        #expect(error { $0.ringCapacity = 1000 }?.key == "ringCapacity")
        #expect(error { $0.traces.maxConcurrentExports = 0 }?.key == "traces.maxConcurrentExports")
        #expect(error { $0.exporter.timeout = .seconds(-1) }?.key == "exporter.timeout")
        #expect(error { $0.exporter.headers = ["bad header": "x"] }?.key == "exporter.headers")
        // A line break in a value (a percent-encoded %0A in OTEL_EXPORTER_OTLP_HEADERS) would
        // fail every request at the transport; the value itself (a secret, often) is not shown.
        let value = try #require(error { $0.exporter.traces.headers = ["authorization": "Bearer abc\r\nX-Evil: 1"] })
        #expect(value.key == "exporter.traces.headers.authorization" && !value.description.contains("abc"), "\(value)")
        #expect(batch.description.contains("traces.maxExportBatchSize"))
    }

    @Test func environmentVariablesAreReadAndInvalidOnesNamed() throws {
        let config = try PipelineConfiguration.fromEnvironment([
            "OTEL_SERVICE_NAME": "checkout",
            "OTEL_RESOURCE_ATTRIBUTES": "deployment.environment=prod,team=pay%20ments",
            "OTEL_EXPORTER_OTLP_ENDPOINT": "http://collector:4318/",
            "OTEL_EXPORTER_OTLP_LOGS_ENDPOINT": "http://logs:9999/custom",
            "OTEL_EXPORTER_OTLP_HEADERS": "api-key=secret,x-tenant=a%3Db",
            "OTEL_EXPORTER_OTLP_COMPRESSION": "gzip",
            "OTEL_EXPORTER_OTLP_TIMEOUT": "2500",
            "OTEL_BSP_SCHEDULE_DELAY": "200",
            "OTEL_BSP_MAX_EXPORT_BATCH_SIZE": "1000",
            "OTEL_BLRP_SCHEDULE_DELAY": "100",
            "OTEL_ATTRIBUTE_COUNT_LIMIT": "64",
            "SPILLWAY_RING_CAPACITY": "1048576",
            "SPILLWAY_OVERFLOW": "block:250"
        ])
        #expect(config.serviceName == "checkout")
        #expect(config.resourceAttributes["team"] == .string("pay ments"))
        #expect(config.exporter.resolvedTracesEndpoint == "http://collector:4318/v1/traces")
        #expect(config.exporter.resolvedLogsEndpoint == "http://logs:9999/custom")
        #expect(config.exporter.headers == ["api-key": "secret", "x-tenant": "a=b"])
        #expect(config.exporter.compression == .gzip)
        #expect(config.exporter.timeout == .milliseconds(2500))
        #expect(config.traces.scheduleDelay == .milliseconds(200) && config.traces.maxExportBatchSize == 1000)
        #expect(config.logs.scheduleDelay == .milliseconds(100))
        #expect(config.limits.countLimit == 64)
        #expect(config.ringCapacity == 1 << 20)
        #expect(config.overflowPolicy == .block(upTo: .milliseconds(250)))

        for (name, value) in [
            ("OTEL_EXPORTER_OTLP_COMPRESSION", "zip"), ("OTEL_BSP_MAX_EXPORT_BATCH_SIZE", "-5"),
            ("OTEL_EXPORTER_OTLP_PROTOCOL", "http/json"), ("OTEL_BLRP_SCHEDULE_DELAY", "soon"),
            ("OTEL_EXPORTER_OTLP_ENDPOINT", "ftp://collector:4318"), ("SPILLWAY_RING_CAPACITY", "3000"),
            ("SPILLWAY_OVERFLOW", "drop_oldest")
        ] {
            do {
                _ = try PipelineConfiguration.fromEnvironment([name: value])
                Issue.record("\(name)=\(value) was accepted")
            } catch {
                #expect(error.key == name && error.value == value && error.source == "environment", "\(error)")
                #expect(!error.allowed.isEmpty)
            }
        }
    }

    @Test func endpointsFollowTheSpecificationRules() {
        var exporter = OTLPExporterConfiguration()
        #expect(exporter.resolvedTracesEndpoint == "http://localhost:4318/v1/traces")
        #expect(exporter.resolvedLogsEndpoint == "http://localhost:4318/v1/logs")
        exporter.endpoint = "http://collector:4318/prefix"
        #expect(exporter.resolvedTracesEndpoint == "http://collector:4318/prefix/v1/traces")
        exporter.tracesEndpoint = "http://other:1234"
        #expect(exporter.resolvedTracesEndpoint == "http://other:1234")
    }

    @Test func theSpillStoreIsConfiguredFromTheEnvironmentAndItsKeysNeedADirectory() throws {
        let config = try PipelineConfiguration.fromEnvironment([
            "SPILLWAY_SPILL_DIR": "/var/lib/app/spill", "SPILLWAY_SPILL_DURABILITY": "always", "SPILLWAY_SPILL_MAX_BYTES": "1048576",
            "SPILLWAY_SPILL_MAX_AGE": "3600000", "SPILLWAY_SPILL_MAX_SEGMENT_BYTES": "65536", "SPILLWAY_SPILL_REPLAY_CONCURRENCY": "3"
        ])
        let spill = try #require(config.spill)
        #expect(spill.directory == "/var/lib/app/spill" && spill.durability == .always && spill.maxBytes == 1 << 20)
        #expect(spill.maxAge == .seconds(3600) && spill.maxSegmentBytes == 65536 && spill.replayConcurrency == 3)
        #expect(
            try PipelineConfiguration.fromEnvironment(["SPILLWAY_SPILL_DIR": "/d", "SPILLWAY_SPILL_DURABILITY": "interval:250"]).spill?
                .durability
                == .interval(.milliseconds(250)))
        for (environment, key) in [
            (["SPILLWAY_SPILL_DURABILITY": "always"], "SPILLWAY_SPILL_DURABILITY"),
            (["SPILLWAY_SPILL_DIR": "/d", "SPILLWAY_SPILL_DURABILITY": "sometimes"], "SPILLWAY_SPILL_DURABILITY"),
            (["SPILLWAY_SPILL_DIR": "/d", "SPILLWAY_SPILL_DURABILITY": "interval:0"], "SPILLWAY_SPILL_DURABILITY"),
            (["SPILLWAY_SPILL_DIR": "/d", "SPILLWAY_SPILL_MAX_BYTES": "100"], "SPILLWAY_SPILL_MAX_BYTES"),
            (
                ["SPILLWAY_SPILL_DIR": "/d", "SPILLWAY_SPILL_MAX_BYTES": "8192", "SPILLWAY_SPILL_MAX_SEGMENT_BYTES": "65536"],
                "SPILLWAY_SPILL_MAX_BYTES"
            )
        ] {
            do {
                _ = try PipelineConfiguration.fromEnvironment(environment)
                Issue.record("\(environment) was accepted")
            } catch {
                #expect(error.key == key, "\(environment): \(error)")
            }
        }
    }

    /// `OTEL_EXPORTER_OTLP_HEADERS='api-key=SECRET123,oops'` once printed the secret in the error.
    @Test func aHeaderValueNeverAppearsInAnError() {
        for name in ["OTEL_EXPORTER_OTLP_HEADERS", "OTEL_EXPORTER_OTLP_TRACES_HEADERS", "OTEL_EXPORTER_OTLP_LOGS_HEADERS"] {
            for value in ["api-key=SECRET123,oops", "api-key=SECRET123,x=%zz", "SECRET123", "a=b,SECRET123,c=d"] {
                do {
                    _ = try PipelineConfiguration.fromEnvironment([name: value])
                    Issue.record("\(name)=\(value) was accepted")
                } catch {
                    #expect(error.key == name)
                    #expect(!error.description.contains("SECRET123") && !error.value.contains("SECRET123"), "\(error)")
                }
            }
        }
    }

    /// A typo such as SPILLWAY_RING_CAPACITYY, or OTEL_PROPAGATORS=b3, was once ignored without a word.
    @Test func unknownAndUnsupportedVariablesAreNamedWithTheNearestKnownOne() {
        let warnings = ConfigurationLayer(environment: [
            "SPILLWAY_RING_CAPACITYY": "1024", "OTEL_PROPAGATORS": "b3", "OTEL_TRACES_EXPORTER": "console",
            "OTEL_EXPORTER_ZIPKIN_ENDPOINT": "/etc/ca.pem", "OTEL_LOGS_EXPORTER": "otlp", "OTEL_SERVICE_NAME": "fine",
            "PATH": "/bin"
        ]).warnings
        #expect(warnings.count == 4, "\(warnings)")
        #expect(warnings.contains { $0.contains("SPILLWAY_RING_CAPACITYY") && $0.contains("did you mean SPILLWAY_RING_CAPACITY?") })
        #expect(warnings.contains { $0.contains("OTEL_PROPAGATORS=b3") && $0.contains("tracecontext") })
        #expect(warnings.contains { $0.contains("OTEL_TRACES_EXPORTER=console") })
        #expect(warnings.contains { $0.contains("OTEL_EXPORTER_ZIPKIN_ENDPOINT") && !$0.contains("/etc/ca.pem") })
    }
}
