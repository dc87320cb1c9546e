import Resilience
import Testing

@Suite struct SeverityTests {
    /// The short names of the OTel log data model: six ranges of four steps, the first step bare
    /// (`INFO`), the others numbered (`INFO2` … `INFO4`); 0 has none; numbers above 24 are 24.
    @Test func everyNumberHasTheDataModelsShortName() {
        let ranges = ["TRACE", "DEBUG", "INFO", "WARN", "ERROR", "FATAL"]
        for number in 1...24 {
            let step = (number - 1) % 4
            let expected = ranges[(number - 1) / 4] + (step == 0 ? "" : String(step + 1))
            #expect(Severity(number: UInt8(number)).text == expected)
        }
        #expect(Severity.unspecified.text == "")
        #expect(Severity(number: 200) == Severity(number: 24) && Severity(number: 200).text == "FATAL4")
        let named: [(Severity, UInt8)] = [(.trace, 1), (.debug, 5), (.info, 9), (.info2, 10), (.warn, 13), (.error, 17), (.fatal, 21)]
        for (severity, number) in named { #expect(severity.number == number) }
    }
}
