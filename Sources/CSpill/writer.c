#define _GNU_SOURCE
#include "CSpill.h"
#include "format.h"

#include <errno.h>
#include <fcntl.h>
#include <stdio.h>
#include <stdlib.h>
#include <sys/stat.h>
#include <time.h>
#include <unistd.h>

#include "io.h"
#include "platform.h"
#include <zstd.h>

#define CSP_ALIGN 4096

struct csp_writer {
	csp_writer_options_t options;
	char directory[4096];
	int dirfd;
	struct csp_io io;       /* the I/O backend (io.h): io_uring or pwrite */
	int direct;             /* O_DIRECT requested: frames padded to CSP_ALIGN */
	ZSTD_CCtx *cctx;
	/* Two frame buffers (header + compressed payload), reused: with io_uring and no sync due,
	 * frame N+1 is compressed into one while frame N is still being written from the other. */
	uint8_t *buffers[2];
	size_t capacities[2];
	int current;
	/* The segment and records of the frame whose write is in flight (io.pending). */
	uint64_t pending_segment;
	uint32_t pending_records;
	/* Frames that were accepted by an earlier append but whose write then failed. */
	uint64_t lost_frames, lost_records, lost_segment;
	int fd;                 /* the open segment, or -1 */
	uint64_t sequence;      /* of the open segment, or of the next one */
	uint64_t offset;        /* end of the last complete frame in the open segment */
	uint64_t created_ns;
	uint64_t last_sync_ns;
	uint64_t bytes_written;
	int synced;             /* nothing written since the last fdatasync */
};

static uint64_t now_ns(clockid_t clock)
{
	struct timespec ts;
	clock_gettime(clock, &ts);
	return (uint64_t)ts.tv_sec * 1000000000u + (uint64_t)ts.tv_nsec;
}

int csp_segment_path(const char *directory, uint64_t sequence, const char *suffix, char *out, size_t size)
{
	int n = snprintf(out, size, "%s/%020llu.%s", directory, (unsigned long long)sequence, suffix);
	return n < 0 || (size_t)n >= size ? -ENAMETOOLONG : 0;
}

static void segment_path(const csp_writer_t *w, uint64_t sequence, const char *suffix, char *out, size_t size)
{
	(void)csp_segment_path(w->directory, sequence, suffix, out, size);
}

/* Writes all of [data, data + length) at `offset` of the open segment; see csp_io_write(). */
static int write_all(csp_writer_t *w, const uint8_t *data, size_t length, uint64_t offset, int sync)
{
	return csp_io_write(&w->io, w->fd, data, length, offset, sync);
}

/* Completes the write of the previous frame (io_uring, asynchronous). If it failed, the frame
 * is cut from the file and counted as lost (csp_writer_take_lost()). */
static int complete_pending(csp_writer_t *w)
{
	if (!w->io.pending.active)
		return 0;
	uint64_t offset = w->io.pending.offset;
	size_t length = w->io.pending.length;
	int error = csp_io_wait(&w->io);
	if (error == 0)
		return 0;
	/* Nothing of the lost frame may stay behind. */
	if (ftruncate(w->fd, (off_t)offset) != 0) { /* the reader and recovery cut a torn tail anyway */ }
	w->offset = offset;
	w->bytes_written -= length;
	w->lost_frames++;
	w->lost_records += w->pending_records;
	w->lost_segment = w->pending_segment;
	return error;
}

int csp_writer_take_lost(csp_writer_t *w, uint64_t *frames, uint64_t *records, uint64_t *segment)
{
	*frames = w->lost_frames;
	*records = w->lost_records;
	*segment = w->lost_segment;
	w->lost_frames = w->lost_records = 0;
	return *frames ? 1 : 0;
}

