/*
 * The many-producer / one-consumer ring. See CRingBuffer.h for the protocol.
 *
 * Ordering pairs, named where they are used:
 *   R1 (commit, release header)       → A1 (drain, acquire header)
 *   R2 (wrap padding, release header) → A1
 *   R4 (abort, release header)        → A1
 *   R3 (release, release head)        → A3 (claim, acquire head)
 *   R5 (claim, release head cache)    → A5 (claim, acquire head cache)
 *   R6 (drain, release read)          → crb_release (acquire read)
 *
 * A record header (int32 length, int32 type) is one 64-bit atomic word, zero until the record is
 * committed (or aborted, or is wrap padding): the consumer stops at a zero header and goes on once
 * it turns positive. There is no way to take a claimed record back from a producer that stalls
 * between claim and commit (Agrona's "unblock"): the producer still holds a pointer into the space,
 * and a write it makes after the space was handed to another producer would corrupt that record
 * and the consumer's walk (found by the ring's stress test under ThreadSanitizer: a payload read as
 * a header). A stalled producer stops the consumer until it commits; the ring fills behind it and
 * further writes report -ENOSPC, counted by the caller.
 */
#define _GNU_SOURCE
#include "ring_internal.h"

#include <errno.h>
#include <fcntl.h>
#include <stdatomic.h>
#include <stdlib.h>
#include <string.h>
#include <sys/mman.h>
#include <sys/stat.h>
#include <unistd.h>

/* crb_thread.h: the emit path's per-thread pointer. */
_Thread_local void *crb_thread_slot __attribute__((tls_model("initial-exec"))) = NULL;

void crb_initialize(crb_ring_t *ring, uint64_t capacity, uint32_t manual_release)
{
	memcpy(ring->magic, crb_magic, sizeof(crb_magic));
	ring->version = CRB_FILE_VERSION;
	ring->header_length = CRB_HEADER_PAGE;
	ring->capacity = capacity;
	ring->generation = 1;
	ring->mask = capacity - 1;
	ring->max_length = (uint32_t)(capacity / 8) - CRB_HEADER_LENGTH;
	ring->manual_release = manual_release;
	ring->map_length = CRB_HEADER_PAGE + capacity;
	ring->reserve = 0;
	atomic_init(&ring->tail, 0);
	atomic_init(&ring->head_cache, 0);
	atomic_init(&ring->head, 0);
	atomic_init(&ring->read, 0);
	atomic_init(&ring->releasing, 0);
	atomic_init(&ring->synced, 0);
}

int crb_create(size_t capacity, crb_ring_t **out)
{
	if (!valid_capacity(capacity))
		return -EINVAL;
	const size_t length = CRB_HEADER_PAGE + capacity;

	/* MAP_POPULATE pre-faults every page now, so no producer pays the first touch (elsewhere
	 * the pages are touched by hand below). */
#if defined(MAP_POPULATE)
	void *memory = mmap(NULL, length, PROT_READ | PROT_WRITE, MAP_PRIVATE | MAP_ANONYMOUS | MAP_POPULATE, -1, 0);
#else
	void *memory = mmap(NULL, length, PROT_READ | PROT_WRITE, MAP_PRIVATE | MAP_ANONYMOUS, -1, 0);
#endif
	if (memory == MAP_FAILED)
		return -ENOMEM;
#ifndef MAP_POPULATE
	for (size_t offset = 0; offset < length; offset += 4096)
		((volatile uint8_t *)memory)[offset] = 0;
#endif
	crb_initialize(memory, capacity, 0);
	*out = memory;
	return 0;
}

void crb_destroy(crb_ring_t *ring)
{
	if (ring == NULL)
		return;
	munmap(ring, (size_t)ring->map_length);
}

size_t crb_capacity(const crb_ring_t *ring)
{
	return (size_t)ring->capacity;
}

uint32_t crb_max_length(const crb_ring_t *ring)
{
	return ring->max_length;
}

/* Reads the consumer's head and publishes it to the other producers as the cache. */
static inline uint64_t refresh_head(crb_ring_t *ring)
{
	/* A3: pairs with R3 in crb_drain(): the space behind this head was zeroed
	 * by the consumer before it moved the head, so our writes land after it. */
	uint64_t head = atomic_load_explicit(&ring->head, memory_order_acquire);
	/* R5: pairs with A5 below: a producer that uses this cached head inherits
	 * the happens-before edge of A3. */
	atomic_store_explicit(&ring->head_cache, head, memory_order_release);
	return head;
}

/* A claim that leaves `reserve` bytes of the ring free (0: may fill it). */
/* Always inlined, as is crb_claim_mpsc() into crb_write_mpsc(): the calls, their saved registers and
 * the claim written to memory and read back cost the emit path ~30 instructions a record. */
