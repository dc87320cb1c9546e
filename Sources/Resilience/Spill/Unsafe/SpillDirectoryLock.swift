#if canImport(Glibc)
    import Glibc
#elseif canImport(Darwin)
    import Darwin
#endif

/// The exclusive lock on a spill directory: `flock` on `<spill dir>/spillway.lock`, which holds
/// the holder's process id. The pipeline holds it while its spill store is open, so two
/// pipelines never write one directory and the file tools know that `.open` segments are being
/// written, not left by a crash. The kernel releases it when the process dies.
package final class SpillDirectoryLock: Sendable {
    private let descriptor: Int32
    package let path: String

    /// Why the lock was not taken.
    package struct Failure: Error, Sendable, CustomStringConvertible {
        package var path: String
        /// The process that holds it, when the lock file names one.
        package var holder: Int32?
        /// Set when the lock file could not be opened or locked for another reason.
        package var errno: Int32?
        package var description: String {
            if let errno { return "\(path): \(String(cString: strerror(errno)))" }
            return "\(path) is held by process \(holder.map(String.init) ?? "(unknown)")"
        }
    }

    /// Takes the lock of `spillDirectory` without waiting. With `create`, makes the lock file.
    /// - Throws: ``Failure`` when another process (or another pipeline of this one) holds it.
    package init(spillDirectory: String, create: Bool = true) throws(Failure) {
        path = spillDirectory + "/" + SpillLayout.lockFileName
        let fd = open(path, O_RDWR | O_CLOEXEC | (create ? O_CREAT : 0), 0o600)
        guard fd >= 0 else { throw Failure(path: path, holder: nil, errno: errno) }
        // flock locks belong to the open file description: a second open in this process conflicts too.
        guard flock(fd, LOCK_EX | LOCK_NB) == 0 else {
            let code = errno
            close(fd)
            if code == EWOULDBLOCK { throw Failure(path: path, holder: Self.holder(path), errno: nil) }
            throw Failure(path: path, holder: nil, errno: code)
        }
        let text = Array("\(getpid())\n".utf8)
        _ = ftruncate(fd, 0)
        _ = text.withUnsafeBytes { pwrite(fd, $0.baseAddress, $0.count, 0) }
        descriptor = fd
    }

    /// The process id written in the lock file at `path`, if any.
    package static func holder(_ path: String) -> Int32? {
        guard let text = SpillLayout.read(path, limit: 32) else { return nil }
        return Int32(text.trimmingCharacters(in: [" ", "\n"]))
    }

    /// Whether some process holds the lock of `spillDirectory` now (tested, not taken).
    package static func isHeld(spillDirectory: String) -> (held: Bool, holder: Int32?) {
        let path = spillDirectory + "/" + SpillLayout.lockFileName
        let fd = open(path, O_RDONLY | O_CLOEXEC)
        guard fd >= 0 else { return (false, nil) }
        defer { close(fd) }
        if flock(fd, LOCK_SH | LOCK_NB) == 0 {
            flock(fd, LOCK_UN)
            return (false, nil)
        }
        return (true, holder(path))
    }

    deinit {
        flock(descriptor, LOCK_UN)
        close(descriptor)
    }
}

extension String {
    fileprivate func trimmingCharacters(in set: Set<Character>) -> String {
        String(drop(while: { set.contains($0) }).reversed().drop(while: { set.contains($0) }).reversed())
    }
}
