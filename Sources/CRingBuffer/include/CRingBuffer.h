/*
 * CRingBuffer — a lock-free many-producer / one-consumer ring of variable-length
 * records, after Agrona's ManyToOneRingBuffer.
 *
 * Every record is 8-byte aligned and starts with an 8-byte header: int32 length
 * (header included) and int32 type. A producer claims space by advancing the tail,
 * copies its payload, and publishes the record with a release-store of its header
 * (zero until then: the consumer stops at a zero header). The single consumer reads
 * committed records from the head, zeroes what it consumed and then advances the
 * head. A record that would straddle the end of the buffer is preceded by a
 * padding record. A full ring is reported (-ENOSPC), never overwritten.
 *
 * The ring's cursors and constants live in a 4 KiB header page in front of the
 * records, in the same mapping. crb_create() maps it anonymously; crb_open_file()
 * maps a file MAP_SHARED, so a process that dies leaves every committed record,
 * and the cursors that say which, in the page cache (FORMAT.md "The ring file").
 * A file ring releases space only when told (crb_release()): the consumer reads
 * ahead of the released cursor, and what it read stays in the file until the
 * records are delivered elsewhere.
 *
 * Functions ending in _mpsc are safe for any number of concurrent producers;
 * functions marked "consumer only" must be called from one thread at a time.
 */
#ifndef CRINGBUFFER_H
#define CRINGBUFFER_H

#include <stddef.h>
#include <stdint.h>

#include "crb_cpu.h"
#include "crb_thread.h"

