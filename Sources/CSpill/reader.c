#define _GNU_SOURCE
#include "CSpill.h"
#include "format.h"
#include "platform.h"

#include <errno.h>
#include <fcntl.h>
#include <limits.h>
#include <stdio.h>
#include <stdlib.h>
#include <sys/mman.h>
#include <sys/stat.h>
#include <unistd.h>

#include <zstd.h>

struct csp_reader {
	int fd;
	const uint8_t *map;     /* the whole file, read-only */
	uint64_t size;
	uint64_t position;      /* where the next frame header is expected */
	uint64_t valid_end;     /* end of the last frame that checked out */
	ZSTD_DCtx *dctx;
	uint8_t *payload;       /* the last decompressed payload, reused */
	size_t capacity;
	int headers_only;       /* check CRCs, skip decompression (csp_reader_set_headers_only) */
	uint64_t released;      /* pages before this offset were given back (MADV_DONTNEED) */
};

/* Reading only moves forward: the pages behind it are given back every 4 MiB, so replaying a
 * 64 MiB segment does not keep 64 MiB of it resident. */
static void release_behind(csp_reader_t *r)
{
	uint64_t page = (uint64_t)sysconf(_SC_PAGESIZE);
	uint64_t upto = r->position / page * page;
	if (upto >= r->released + (4u << 20)) {
		madvise((void *)(r->map + r->released), (size_t)(upto - r->released), MADV_DONTNEED);
		r->released = upto;
	}
}

void csp_reader_set_headers_only(csp_reader_t *r, int on) { r->headers_only = on; }

int csp_reader_open(const char *path, csp_reader_t **out, csp_segment_header_t *header)
{
	int fd = open(path, O_RDONLY | O_CLOEXEC);
	if (fd < 0)
		return -errno;
	struct stat st;
	if (fstat(fd, &st) != 0) {
		int rc = -errno;
		close(fd);
		return rc;
	}
	if ((uint64_t)st.st_size < CSP_SEGMENT_HEADER_SIZE) {
		close(fd);
		return -EBADMSG;  /* empty or cut inside the segment header */
	}
	const uint8_t *map = mmap(NULL, (size_t)st.st_size, PROT_READ, MAP_PRIVATE, fd, 0);
	if (map == MAP_FAILED) {
		int rc = -errno;
		close(fd);
		return rc;
	}
	uint16_t version = csp_get16(map + CSP_SEGMENT_VERSION), signal = csp_get16(map + CSP_SEGMENT_SIGNAL);
	if (memcmp(map + CSP_SEGMENT_MAGIC, csp_segment_magic, 8) != 0 || version != CSP_FORMAT_VERSION ||
	    (signal != CSP_SIGNAL_TRACES && signal != CSP_SIGNAL_LOGS && signal != CSP_SIGNAL_METRICS)) {
		munmap((void *)map, (size_t)st.st_size);
		close(fd);
		return -EBADMSG;
	}
	csp_reader_t *r = calloc(1, sizeof *r);
	if (!r || !(r->dctx = ZSTD_createDCtx())) {
		free(r);
		munmap((void *)map, (size_t)st.st_size);
		close(fd);
		return -ENOMEM;
	}
	r->fd = fd;
	r->map = map;
	r->size = (uint64_t)st.st_size;
	r->position = r->valid_end = CSP_SEGMENT_HEADER_SIZE;
	if (header) {
		header->version = version;
		header->signal = signal;
		header->flags = csp_get32(map + CSP_SEGMENT_FLAGS);
		header->sequence = csp_get64(map + CSP_SEGMENT_SEQUENCE);
		header->created_ns = csp_get64(map + CSP_SEGMENT_CREATED);
	}
	*out = r;
	return 0;
}

/* Whether a frame or padding header with a valid header CRC starts at `at`. */
static int header_checks_out(const csp_reader_t *r, uint64_t at)
{
	if (r->size - at < CSP_FRAME_HEADER_SIZE)
		return 0;
	const uint8_t *h = r->map + at;
	if (memcmp(h, csp_frame_magic, 4) != 0 && memcmp(h, csp_pad_magic, 4) != 0)
		return 0;
	return csp_crc32c(0, h, CSP_FRAME_HEADER_CRC) == csp_get32(h + CSP_FRAME_HEADER_CRC);
}