static inline __attribute__((always_inline)) int claim_space(crb_ring_t *ring, int32_t type, uint32_t length, crb_claim_t *claim,
								       uint64_t reserve)
{
	if (type <= 0)
		return -EINVAL;
	if (length > ring->max_length)
		return -EMSGSIZE;

	const uint64_t capacity = ring->capacity;
	const int64_t limit = (int64_t)capacity - (int64_t)reserve;
	const uint64_t required = align_record((uint64_t)length + CRB_HEADER_LENGTH);
	/* A5: pairs with R5 in refresh_head(). */
	uint64_t head = atomic_load_explicit(&ring->head_cache, memory_order_acquire);
	/* Relaxed: the tail carries no data; the CAS below decides ownership. */
	uint64_t tail = atomic_load_explicit(&ring->tail, memory_order_relaxed);
	uint64_t padding;
	uint64_t tail_index;

	do {
		/* Signed: a cached head can be more than a lap behind the tail, and a
		 * fresh head can be ahead of a stale tail (the CAS then fails). */
		if ((int64_t)required > limit - (int64_t)(tail - head)) {
			head = refresh_head(ring);
			if ((int64_t)required > limit - (int64_t)(tail - head))
				return -ENOSPC;
		}
		padding = 0;
		tail_index = tail & ring->mask;
		const uint64_t to_end = capacity - tail_index;
		if (required > to_end) {
			/* Wrap: the record goes to the start, the rest of the end becomes
			 * padding, and the start must be free up to `required` (and the
			 * padding must leave the reserve). */
			if (required > (head & ring->mask) || (int64_t)(to_end + required) > limit - (int64_t)(tail - head)) {
				head = refresh_head(ring);
				if (required > (head & ring->mask) || (int64_t)(to_end + required) > limit - (int64_t)(tail - head))
					return -ENOSPC;
			}
			padding = to_end;
		}
		/* Relaxed on both paths: ownership only; data is published by R1/R2. */
	} while (!atomic_compare_exchange_weak_explicit(&ring->tail, &tail, tail + padding + required,
							memory_order_relaxed, memory_order_relaxed));

	if (padding != 0) {
		/* R2: pairs with A1 in crb_drain(): length and padding type appear together. */
		atomic_store_explicit(header_at(ring, tail_index), header((int32_t)padding, CRB_PADDING_TYPE),
				      memory_order_release);
		tail_index = 0;
	}

	/* Relaxed: the negative length marks the space as claimed for a recovery after a crash (the
	 * consumer stops here as at a zero header); crb_commit() or crb_abort() publishes the record. */
	atomic_store_explicit(header_at(ring, tail_index), header(-(int32_t)(length + CRB_HEADER_LENGTH), type),
			      memory_order_relaxed);
	claim->type = type;
	claim->data = buffer_of(ring) + tail_index + CRB_HEADER_LENGTH;
	claim->length = length;
	claim->offset = tail_index;
	claim->position = tail + padding;
	return 0;
}

__attribute__((always_inline)) int crb_claim_mpsc(crb_ring_t *ring, int32_t type, uint32_t length, crb_claim_t *out)
{
	return claim_space(ring, type, length, out, ring->reserve);
}

int crb_claim_reserved(crb_ring_t *ring, int32_t type, uint32_t length, crb_claim_t *out)
{
	return claim_space(ring, type, length, out, 0);
}

void crb_set_reserve(crb_ring_t *ring, size_t bytes)
{
	/* Plain store: set once, before producers run (crb_claim_mpsc reads it plainly). */
	ring->reserve = bytes < ring->capacity / 2 ? bytes : ring->capacity / 2;
}

int crb_commit(crb_ring_t *ring, const crb_claim_t *claim)
{
	const int32_t size = (int32_t)(claim->length + CRB_HEADER_LENGTH);
	/* R1: pairs with A1 in crb_drain(): the payload written above is visible to the consumer
	 * once it sees the positive length. */
	atomic_store_explicit(header_at(ring, claim->offset), header(size, claim->type), memory_order_release);
	return 0;
}

int crb_abort(crb_ring_t *ring, const crb_claim_t *claim)
{
	const int32_t size = (int32_t)(claim->length + CRB_HEADER_LENGTH);
	/* R4: pairs with A1 in crb_drain(): the consumer sees the padding type and skips. */
	atomic_store_explicit(header_at(ring, claim->offset), header(size, CRB_PADDING_TYPE), memory_order_release);
	return 0;
}

int crb_write_mpsc(crb_ring_t *ring, int32_t type, const void *data, uint32_t length)
{
	uint64_t end;
	return crb_write_record(ring, type, data, length, &end);
}

