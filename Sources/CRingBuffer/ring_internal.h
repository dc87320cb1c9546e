/*
 * The ring's layout and the helpers ring.c and ring_file.c share. Not part of the API.
 */
#ifndef CRB_RING_INTERNAL_H
#define CRB_RING_INTERNAL_H

#include "CRingBuffer.h"

#include <stdatomic.h>
#include <string.h>

/* Two cache lines: x86 prefetches adjacent lines in pairs, so 64 would still share. */
#define CRB_LINE 128


/* The header page at the start of the mapping (of a ring file: its first 4 KiB). Native byte order:
 * a ring file is read back only by the machine that wrote it. Nothing in it is a pointer. */
struct crb_ring {
	/* Written once at creation (checked, never trusted, when a file is opened), read by everybody. */
	char magic[8];
	uint32_t version;
	uint32_t header_length;
	uint64_t capacity;
	uint64_t generation;
	uint64_t mask;
	uint32_t max_length;
	uint32_t manual_release; /* 1: crb_release() frees space; 0: crb_drain() does */
	uint64_t map_length;
	/* Set at run time (crb_set_reserve()), not part of the file's state: bytes crb_claim_mpsc()
	 * leaves free, for crb_claim_reserved() (a file ring's relocations). Read by producers. */
	uint64_t reserve;

	_Alignas(CRB_LINE) _Atomic uint64_t tail;       /* producers: CAS */
	_Alignas(CRB_LINE) _Atomic uint64_t head_cache; /* producers: a recent head, saves reading `head` */
	_Alignas(CRB_LINE) _Atomic uint64_t head;       /* the released cursor: release-store after zeroing */
	_Alignas(CRB_LINE) _Atomic uint64_t read;       /* the consumer's read cursor */
	/* Where a release in progress will move the head: a crash while it zeroes leaves the head behind
	 * zeroed records, and recovery starts here instead. */
	_Alignas(CRB_LINE) _Atomic uint64_t releasing;
	/* The boot (/proc/sys/kernel/random/boot_id) the file was last opened in: after a reboot the
	 * page cache that made the file whole is gone. */
	uint8_t boot_id[16];
	/* Everything before it was made durable by crb_sync() (msync), the header page after it. */
	_Alignas(CRB_LINE) _Atomic uint64_t synced;
	char pad[CRB_LINE - sizeof(uint64_t)];
};

_Static_assert(sizeof(struct crb_ring) <= CRB_HEADER_PAGE, "the ring's header fits its page");

static const char crb_magic[8] __attribute__((unused)) = {'S', 'P', 'W', 'R', 'I', 'N', 'G', '1'};

/* The records start one header page after the header. */
static inline uint8_t *buffer_of(const crb_ring_t *ring)
{
	return (uint8_t *)ring + CRB_HEADER_PAGE;
}

static inline uint64_t align_record(uint64_t length)
{
	return (length + (CRB_ALIGNMENT - 1)) & ~(uint64_t)(CRB_ALIGNMENT - 1);
}

/* Claims, copies and commits one record (crb_write_mpsc(), crb_write_mpsc_end()); `end` gets the
 * position just past it. 0 or -errno as crb_claim_mpsc(). */
static inline int crb_write_record(crb_ring_t *ring, int32_t type, const void *data, uint32_t length, uint64_t *end)
{
	crb_claim_t claim;
	const int rc = crb_claim_mpsc(ring, type, length, &claim);
	if (rc != 0)
		return rc;
	memcpy(claim.data, data, length);
	crb_commit(ring, &claim);
	*end = claim.position + align_record((uint64_t)length + CRB_HEADER_LENGTH);
	return 0;
}

/* The 8-byte record header at `index` (8-byte aligned) as one atomic word. */
static inline _Atomic uint64_t *header_at(const crb_ring_t *ring, uint64_t index)
{
	return (_Atomic uint64_t *)(void *)(buffer_of(ring) + index);
}

/* The header word of (length, type), laid out as the header is in memory (length first). */
static inline uint64_t header(int32_t length, int32_t type)
{
	uint8_t bytes[8];
	uint64_t word;
	memcpy(bytes, &length, 4);
	memcpy(bytes + 4, &type, 4);
	memcpy(&word, bytes, 8);
	return word;
}

static inline int32_t header_length(uint64_t word)
{
	int32_t length;
	memcpy(&length, &word, 4);
	return length;
}

static inline int32_t header_type(uint64_t word)
{
	int32_t type;
	memcpy(&type, (const uint8_t *)&word + 4, 4);
	return type;
}


static inline int valid_capacity(uint64_t capacity)
{
	return capacity >= 1024 && capacity <= (1u << 30) && (capacity & (capacity - 1)) == 0;
}

/* Fills a new ring's header (the page is zero: fresh anonymous memory or a new file). */
void crb_initialize(crb_ring_t *ring, uint64_t capacity, uint32_t manual_release);

#endif /* CRB_RING_INTERNAL_H */