#ifdef __cplusplus
extern "C" {
#endif

/** Size of the record header that precedes every payload. */
#define CRB_HEADER_LENGTH 8
/** Records are aligned to this many bytes. */
#define CRB_ALIGNMENT 8
/** The record type of padding (wrap-around filler and aborted records). */
#define CRB_PADDING_TYPE (-1)
/** Bytes in front of the records: the header page (magic, version, capacity, cursors). */
#define CRB_HEADER_PAGE 4096
/** The ring file's format version (FORMAT.md "The ring file"). */
#define CRB_FILE_VERSION 1

typedef struct crb_ring crb_ring_t;

/** A claimed, not yet committed record. Filled by crb_claim_mpsc(). */
typedef struct crb_claim {
	/** Where the payload goes: `length` writable bytes. */
	uint8_t *data;
	/** Payload length as claimed. */
	uint32_t length;
	/** Offset of the record header in the buffer (private to the ring). */
	uint64_t offset;
	/** The record's position (monotonic: offset plus the laps before it), as crb_drain() counts. */
	uint64_t position;
	/** The record's type (private to the ring: commit compares the whole header). */
	int32_t type;
} crb_claim_t;

/**
 * Creates a ring of `capacity` payload bytes, a power of two of at least 1024.
 * The memory is pre-faulted (first touch costs 7–11 µs per 4 KiB page on the
 * target machines) and kept until crb_destroy().
 *
 * Returns 0 and stores the ring in `*ring`, -EINVAL if `capacity` is not a
 * power of two >= 1024 or is larger than 1 GiB, or -ENOMEM.
 */
int crb_create(size_t capacity, crb_ring_t **ring);

/** What crb_open_file() found in a ring file left by an earlier process. */
typedef struct crb_recovery {
	/** Committed records between the released cursor and the tail: the consumer reads them first. */
	uint64_t committed;
	/** Records claimed and never committed (the producer died between claim and commit): skipped. */
	uint64_t uncommitted;
	/** Bytes skipped after a claim whose header was never written (records in them are lost). */
	uint64_t skipped_bytes;
	/** The file's generation: 1 for a new file, one more on every open. */
	uint64_t generation;
	/** 1 when the file was new (empty), 0 when it held a ring. */
	int created;
	/**
	 * 1 when the file was written before the machine restarted: only the records up to its
	 * synced cursor (crb_sync(): a machine-crash route's group commit) were trusted and read; the
	 * rest is counted in `skipped_bytes`.
	 */
	int after_reboot;
} crb_recovery_t;

/**
 * Called by crb_open_file() for each record found between the cursors of a ring
 * file, with its payload (`length` bytes, complete only when committed):
 * `committed` 1 for a record the consumer will read, 0 for one skipped.
 * Returns the type the record keeps (a committed record's header is rewritten
 * when it differs: a type > 0 renumbers it, CRB_PADDING_TYPE skips it).
 */
typedef int32_t (*crb_recovery_fn)(int32_t type, int committed, const uint8_t *payload, uint32_t length, void *context);

/**
 * Maps the ring file `fd` (open for reading and writing) MAP_SHARED. An empty
 * file becomes a new ring of `capacity` bytes (allocated on disk with
 * posix_fallocate, so no write to the mapping can fault on a full disk, and
 * pre-faulted). A file that holds a ring keeps its own capacity (see
 * crb_capacity()) and its records: the header and every record between the
 * released cursor and the tail are checked, a record claimed but never
 * committed becomes padding (reported to `fn`, which may be NULL), and the free
 * space is zeroed. The ring releases space only through crb_release(). The
 * caller keeps `fd` and closes it after crb_destroy(). `boot_id` (16 bytes,
 * the kernel's boot id) is stored in a new file. A file written in another
 * boot lost the page cache that held its records whole: only what crb_sync()
 * made durable is read (see crb_recovery_t.after_reboot), and a file with
 * nothing synced is refused.
 *
 * Returns 0 and fills `*ring` and `*recovery`; -EINVAL for a bad `capacity`;
 * -EBADMSG if the file is not a ring file this version can trust (too short,
 * wrong magic, version or size, cursors or records out of bounds: nothing is
 * changed); -ESTALE if the file was written before the machine restarted and
 * nothing in it was synced (nothing is changed); -ENOSPC if the disk has no room for a new ring; or -errno.
 */
int crb_open_file(int fd, size_t capacity, const uint8_t boot_id[16], crb_recovery_fn fn, void *context,
		  crb_recovery_t *recovery, crb_ring_t **ring);

/**
 * Reads the ring file `fd` without changing it (a private mapping; safe beside
 * a process that has it open, which may be writing): counts what a
 * crb_open_file() would recover into `*recovery`, shows each record's type to
 * `fn` (may be NULL), and stores the file's capacity in `*capacity`.
 *
 * Returns 0; -ESTALE when the counts are valid but the file was written before
 * the machine restarted (an open would refuse it); -EBADMSG if it is not a ring
 * file this version can read; or -errno.
 */
int crb_inspect_file(int fd, const uint8_t boot_id[16], crb_recovery_fn fn, void *context, crb_recovery_t *recovery,
		     uint64_t *capacity);

/**
 * Frees the space of every record before `position` (a position the consumer
 * has read up to, see crb_read_position()): zeroes it and moves the released
 * cursor, which producers wait for. A position at or before the released cursor
 * does nothing. One thread at a time (rings from crb_create() release in
 * crb_drain() themselves).
 */
void crb_release(crb_ring_t *ring, uint64_t position);

/**
 * Makes the committed records from the synced cursor (or the released one, if
 * it is further) up to the first one not yet committed durable: msync(MS_SYNC)
 * of their pages, then the synced cursor in the header page, msync'ed too. One
 * thread at a time; a ring from crb_open_file(). Stores the range synced in
 * `*from` and `*to` (equal when there was nothing).
 *
 * Returns 0 or -errno from msync (-EIO: the disk failed).
 */
int crb_sync(crb_ring_t *ring, uint64_t *from, uint64_t *to);

/**
 * crb_write_mpsc() that returns the position just past the record (for a wait
 * on crb_sync()), or 0 if the ring is full or the record is too large.
 */
uint64_t crb_write_mpsc_end(crb_ring_t *ring, int32_t type, const void *data, uint32_t length);

/** Releases a ring. No producer or consumer may use it any more. */
void crb_destroy(crb_ring_t *ring);

/** The capacity in bytes that the ring was created with. */
size_t crb_capacity(const crb_ring_t *ring);

/** The largest payload a single record may have: capacity / 8 - header. */
uint32_t crb_max_length(const crb_ring_t *ring);

/**
 * Reserves `length` payload bytes for one record of `type` (> 0). Safe for any
 * number of concurrent producers. A successful claim is followed by exactly one
 * crb_commit() or crb_abort(); until then the consumer stops at this record.
 *
 * Returns 0 and fills `claim`, -ENOSPC if the ring is full, -EMSGSIZE if
 * `length` exceeds crb_max_length(ring), or -EINVAL if `type` <= 0.
 *
 * A producer that stalls between claim and commit stops the consumer until it
 * commits; nothing can take the space back from it, because it may still write
 * there (a stalled producer is slow, never dead, in a process that is running).
 */
int crb_claim_mpsc(crb_ring_t *ring, int32_t type, uint32_t length, crb_claim_t *claim);

/**
 * Like crb_claim_mpsc(), but may also use the reserve that crb_claim_mpsc() leaves free
 * (crb_set_reserve()): for a file ring's relocations (a batch in flight whose records hold the
 * oldest space is copied to the tail so that space can be freed — which must be possible when
 * producers have filled the ring). Safe for any number of concurrent producers.
 */
int crb_claim_reserved(crb_ring_t *ring, int32_t type, uint32_t length, crb_claim_t *claim);

/**
 * Makes crb_claim_mpsc() (and the writes built on it) leave `bytes` of the ring free, at most
 * half of it; 0 (the default) lets producers fill it. Call before producers run.
 */
void crb_set_reserve(crb_ring_t *ring, size_t bytes);

/** Publishes a claimed record to the consumer. Safe for the claiming producer. Returns 0. */
int crb_commit(crb_ring_t *ring, const crb_claim_t *claim);

/** Gives a claimed record up: the consumer skips it. Safe for the claiming producer. Returns 0. */
int crb_abort(crb_ring_t *ring, const crb_claim_t *claim);

/**
 * Claims, copies and commits one record in one call. Safe for any number of
 * concurrent producers.
 *
 * Returns 0, -ENOSPC, -EMSGSIZE or -EINVAL as crb_claim_mpsc().
 */
int crb_write_mpsc(crb_ring_t *ring, int32_t type, const void *data, uint32_t length);

/**
 * Called by crb_drain() with one contiguous run of committed records (headers
 * included, padding excluded), `length` bytes from `run`. The records stay valid
 * only during the call. Iterate them with crb_record_length() / crb_record_type().
 */
typedef void (*crb_drain_fn)(const uint8_t *run, size_t length, uint32_t records, void *context);

/**
 * Hands the committed records at the read cursor, at most `max_bytes` of them
 * (at least one record whatever its size), to `fn` as one contiguous run, then
 * advances the read cursor; a ring from crb_create() also zeroes them and
 * releases their space. During `fn`, crb_read_position() is the position of
 * the run's first byte. Consumer only.
 *
 * Returns the number of records handed to `fn` (0 if none were committed).
 */
uint32_t crb_drain(crb_ring_t *ring, crb_drain_fn fn, void *context, size_t max_bytes);

/** Bytes between the released cursor and the tail (claimed, committed, read or padding). Safe from any thread. */
size_t crb_size(const crb_ring_t *ring);

/** Bytes between the read cursor and the tail: not yet handed to the consumer. Safe from any thread. */
size_t crb_unread(const crb_ring_t *ring);

/** The released cursor: producers may write up to a capacity beyond it. Safe from any thread. */
uint64_t crb_head_position(const crb_ring_t *ring);

/** The consumer's read cursor, for progress checks. Safe from any thread. */
uint64_t crb_read_position(const crb_ring_t *ring);

/** The producer position. Safe from any thread. */
uint64_t crb_tail_position(const crb_ring_t *ring);

/** Length of the payload of the record at `record` (a pointer into a drained run). */
static inline uint32_t crb_record_length(const uint8_t *record)
{
	int32_t length;
	__builtin_memcpy(&length, record, sizeof(length));
	return (uint32_t)length - CRB_HEADER_LENGTH;
}

/** Type of the record at `record` (a pointer into a drained run). */
static inline int32_t crb_record_type(const uint8_t *record)
{
	int32_t type;
	__builtin_memcpy(&type, record + 4, sizeof(type));
	return type;
}

/** Distance from one record to the next in a drained run. */
static inline uint32_t crb_record_stride(const uint8_t *record)
{
	int32_t length;
	__builtin_memcpy(&length, record, sizeof(length));
	return ((uint32_t)length + (CRB_ALIGNMENT - 1)) & ~(uint32_t)(CRB_ALIGNMENT - 1);
}

#ifdef __cplusplus
}
#endif

#endif /* CRINGBUFFER_H */
