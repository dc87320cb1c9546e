#define _GNU_SOURCE
/*
 * The segment writer's I/O backend (io.h): io_uring, or pwrite where io_uring is refused.
 */
#include "CSpill.h"
#include "io.h"

#include <errno.h>
#include <string.h>
#include <unistd.h>

int csp_io_init(struct csp_io *io, int requested)
{
	memset(io, 0, sizeof *io);
	io->mode = CSP_IO_PWRITE;
	if (requested == CSP_IO_PWRITE)
		return 0;
#if CSP_HAVE_URING
	int rc = io_uring_queue_init(8, &io->ring, 0);
	if (rc == 0) {
		io->mode = CSP_IO_URING;
		return 0;
	}
	return requested == CSP_IO_URING ? rc : 0; /* AUTO: ENOSYS, EPERM, ...: fall back on pwrite */
#else
	return requested == CSP_IO_URING ? -ENOSYS : 0;
#endif
}

void csp_io_exit(struct csp_io *io)
{
#if CSP_HAVE_URING
	if (io->mode == CSP_IO_URING)
		io_uring_queue_exit(&io->ring);
#endif
	io->mode = CSP_IO_PWRITE;
}

static int pwrite_all(int fd, const uint8_t *data, size_t length, uint64_t offset, int sync)
{
	while (length > 0) {
		ssize_t n = pwrite(fd, data, length, (off_t)offset);
		if (n < 0) {
			if (errno == EINTR)
				continue;
			return -errno;
		}
		if (n == 0)
			return -EIO;
		data += n, length -= (size_t)n, offset += (uint64_t)n;
	}
	if (sync && csp_datasync(fd) != 0)
		return -errno;
	return 0;
}

int csp_io_write(struct csp_io *io, int fd, const uint8_t *data, size_t length, uint64_t offset, int sync)
{
	if (io->mode == CSP_IO_PWRITE)
		return pwrite_all(fd, data, length, offset, sync);
#if CSP_HAVE_URING
	while (length > 0 || sync) {
		struct io_uring_sqe *sqe;
		int pending = 0;
		if (length > 0) {
			sqe = io_uring_get_sqe(&io->ring);
			io_uring_prep_write(sqe, fd, data, (unsigned)length, offset);
			sqe->user_data = 1;
			pending++;
			if (sync)
				sqe->flags |= IOSQE_IO_LINK; /* the fdatasync below runs only after this write */
		}
		if (sync) {
			sqe = io_uring_get_sqe(&io->ring);
			io_uring_prep_fsync(sqe, fd, IORING_FSYNC_DATASYNC);
			sqe->user_data = 2;
			pending++;
		}
		int rc = io_uring_submit(&io->ring);
		if (rc < 0)
			return rc;
		int written = -1, synced = 0, sync_rc = 0;
		for (int i = 0; i < pending; i++) {
			struct io_uring_cqe *cqe;
			rc = io_uring_wait_cqe(&io->ring, &cqe);
			if (rc < 0)
				return rc;
			if (cqe->user_data == 1)
				written = cqe->res;
			else
				synced = 1, sync_rc = cqe->res;
			io_uring_cqe_seen(&io->ring, cqe);
		}
		if (length > 0) {
			if (written < 0)
				return written;
			if (written == 0)
				return -EIO;
			data += written, length -= (size_t)written, offset += (uint64_t)written;
			if (length > 0)
				continue; /* short write: the linked sync was cancelled (-ECANCELED); resume, then sync */
		}
		if (sync) {
			if (synced && sync_rc == 0)
				return 0;
			if (sync_rc != -ECANCELED && sync_rc < 0)
				return sync_rc;
			/* cancelled by a short write that is now complete: sync alone */
			length = 0;
			continue;
		}
	}
	return 0;
#else
	return -ENOSYS;
#endif
}

int csp_io_submit(struct csp_io *io, int fd, const uint8_t *data, size_t length, uint64_t offset)
{
#if CSP_HAVE_URING
	if (io->mode != CSP_IO_URING || io->pending.active)
		return io->pending.active ? -EBUSY : -ENOSYS;
	struct io_uring_sqe *sqe = io_uring_get_sqe(&io->ring);
	io_uring_prep_write(sqe, fd, data, (unsigned)length, offset);
	sqe->user_data = 1;
	int rc = io_uring_submit(&io->ring);
	if (rc < 0)
		return rc;
	io->pending.active = 1;
	io->pending.fd = fd;
	io->pending.data = data;
	io->pending.length = length;
	io->pending.done = 0;
	io->pending.offset = offset;
	return 0;
#else
	(void)io, (void)fd, (void)data, (void)length, (void)offset;
	return -ENOSYS;
#endif
}

int csp_io_wait(struct csp_io *io)
{
#if CSP_HAVE_URING
	while (io->pending.active) {
		struct io_uring_cqe *cqe;
		int res = io_uring_wait_cqe(&io->ring, &cqe);
		if (res == 0) {
			res = cqe->res;
			io_uring_cqe_seen(&io->ring, cqe);
		}
		size_t remaining = io->pending.length - io->pending.done;
		if (res > 0 && (size_t)res < remaining) {
			io->pending.done += (size_t)res;
			struct io_uring_sqe *sqe = io_uring_get_sqe(&io->ring);
			io_uring_prep_write(sqe, io->pending.fd, io->pending.data + io->pending.done,
					    (unsigned)(io->pending.length - io->pending.done), io->pending.offset + io->pending.done);
			sqe->user_data = 1;
			res = io_uring_submit(&io->ring);
			if (res >= 0)
				continue;
		}
		io->pending.active = 0;
		return res > 0 ? 0 : (res < 0 ? res : -EIO);
	}
#else
	(void)io;
#endif
	return 0;
}