/* The next header at or after `from` that checks out, or the end of the file. Linear in the
 * bytes scanned: the next 'F' and 'P' candidates are each searched for once per position. */
static uint64_t scan(const csp_reader_t *r, uint64_t from)
{
	const uint8_t *end = r->map + r->size;
	const uint8_t *f = NULL, *p = NULL;
	uint64_t at = from;
	while (at + CSP_FRAME_HEADER_SIZE <= r->size) {
		const uint8_t *here = r->map + at;
		if (!f || f < here) {
			f = memchr(here, 'F', (size_t)(r->size - at));
			if (!f)
				f = end;
		}
		if (!p || p < here) {
			p = memchr(here, 'P', (size_t)(r->size - at));
			if (!p)
				p = end;
		}
		const uint8_t *next = f < p ? f : p;
		if (next == end)
			break;
		if (header_checks_out(r, (uint64_t)(next - r->map)))
			return (uint64_t)(next - r->map);
		at = (uint64_t)(next - r->map) + 1;
	}
	return r->size;
}

/* Damage at `at`: resynchronises on the next header that checks out. Returns -EBADMSG when one
 * follows (the damage is `frame->skipped_bytes` long), or -ENODATA when none does: the rest of
 * the file is a torn tail, what a crash while writing leaves. */
static int damaged(csp_reader_t *r, csp_frame_t *frame, uint64_t at)
{
	uint64_t next = scan(r, at + 1);
	frame->offset = at;
	frame->skipped_bytes = next - at;
	r->position = next;
	return next == r->size ? -ENODATA : -EBADMSG;
}

int csp_reader_next(csp_reader_t *r, csp_frame_t *frame)
{
	memset(frame, 0, sizeof *frame);
	release_behind(r);
	for (;;) {
		uint64_t at = r->position;
		frame->offset = at;
		if (at == r->size)
			return 0;
		if (r->size - at < CSP_FRAME_HEADER_SIZE) {
			r->position = r->size;
			frame->skipped_bytes = r->size - at;
			return -ENODATA;  /* torn tail: a header cut short */
		}
		const uint8_t *h = r->map + at;
		if (!header_checks_out(r, at))
			return damaged(r, frame, at);  /* the header itself: its record count is unknown */
		uint64_t left = r->size - at - CSP_FRAME_HEADER_SIZE;
		if (memcmp(h, csp_pad_magic, 4) == 0) {
			uint64_t pad = csp_get32(h + CSP_FRAME_COMPRESSED);
			/* A length is bounded by the bytes left: one that claims more is damage unless
			 * nothing valid follows (a torn tail). */
			if (pad > left)
				return damaged(r, frame, at);
			r->position = r->valid_end = at + CSP_FRAME_HEADER_SIZE + pad;
			continue;
		}
		frame->compressed_length = csp_get32(h + CSP_FRAME_COMPRESSED);
		frame->uncompressed_length = csp_get32(h + CSP_FRAME_UNCOMPRESSED);
		frame->records = csp_get32(h + CSP_FRAME_RECORDS);
		frame->batch_sequence = csp_get64(h + CSP_FRAME_BATCH);
		/* The header checks out; its count is believed only if the payload could hold that many. */
		int plausible = frame->uncompressed_length <= CSP_MAX_PAYLOAD &&
				(uint64_t)frame->records * CSP_MIN_RECORD_BYTES <= frame->uncompressed_length;
		frame->flags = CSP_FRAME_HEADER_INTACT | (plausible ? CSP_FRAME_RECORDS_KNOWN : 0);
		if (!plausible)
			frame->records = 0;
		if (frame->compressed_length > left)
			return damaged(r, frame, at);
		uint64_t end = at + CSP_FRAME_HEADER_SIZE + (uint64_t)frame->compressed_length;
		const uint8_t *compressed = h + CSP_FRAME_HEADER_SIZE;
		int bad = !plausible || csp_crc32c(0, compressed, frame->compressed_length) != csp_get32(h + CSP_FRAME_PAYLOAD_CRC);
		if (!bad && r->headers_only) {
			frame->payload = NULL;
			r->position = r->valid_end = end;
			return 1;
		}
		if (!bad) {
			/* Exactly one zstd frame, whose content size is the header's: caps what a bomb can ask for. */
			unsigned long long content = ZSTD_getFrameContentSize(compressed, frame->compressed_length);
			size_t one = ZSTD_findFrameCompressedSize(compressed, frame->compressed_length);
			bad = content != frame->uncompressed_length || ZSTD_isError(one) || one != frame->compressed_length;
		}
		if (!bad && r->capacity < frame->uncompressed_length) {
			uint8_t *grown = realloc(r->payload, frame->uncompressed_length ? frame->uncompressed_length : 1);
			if (!grown)
				return -ENOMEM;
			r->payload = grown;
			r->capacity = frame->uncompressed_length;
		}
		if (!bad) {
			size_t n = ZSTD_decompressDCtx(r->dctx, r->payload, frame->uncompressed_length, compressed,
						       frame->compressed_length);
			bad = ZSTD_isError(n) || n != frame->uncompressed_length;
		}
		if (bad) {
			/* The records this header names are lost; resynchronise on the next good header. */
			int rc = damaged(r, frame, at);
			return rc == -ENODATA && end <= r->size ? -EBADMSG : rc;
		}
		frame->payload = r->payload;
		r->position = r->valid_end = end;
		return 1;
	}
}

