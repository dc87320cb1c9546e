/// Reads a JSON object whose values are strings, numbers or booleans — the body of the status
/// endpoint's `PUT /config` — into its keys and the values' text (`5000`, `true`, `"gzip"` →
/// `gzip`). No Foundation; every malformed input is an error that says where.
enum FlatJSONObject {
    struct Failure: Error, CustomStringConvertible {
        var description: String
    }

    static func parse(_ bytes: [UInt8]) throws(Failure) -> [String: String] {
        var reader = Reader(bytes: bytes)
        reader.skipSpace()
        try reader.expect(UInt8(ascii: "{"))
        var result: [String: String] = [:]
        reader.skipSpace()
        if reader.peek == UInt8(ascii: "}") {
            reader.index += 1
        } else {
            while true {
                reader.skipSpace()
                let key = try reader.string()
                reader.skipSpace()
                try reader.expect(UInt8(ascii: ":"))
                reader.skipSpace()
                result[key] = try reader.scalar()
                reader.skipSpace()
                if reader.peek == UInt8(ascii: ",") {
                    reader.index += 1
                    continue
                }
                try reader.expect(UInt8(ascii: "}"))
                break
            }
        }
        reader.skipSpace()
        guard reader.index == bytes.count else { throw Failure(description: "text after the object at byte \(reader.index)") }
        return result
    }

    private struct Reader {
        let bytes: [UInt8]
        var index = 0

        var peek: UInt8? { index < bytes.count ? bytes[index] : nil }

        mutating func skipSpace() {
            while let b = peek, b == 0x20 || b == 0x0A || b == 0x0D || b == 0x09 { index += 1 }
        }

        mutating func expect(_ byte: UInt8) throws(Failure) {
            guard peek == byte else {
                throw Failure(description: "expected '\(Character(Unicode.Scalar(byte)))' at byte \(index)")
            }
            index += 1
        }

        mutating func string() throws(Failure) -> String {
            try expect(UInt8(ascii: "\""))
            var scalars = String.UnicodeScalarView()
            var raw: [UInt8] = []
            func flush() {
                scalars.append(contentsOf: String(decoding: raw, as: UTF8.self).unicodeScalars)
                raw.removeAll()
            }
            while let b = peek {
                index += 1
                switch b {
                case UInt8(ascii: "\""):
                    flush()
                    return String(scalars)
                case UInt8(ascii: "\\"):
                    guard let e = peek else { break }
                    index += 1
                    switch e {
                    case UInt8(ascii: "n"): raw.append(0x0A)
                    case UInt8(ascii: "t"): raw.append(0x09)
                    case UInt8(ascii: "r"): raw.append(0x0D)
                    case UInt8(ascii: "b"): raw.append(0x08)
                    case UInt8(ascii: "f"): raw.append(0x0C)
                    case UInt8(ascii: "u"):
                        guard index + 4 <= bytes.count,
                            let code = UInt32(String(decoding: bytes[index..<index + 4], as: UTF8.self), radix: 16),
                            let scalar = Unicode.Scalar(code)
                        else { throw Failure(description: "a bad \\u escape at byte \(index)") }
                        index += 4
                        flush()
                        scalars.append(scalar)
                    case UInt8(ascii: "\""), UInt8(ascii: "\\"), UInt8(ascii: "/"): raw.append(e)
                    default: throw Failure(description: "a bad escape at byte \(index - 1)")
                    }
                case 0..<0x20: throw Failure(description: "a control character in a string at byte \(index - 1)")
                default: raw.append(b)
                }
            }
            throw Failure(description: "an unterminated string")
        }

        /// A string, number, `true` or `false`, as text.
        mutating func scalar() throws(Failure) -> String {
            if peek == UInt8(ascii: "\"") { return try string() }
            let start = index
            while let b = peek, b != UInt8(ascii: ","), b != UInt8(ascii: "}"), b > 0x20 { index += 1 }
            let text = String(decoding: bytes[start..<index], as: UTF8.self)
            guard text == "true" || text == "false" || (!text.isEmpty && Double(text) != nil) else {
                throw Failure(description: "a value that is not a string, number or boolean at byte \(start)")
            }
            return text
        }
    }
}