/* Zeroes the records between the released cursor and `position`, then moves the cursor. */
static void release_to(crb_ring_t *ring, uint64_t head, uint64_t position)
{
	/* Relaxed, then a compiler barrier: only a crash of this process reads it (recover()), and it
	 * sees this thread's stores in program order. */
	atomic_store_explicit(&ring->releasing, position, memory_order_relaxed);
	atomic_signal_fence(memory_order_seq_cst);
	while (head < position) {
		const uint64_t index = head & ring->mask;
		const uint64_t left = ring->capacity - index;
		const uint64_t run = position - head < left ? position - head : left;
		memset(buffer_of(ring) + index, 0, (size_t)run);
		head += run;
	}
	/* R3: pairs with A3 in refresh_head(): producers reuse this space only
	 * after they see the head move, so they never see our zeroes late. */
	atomic_store_explicit(&ring->head, head, memory_order_release);
}

void crb_release(crb_ring_t *ring, uint64_t position)
{
	/* Relaxed: the releasing thread is the only writer of the head (one at a time, by contract). */
	const uint64_t head = atomic_load_explicit(&ring->head, memory_order_relaxed);
	/* Acquire: pairs with the release-store of `read` in crb_drain(), so a caller on another
	 * thread than the consumer never releases beyond what was read. */
	const uint64_t read = atomic_load_explicit(&ring->read, memory_order_acquire);
	if (position > read)
		position = read;
	if (position > head)
		release_to(ring, head, position);
}

uint32_t crb_drain(crb_ring_t *ring, crb_drain_fn fn, void *context, size_t max_bytes)
{
	for (;;) {
		/* Relaxed: only this thread writes the read cursor. */
		const uint64_t read = atomic_load_explicit(&ring->read, memory_order_relaxed);
		const uint64_t read_index = read & ring->mask;
		/* A3': read the released cursor (acquire, pairs with R3): a file ring's read records stay
		 * until released, so at head + capacity the next "header" is the oldest unreleased record,
		 * not a new one. The walk stops there (a stale head only makes the walk shorter). */
		const uint64_t head = atomic_load_explicit(&ring->head, memory_order_acquire);
		const uint64_t to_end = ring->capacity - read_index;
		const uint64_t unreleased_limit = head + ring->capacity - read;
		const uint64_t contiguous = to_end < unreleased_limit ? to_end : unreleased_limit;
		uint64_t bytes = 0;
		uint32_t records = 0;

		while (bytes < contiguous) {
			/* A1: pairs with R1 in crb_commit(), R2 in crb_claim_mpsc() and R4 in
			 * crb_abort(): header and payload are complete once the length is positive. */
			const uint64_t word = atomic_load_explicit(header_at(ring, read_index + bytes), memory_order_acquire);
			const int32_t length = header_length(word);
			if (length <= 0)
				break;
			const uint64_t stride = align_record((uint64_t)length);
			if (bytes > 0 && bytes + stride > max_bytes)
				break;
			const int32_t type = header_type(word);
			if (type != CRB_PADDING_TYPE)
				records++;
			bytes += stride;
		}
		if (bytes == 0)
			return 0;

		if (records > 0)
			fn(buffer_of(ring) + read_index, (size_t)bytes, records, context);

		/* R6: pairs with the acquire load of `read` in crb_release(). */
		atomic_store_explicit(&ring->read, read + bytes, memory_order_release);
		if (!ring->manual_release)
			release_to(ring, read, read + bytes);

		/* A run of only padding (the wrap filler, aborted records) is consumed
		 * and the drain goes on from the new head, so callers can treat 0 as empty. */
		if (records > 0)
			return records;
	}
}

size_t crb_size(const crb_ring_t *ring)
{
	/* Acquire both: a snapshot for statistics; head first so that tail >= head. */
	const uint64_t head = atomic_load_explicit(&ring->head, memory_order_acquire);
	const uint64_t tail = atomic_load_explicit(&ring->tail, memory_order_acquire);
	return (size_t)(tail - head);
}

size_t crb_unread(const crb_ring_t *ring)
{
	/* Acquire both: a snapshot; read first so that tail >= read. */
	const uint64_t read = atomic_load_explicit(&ring->read, memory_order_acquire);
	const uint64_t tail = atomic_load_explicit(&ring->tail, memory_order_acquire);
	return (size_t)(tail - read);
}

uint64_t crb_head_position(const crb_ring_t *ring)
{
	return atomic_load_explicit(&ring->head, memory_order_acquire);
}

uint64_t crb_read_position(const crb_ring_t *ring)
{
	return atomic_load_explicit(&ring->read, memory_order_acquire);
}

uint64_t crb_tail_position(const crb_ring_t *ring)
{
	return atomic_load_explicit(&ring->tail, memory_order_acquire);
}
