/*
 * What differs between Linux and the other POSIX systems Spillway builds on (macOS): io_uring is
 * Linux only (elsewhere the writer uses pwrite), and so are fdatasync and O_DIRECT.
 */
#ifndef CSPILL_PLATFORM_H
#define CSPILL_PLATFORM_H

#include <fcntl.h>
#include <unistd.h>

#if defined(__linux__)
#define CSP_HAVE_URING 1
#else
#define CSP_HAVE_URING 0
#endif

#ifndef O_DIRECT
#define O_DIRECT 0 /* not offered: CSP_IO_URING_DIRECT writes buffered */
#endif

/* Makes a file's data durable. Linux: fdatasync. macOS: F_FULLFSYNC (fsync alone leaves the data
 * in the drive's cache there), else fsync. Returns 0 or -1 with errno. */
static inline int csp_datasync(int fd)
{
#if defined(__linux__)
	return fdatasync(fd);
#elif defined(F_FULLFSYNC)
	if (fcntl(fd, F_FULLFSYNC) == 0)
		return 0;
	return fsync(fd);
#else
	return fsync(fd);
#endif
}

#endif /* CSPILL_PLATFORM_H */
