import Foundation

/// Directories for this package's tests: each under one root per test process
/// (`/tmp/spillway-tests-XXXXXX`), which is removed when the process exits, so repeated test runs
/// do not fill `/tmp` with spill files and request dumps. A test that must keep its directory
/// for a look afterwards prints its path and makes its own.
///
/// Thread-safety: safe from any thread (`mkdtemp` picks unique names).
package enum TestDirectory {
    /// A new empty directory `<root>/<name>-XXXXXX`.
    package static func make(_ name: String) -> String {
        var template = Array("\(testRoot)/\(name)-XXXXXX".utf8CString)
        return template.withUnsafeMutableBufferPointer { buffer in
            guard let made = mkdtemp(buffer.baseAddress!) else { fatalError("mkdtemp in \(testRoot): errno \(errno)") }
            return String(cString: made)
        }
    }

    /// The process's root (made on first use).
    package static var root: String { testRoot }
}

/// Made on first use; removed at exit (not after a crash or a kill: then `/tmp` keeps it).
private let testRoot: String = {
    var template = Array("/tmp/spillway-tests-XXXXXX".utf8CString)
    let root = template.withUnsafeMutableBufferPointer { buffer -> String in
        guard let made = mkdtemp(buffer.baseAddress!) else { fatalError("mkdtemp in /tmp: errno \(errno)") }
        return String(cString: made)
    }
    atexit { try? FileManager.default.removeItem(atPath: testRoot) }
    return root
}()