uint64_t csp_reader_valid_end(const csp_reader_t *r) { return r->valid_end; }
uint64_t csp_reader_size(const csp_reader_t *r) { return r->size; }

void csp_reader_close(csp_reader_t *r)
{
	if (!r)
		return;
	munmap((void *)r->map, (size_t)r->size);
	close(r->fd);
	ZSTD_freeDCtx(r->dctx);
	free(r->payload);
	free(r);
}

int csp_recover(const char *open_path, csp_recovery_t *result)
{
	memset(result, 0, sizeof *result);
	size_t length = strlen(open_path);
	if (length < 6 || length >= PATH_MAX || strcmp(open_path + length - 5, ".open") != 0)
		return -EINVAL;
	char spill_path[PATH_MAX];
	memcpy(spill_path, open_path, length - 5);
	strcpy(spill_path + length - 5, ".spill");

	csp_reader_t *r;
	uint64_t keep = 0;
	int rc = csp_reader_open(open_path, &r, NULL);
	if (rc == -EBADMSG) {
		/* Cut inside the segment header: nothing in it was ever durable. */
		result->removed = 1;
		return unlink(open_path) == 0 ? 0 : -errno;
	}
	if (rc < 0)
		return rc;
	/* Every frame that checks out is kept, also after damage (a crash may persist pages out of
	 * order): only what follows the last good frame is cut. */
	csp_frame_t frame;
	for (;;) {
		rc = csp_reader_next(r, &frame);
		if (rc == 1) {
			result->frames++;
			result->records += frame.records;
			continue;
		}
		if (rc == -EBADMSG) {
			result->damaged++;
			continue;
		}
		if (rc == -ENOMEM) {
			csp_reader_close(r);
			return rc;
		}
		break;  /* clean end or torn tail */
	}
	keep = csp_reader_valid_end(r);
	result->truncated_bytes = csp_reader_size(r) - keep;
	csp_reader_close(r);

	int fd = open(open_path, O_WRONLY | O_CLOEXEC);
	if (fd < 0)
		return -errno;
	if (result->truncated_bytes && ftruncate(fd, (off_t)keep) != 0) {
		rc = -errno;
		close(fd);
		return rc;
	}
	if (csp_datasync(fd) != 0) {
		rc = -errno;
		close(fd);
		return rc;
	}
	close(fd);
	if (rename(open_path, spill_path) != 0)
		return -errno;
	char directory[PATH_MAX];
	strcpy(directory, open_path);
	char *slash = strrchr(directory, '/');
	if (slash) {
		*slash = 0;
		int dirfd = open(slash == directory ? "/" : directory, O_RDONLY | O_DIRECTORY | O_CLOEXEC);
		if (dirfd >= 0) {
			fsync(dirfd);
			close(dirfd);
		}
	}
	return 0;
}