/* Writes a PAD1 frame of `size` bytes (>= 32) at `p`: header, then zeros. */
static void put_padding(uint8_t *p, size_t size)
{
	memset(p, 0, size);
	memcpy(p + CSP_FRAME_MAGIC, csp_pad_magic, 4);
	csp_put32(p + CSP_FRAME_COMPRESSED, (uint32_t)(size - CSP_FRAME_HEADER_SIZE));
	csp_put32(p + CSP_FRAME_HEADER_CRC, csp_crc32c(0, p, CSP_FRAME_HEADER_CRC));
}

/* Padding after `length` bytes to the next CSP_ALIGN boundary: 0, or at least a PAD1 header. */
static size_t padding_after(size_t length)
{
	size_t rem = length % CSP_ALIGN;
	if (rem == 0)
		return 0;
	size_t pad = CSP_ALIGN - rem;
	return pad < CSP_FRAME_HEADER_SIZE ? pad + CSP_ALIGN : pad;
}

/* Makes buffer `slot` hold at least `size` bytes, aligned for O_DIRECT. */
static int reserve(csp_writer_t *w, int slot, size_t size)
{
	if (w->capacities[slot] >= size)
		return 0;
	size = (size + CSP_ALIGN - 1) / CSP_ALIGN * CSP_ALIGN;
	void *fresh;
	if (posix_memalign(&fresh, CSP_ALIGN, size) != 0)
		return -ENOMEM;
	free(w->buffers[slot]);
	w->buffers[slot] = fresh;
	w->capacities[slot] = size;
	return 0;
}

static int open_segment(csp_writer_t *w)
{
	char path[4200];
	segment_path(w, w->sequence, "open", path, sizeof path);
	int flags = O_WRONLY | O_CREAT | O_EXCL | O_CLOEXEC;
	int fd = open(path, flags | (w->direct ? O_DIRECT : 0), 0600);
	if (O_DIRECT == 0)
		w->direct = 0;  /* this system has no O_DIRECT: buffered */
	if (fd < 0 && w->direct && errno == EINVAL) {
		w->direct = 0;  /* the file system refuses O_DIRECT (tmpfs): buffered from now on */
		fd = open(path, flags, 0600);
	}
	if (fd < 0)
		return -errno;
	/* The segment header goes through a frame buffer: O_DIRECT needs aligned memory. */
	int slot = w->current;
	if (w->io.pending.active && w->io.pending.data == w->buffers[slot])
		slot ^= 1;
	int rc = reserve(w, slot, CSP_ALIGN);
	if (rc < 0) {
		close(fd);
		unlink(path);
		return rc;
	}
	uint8_t *header = w->buffers[slot];
	memset(header, 0, CSP_SEGMENT_HEADER_SIZE);
	memcpy(header + CSP_SEGMENT_MAGIC, csp_segment_magic, 8);
	csp_put16(header + CSP_SEGMENT_VERSION, CSP_FORMAT_VERSION);
	csp_put16(header + CSP_SEGMENT_SIGNAL, w->options.signal);
	csp_put32(header + CSP_SEGMENT_FLAGS, w->options.flags);
	csp_put64(header + CSP_SEGMENT_SEQUENCE, w->sequence);
	w->created_ns = now_ns(CLOCK_REALTIME);
	csp_put64(header + CSP_SEGMENT_CREATED, w->created_ns);
	size_t length = CSP_SEGMENT_HEADER_SIZE;
	if (w->direct) {
		put_padding(header + CSP_SEGMENT_HEADER_SIZE, CSP_ALIGN - CSP_SEGMENT_HEADER_SIZE);
		length = CSP_ALIGN;
	}
	w->fd = fd;
	rc = write_all(w, header, length, 0, 0);
	if (rc < 0) {
		close(fd);
		unlink(path);
		w->fd = -1;
		return rc;
	}
	w->offset = length;
	w->bytes_written += length;
	w->synced = 0;
	/* The new name must survive a crash too, or recovery would not find the file. */
	fsync(w->dirfd);
	return 0;
}

