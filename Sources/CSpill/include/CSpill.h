/*
 * CSpill — spill segment files for Spillway (the format: FORMAT.md in the repository; the flow: ARCHITECTURE.md).
 *
 * CRC32C, an io_uring probe, the segment writer (io_uring or pwrite), the
 * frame reader, and start-up recovery of `.open` segments. Functions return
 * 0 (or a count) on success and -errno on failure, like liburing.
 */
#ifndef CSPILL_H
#define CSPILL_H

#include <stddef.h>
#include <stdint.h>

#ifdef __cplusplus
extern "C" {
#endif

/**
 * CRC32C (Castagnoli) of `length` bytes, continuing from `crc` (0 to start).
 * Uses the SSE4.2 crc32 instruction where the CPU has it, a table otherwise.
 * Safe from any thread.
 */
uint32_t csp_crc32c(uint32_t crc, const void *data, size_t length);

/**
 * Checks that io_uring can be set up here (the kernel may lack it, or a
 * sandbox may refuse it). Safe from any thread.
 *
 * Returns 0 if a ring could be created, or -errno from io_uring_queue_init()
 * (-ENOSYS, -EPERM, ...).
 */
int csp_uring_probe(void);

/** The version number of the zstd library linked in (ZSTD_versionNumber()). */
unsigned csp_zstd_version(void);

/**
 * One zstd frame of `input` at `level`, its content size recorded (what the
 * writer produces; for tests and tools). Returns the compressed size, or 0 on
 * error (output too small).
 */
size_t csp_zstd_compress(void *output, size_t capacity, const void *input, size_t length, int level);

enum { CSP_SIGNAL_TRACES = 1, CSP_SIGNAL_LOGS = 2, CSP_SIGNAL_METRICS = 3 };

/** When written frames are made durable (fdatasync). */
enum { CSP_DURABILITY_NONE = 0, CSP_DURABILITY_INTERVAL = 1, CSP_DURABILITY_ALWAYS = 2 };

/**
 * How the writer writes: io_uring when it can be set up (AUTO), or pwrite.
 * CSP_IO_URING_DIRECT: io_uring with O_DIRECT, every frame padded to 4 KiB
 * with a PAD1 frame; falls back to buffered writes where the file system
 * refuses O_DIRECT (tmpfs), and to pwrite where io_uring is refused.
 */
enum { CSP_IO_AUTO = 0, CSP_IO_URING = 1, CSP_IO_PWRITE = 2, CSP_IO_URING_DIRECT = 3 };

/** The largest uncompressed payload a frame may hold (writer and reader). */
#define CSP_MAX_PAYLOAD (64u << 20)

typedef struct csp_writer csp_writer_t;

/**
 * The one place segment files are named: `<directory>/<20-digit sequence>.<suffix>` (suffix
 * `open`, `spill`, `progress`, `damaged`, `rejections`). Safe from any thread.
 *
 * Returns 0, or -ENAMETOOLONG if the path does not fit in `size` bytes.
 */
int csp_segment_path(const char *directory, uint64_t sequence, const char *suffix, char *out, size_t size);

typedef struct csp_writer_options {
	/** The signal's directory; created 0700 when missing. */
	const char *directory;
	/** CSP_SIGNAL_TRACES, CSP_SIGNAL_LOGS or CSP_SIGNAL_METRICS. */
	uint16_t signal;
	/** The sequence number of the first segment this writer creates. */
	uint64_t segment_sequence;
	/** Rotate once a segment reaches this many bytes; 0 for 64 MiB. */
	uint64_t max_segment_bytes;
	/** Rotate a segment older than this (checked on append); 0 for never. */
	uint64_t max_segment_age_ns;
	/** CSP_DURABILITY_*. */
	int durability;
	/** With CSP_DURABILITY_INTERVAL: at most this long between syncs. */
	uint64_t sync_interval_ns;
	/** CSP_IO_*. The library reads no environment: SPILLWAY_SPILL_IO is parsed in Swift. */
	int io;
	/** zstd level (negative: zstd's fast levels; the pipeline writes -1); 0 for 1. */
	int zstd_level;
	/** The segment header's flags (CSP_SEGMENT_REJECTED, ...); 0 for a spilled segment. */
	uint32_t flags;
} csp_writer_options_t;

/** Segment header flag: a segment of the rejected area (FORMAT.md "Areas"). */
#define CSP_SEGMENT_REJECTED 1u

typedef struct csp_frame_info {
	uint64_t segment_sequence;
	uint64_t offset;
	uint32_t compressed_length;
	/** 1 when an fdatasync covered the frame before csp_writer_append() returned. */
	int durable;
} csp_frame_info_t;

/**
 * Opens a writer for one signal directory. Not thread-safe: one thread appends.
 * io_uring is tried first (unless options->io says pwrite); if the
 * kernel or a sandbox refuses it, the writer uses pwrite (see csp_writer_io()).
 *
 * Returns 0 and sets `*writer`, or -errno (-EINVAL for bad options).
 */
int csp_writer_open(const csp_writer_options_t *options, csp_writer_t **writer);

/**
 * Compresses `payload` (one serialized Export*ServiceRequest) into one zstd
 * frame and appends it to the open segment (created on first use, named
 * <sequence>.open), resuming short writes. With CSP_DURABILITY_ALWAYS an
 * fdatasync linked after the write completes first; otherwise, with io_uring,
 * the write may still be running at return (see csp_writer_take_lost()).
 * Rotates when the segment is full. On failure nothing of the frame stays in
 * the file.
 *
 * Returns 0, -EMSGSIZE if `length` > CSP_MAX_PAYLOAD, -ENOSPC when the disk is
 * full, or another -errno.
 */
int csp_writer_append(csp_writer_t *writer, const void *payload, uint32_t length, uint32_t records,
		      uint64_t batch_sequence, csp_frame_info_t *info);

/**
 * With io_uring and no sync due, csp_writer_append() returns once the frame's
 * write is submitted, and compresses the next frame while it runs; the write's
 * result is collected by the next call (append, flush, rotate, close). If it
 * failed, that frame was cut from the file and that call returns the error:
 * this function then says how many frames and records were lost, and in which
 * segment, and resets the count. Returns 1 if anything was lost, 0 otherwise.
 */
int csp_writer_take_lost(csp_writer_t *writer, uint64_t *frames, uint64_t *records, uint64_t *segment);

/** Makes everything appended so far durable (fdatasync). Returns 0 or -errno. */
int csp_writer_flush(csp_writer_t *writer);

/**
 * Ends the open segment: fdatasync, rename <seq>.open to <seq>.spill, fsync of
 * the directory. The next append starts segment seq + 1. Returns 0 or -errno.
 */
int csp_writer_rotate(csp_writer_t *writer);

/** Rotates, then frees the writer. Returns the rotation's result. */
int csp_writer_close(csp_writer_t *writer);

/** CSP_IO_URING or CSP_IO_PWRITE: what the writer uses. */
int csp_writer_io(const csp_writer_t *writer);

/** 1 when the open (or next) segment is written with O_DIRECT. */
int csp_writer_direct(const csp_writer_t *writer);

/** Bytes written since the writer was opened (headers included). */
uint64_t csp_writer_bytes(const csp_writer_t *writer);

/** The sequence of the open segment, or of the next one when none is open. */
uint64_t csp_writer_segment_sequence(const csp_writer_t *writer);

typedef struct csp_segment_header {
	uint16_t version;
	uint16_t signal;
	uint32_t flags;
	uint64_t sequence;
	uint64_t created_ns;
} csp_segment_header_t;

/** csp_frame_t.flags: `records` is the count of an intact, plausible header. */
#define CSP_FRAME_RECORDS_KNOWN 1u
/** csp_frame_t.flags: the frame header's CRC checked out (the damage is after it, or its count is implausible). */
#define CSP_FRAME_HEADER_INTACT 2u

typedef struct csp_frame {
	/** Where the frame (or the damage) starts in the file. */
	uint64_t offset;
	uint32_t compressed_length;
	uint32_t uncompressed_length;
	/**
	 * Records the header names. With -EBADMSG: what was lost, when the header checked out and
	 * its count was plausible (CSP_FRAME_RECORDS_KNOWN); 0 and unknown otherwise.
	 */
	uint32_t records;
	/** CSP_FRAME_RECORDS_KNOWN, CSP_FRAME_HEADER_INTACT. */
	uint32_t flags;
	uint64_t batch_sequence;
	/** The decompressed request; valid until the next call on the reader. */
	const uint8_t *payload;
	/** With -EBADMSG / -ENODATA: bytes skipped. */
	uint64_t skipped_bytes;
} csp_frame_t;

typedef struct csp_reader csp_reader_t;

/**
 * Opens a segment file for reading (memory-mapped, read-only). Safe for one
 * thread per reader. Returns 0, -EBADMSG if the file is not a version-1
 * segment (too short, wrong magic, version or signal), or -errno.
 */
int csp_reader_open(const char *path, csp_reader_t **reader, csp_segment_header_t *header);

/**
 * Reads the next frame, checking both CRCs, that the payload is exactly one
 * zstd frame whose content size is the header's (at most CSP_MAX_PAYLOAD),
 * that the header's record count fits its payload (CSP_MIN_RECORD_BYTES a
 * record), and decompressing it. Padding frames are skipped. A length is
 * bounded by the bytes left in the file: a header that claims more is damage.
 *
 * Returns 1 with `frame` filled, 0 at a clean end, -EBADMSG for damage
 * (skipped: the next call resumes at the next header whose CRC checks out;
 * `frame->records` says what was lost when CSP_FRAME_RECORDS_KNOWN is set),
 * -ENODATA for a torn tail (damage that no valid header follows: what a crash
 * while writing leaves), or -ENOMEM.
 */
int csp_reader_next(csp_reader_t *reader, csp_frame_t *frame);

/**
 * With `on`, csp_reader_next() checks the header and payload CRCs but does not
 * decompress: `frame->payload` is NULL. For counting records quickly.
 */
void csp_reader_set_headers_only(csp_reader_t *reader, int on);

/** The end of the last frame that checked out (where recovery truncates). */
uint64_t csp_reader_valid_end(const csp_reader_t *reader);

/** The file's size. */
uint64_t csp_reader_size(const csp_reader_t *reader);

void csp_reader_close(csp_reader_t *reader);

typedef struct csp_recovery {
	uint64_t frames;
	uint64_t records;
	/** Damaged stretches between intact frames, kept in the file (replay quarantines them). */
	uint64_t damaged;
	uint64_t truncated_bytes;
	/** 1 when the file was cut inside its segment header and was removed. */
	int removed;
} csp_recovery_t;

/**
 * Recovers a segment left `.open` by a crash: keeps everything up to the end
 * of the last frame that checks out (damage between intact frames stays, for
 * replay to quarantine), truncates the torn tail, fdatasyncs, renames it to
 * `.spill` and fsyncs the directory. A file cut inside its segment header is
 * removed. Returns 0 or -errno (-EINVAL if the name does not end in `.open`).
 */
int csp_recover(const char *open_path, csp_recovery_t *result);

#ifdef __cplusplus
}
#endif

#endif /* CSPILL_H */
