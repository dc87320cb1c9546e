/*
 * The segment writer's I/O backend: the writes of one open file, through io_uring or pwrite.
 * It knows nothing of segments or frames (writer.c does); it moves bytes to an offset, resumes
 * short writes, and orders an fdatasync after a write. Private to CSpill.
 */
#ifndef CSPILL_IO_H
#define CSPILL_IO_H

#include <stddef.h>
#include <stdint.h>

#include "platform.h"

#if CSP_HAVE_URING
#include <liburing.h>
#endif

struct csp_io {
	int mode; /* CSP_IO_URING or CSP_IO_PWRITE, as chosen by csp_io_init() */
#if CSP_HAVE_URING
	struct io_uring ring;
#endif
	/* The write started by csp_io_submit() and not yet completed by csp_io_wait(). */
	struct {
		int active;
		int fd;
		const uint8_t *data;
		size_t length, done;
		uint64_t offset;
	} pending;
};

/* Chooses the backend for `requested` (CSP_IO_AUTO, CSP_IO_URING or CSP_IO_PWRITE). AUTO takes
 * io_uring where the kernel offers it and pwrite where it is refused (ENOSYS, EPERM, ...).
 * Returns 0, or -errno when io_uring was required and is not available. */
int csp_io_init(struct csp_io *io, int requested);

/* Releases the backend (the io_uring instance). */
void csp_io_exit(struct csp_io *io);

/* Writes all of [data, data + length) to `fd` at `offset`, resuming short writes, and returns
 * when it is done. With `sync`, an fdatasync follows (linked after the write with
 * IOSQE_IO_LINK under io_uring) and completes before return. 0 or -errno. */
int csp_io_write(struct csp_io *io, int fd, const uint8_t *data, size_t length, uint64_t offset, int sync);

/* Starts writing [data, data + length) to `fd` at `offset` and returns at once (io_uring only:
 * -ENOSYS under pwrite). The buffer must stay untouched until csp_io_wait() returns. */
int csp_io_submit(struct csp_io *io, int fd, const uint8_t *data, size_t length, uint64_t offset);

/* Completes the write csp_io_submit() started, resuming a short one. Returns 0 (also when
 * nothing is pending), or -errno: the write failed, and `pending.offset` and `pending.length`
 * still say which bytes of the file it was writing. */
int csp_io_wait(struct csp_io *io);

#endif