int csp_writer_open(const csp_writer_options_t *options, csp_writer_t **out)
{
	if (!options || !options->directory || !out || (options->signal != CSP_SIGNAL_TRACES && options->signal != CSP_SIGNAL_LOGS &&
	                                          options->signal != CSP_SIGNAL_METRICS))
		return -EINVAL;
	if (strlen(options->directory) >= 4000)
		return -ENAMETOOLONG;
	csp_writer_t *w = calloc(1, sizeof *w);
	if (!w)
		return -ENOMEM;
	w->options = *options;
	if (!w->options.max_segment_bytes)
		w->options.max_segment_bytes = 64u << 20;
	if (!w->options.zstd_level)
		w->options.zstd_level = 1;
	strcpy(w->directory, options->directory);
	w->options.directory = w->directory;
	w->fd = -1;
	w->sequence = options->segment_sequence;
	w->synced = 1;
	w->last_sync_ns = now_ns(CLOCK_MONOTONIC);
	if (mkdir(w->directory, 0700) != 0 && errno != EEXIST) {
		int rc = -errno;
		free(w);
		return rc;
	}
	w->dirfd = open(w->directory, O_RDONLY | O_DIRECTORY | O_CLOEXEC);
	if (w->dirfd < 0) {
		int rc = -errno;
		free(w);
		return rc;
	}
	int io = options->io;
	if (io == CSP_IO_URING_DIRECT) {
		w->direct = 1;
		io = CSP_IO_AUTO;
	}
	int rc = csp_io_init(&w->io, io);
	if (rc < 0) {
		close(w->dirfd);
		free(w);
		return rc;
	}
	w->cctx = ZSTD_createCCtx();
	if (!w->cctx) {
		csp_writer_close(w);
		return -ENOMEM;
	}
	*out = w;
	return 0;
}

int csp_writer_io(const csp_writer_t *w) { return w->io.mode; }
int csp_writer_direct(const csp_writer_t *w) { return w->direct; }
uint64_t csp_writer_bytes(const csp_writer_t *w) { return w->bytes_written; }
uint64_t csp_writer_segment_sequence(const csp_writer_t *w) { return w->sequence; }

int csp_writer_flush(csp_writer_t *w)
{
	int rc = complete_pending(w);
	if (rc < 0)
		return rc;
	if (w->fd < 0 || w->synced)
		return 0;
	rc = write_all(w, NULL, 0, w->offset, 1);
	if (rc == 0) {
		w->synced = 1;
		w->last_sync_ns = now_ns(CLOCK_MONOTONIC);
	}
	return rc;
}

int csp_writer_rotate(csp_writer_t *w)
{
	if (w->fd < 0)
		return 0;
	int rc = complete_pending(w);
	if (rc < 0)
		return rc;
	rc = write_all(w, NULL, 0, w->offset, 1);  /* .open → fdatasync → rename .spill → fsync dir */
	if (rc < 0)
		return rc;
	close(w->fd);
	w->fd = -1;
	char from[4200], to[4200];
	segment_path(w, w->sequence, "open", from, sizeof from);
	segment_path(w, w->sequence, "spill", to, sizeof to);
	if (rename(from, to) != 0)
		return -errno;
	if (fsync(w->dirfd) != 0)
		return -errno;
	w->sequence++;
	w->synced = 1;
	return 0;
}

