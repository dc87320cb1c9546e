internal import CGzip
import NIOCore

#if canImport(Glibc)
    import Glibc
#elseif canImport(Darwin)
    import Darwin
#endif

/// gzip `bytes` at level 1 (fast: request bodies are compressed on the export path).
func gzipCompress(_ bytes: [UInt8]) -> ByteBuffer {
    let bound = cgz_bound(bytes.count)
    var buffer = ByteBufferAllocator().buffer(capacity: bound)
    let written = bytes.withUnsafeBytes { input in
        buffer.writeWithUnsafeMutableBytes(minimumWritableBytes: bound) { output in
            let n = cgz_compress(input.baseAddress, input.count, output.baseAddress, output.count, 1)
            return n > 0 ? n : 0
        }
    }
    precondition(written > 0, "gzip of \(bytes.count) bytes into \(bound) failed")
    return buffer
}

/// gunzip `bytes`; `nil` if they are not gzip or would inflate past `maximumSize`.
package func gzipDecompress(_ bytes: [UInt8], maximumSize: Int) -> [UInt8]? {
    var capacity = min(max(bytes.count * 8, 4096), maximumSize)
    while true {
        var output = [UInt8](repeating: 0, count: capacity)
        let n = bytes.withUnsafeBytes { input in
            output.withUnsafeMutableBytes { cgz_decompress(input.baseAddress, input.count, $0.baseAddress, $0.count) }
        }
        if n >= 0 {
            output.removeSubrange(n...)
            return output
        }
        if n == -Int(EFBIG) && capacity < maximumSize {
            capacity = min(capacity * 4, maximumSize)
            continue
        }
        return nil
    }
}