int csp_writer_append(csp_writer_t *w, const void *payload, uint32_t length, uint32_t records, uint64_t batch_sequence,
		      csp_frame_info_t *info)
{
	if (length > CSP_MAX_PAYLOAD || (!payload && length))
		return -EMSGSIZE;
	if (w->fd >= 0 && w->options.max_segment_age_ns &&
	    now_ns(CLOCK_REALTIME) - w->created_ns >= w->options.max_segment_age_ns) {
		int rc = csp_writer_rotate(w);
		if (rc < 0)
			return rc;
	}
	if (w->fd < 0) {
		int rc = open_segment(w);
		if (rc < 0)
			return rc;
	}
	size_t bound = ZSTD_compressBound(length);
	int slot = w->current;
	if (reserve(w, slot, CSP_FRAME_HEADER_SIZE + bound + 2 * CSP_ALIGN) < 0)
		return -ENOMEM;
	uint8_t *h = w->buffers[slot];
	/* Compressing here overlaps the write of the previous frame, if it is still in flight. */
	size_t compressed = ZSTD_compressCCtx(w->cctx, h + CSP_FRAME_HEADER_SIZE, bound, payload, length, w->options.zstd_level);
	if (ZSTD_isError(compressed))
		return -EIO;
	memcpy(h + CSP_FRAME_MAGIC, csp_frame_magic, 4);
	csp_put32(h + CSP_FRAME_COMPRESSED, (uint32_t)compressed);
	csp_put32(h + CSP_FRAME_UNCOMPRESSED, length);
	csp_put32(h + CSP_FRAME_RECORDS, records);
	csp_put64(h + CSP_FRAME_BATCH, batch_sequence);
	csp_put32(h + CSP_FRAME_PAYLOAD_CRC, csp_crc32c(0, h + CSP_FRAME_HEADER_SIZE, compressed));
	csp_put32(h + CSP_FRAME_HEADER_CRC, csp_crc32c(0, h, CSP_FRAME_HEADER_CRC));

	int rc = complete_pending(w);
	if (rc < 0)
		return rc;  /* the previous frame was lost (csp_writer_take_lost()); this one is not written */
	uint64_t now = now_ns(CLOCK_MONOTONIC);
	int sync = w->options.durability == CSP_DURABILITY_ALWAYS ||
		   (w->options.durability == CSP_DURABILITY_INTERVAL && now - w->last_sync_ns >= w->options.sync_interval_ns);
	size_t total = CSP_FRAME_HEADER_SIZE + compressed;
	if (w->direct) {
		/* O_DIRECT: offsets and lengths stay multiples of 4 KiB; a PAD1 frame fills the rest. */
		size_t pad = padding_after(total);
		if (pad)
			put_padding(h + total, pad);
		total += pad;
	}
	if (w->io.mode == CSP_IO_URING && !sync) {
		rc = csp_io_submit(&w->io, w->fd, h, total, w->offset);
		if (rc < 0)
			return rc;
		w->pending_segment = w->sequence;
		w->pending_records = records;
		w->current ^= 1;
	} else {
		rc = write_all(w, h, total, w->offset, sync);
		if (rc < 0) {
			/* Nothing of this frame may stay behind: a reader must see the segment end at the last whole frame. */
			if (ftruncate(w->fd, (off_t)w->offset) != 0) { /* the reader and recovery cut a torn tail anyway */ }
			return rc;
		}
	}
	if (info) {
		info->segment_sequence = w->sequence;
		info->offset = w->offset;
		info->compressed_length = (uint32_t)compressed;
		info->durable = sync;
	}
	w->offset += total;
	w->bytes_written += total;
	if (sync) {
		w->synced = 1;
		w->last_sync_ns = now;
	} else {
		w->synced = 0;
	}
	if (w->offset >= w->options.max_segment_bytes)
		return csp_writer_rotate(w);
	return 0;
}

int csp_writer_close(csp_writer_t *w)
{
	if (!w)
		return 0;
	int rc = csp_writer_rotate(w);
	csp_io_exit(&w->io);
	if (w->cctx)
		ZSTD_freeCCtx(w->cctx);
	if (w->dirfd >= 0)
		close(w->dirfd);
	free(w->buffers[0]);
	free(w->buffers[1]);
	free(w);
	return rc;
}

size_t csp_zstd_compress(void *output, size_t capacity, const void *input, size_t length, int level)
{
	size_t n = ZSTD_compress(output, capacity, input, length, level);
	return ZSTD_isError(n) ? 0 : n;
}
