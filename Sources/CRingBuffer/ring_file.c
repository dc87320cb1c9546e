/*
 * The ring file: crb_open_file() creates a ring in a file, or checks and resumes the ring an
 * earlier process left there (FORMAT.md "The ring file"). See CRingBuffer.h.
 */
#define _GNU_SOURCE
#include "ring_internal.h"

#include <errno.h>
#include <fcntl.h>
#include <sys/mman.h>
#include <sys/stat.h>
#include <unistd.h>

/* Writes a padding record over `length` bytes at position `position` (split at the end of the buffer). */
static void pad(crb_ring_t *ring, uint64_t position, uint64_t length)
{
	while (length > 0) {
		const uint64_t index = position & ring->mask;
		const uint64_t run = length < ring->capacity - index ? length : ring->capacity - index;
		/* Relaxed: no other thread maps the ring while it is opened. */
		atomic_store_explicit(header_at(ring, index), header((int32_t)run, CRB_PADDING_TYPE), memory_order_relaxed);
		position += run;
		length -= run;
	}
}

/*
 * Checks a ring an earlier process left, and makes it safe to resume: every record between the
 * released cursor and the tail is walked (bounds, types) and counted in `recovery` (and shown to
 * `fn`), a claim that was never committed becomes padding, and the free space is zeroed. With
 * `apply` 0 nothing is written (a first pass, so that a file that fails the check is left as it
 * was; an inspection). Returns 0 or -EBADMSG.
 */
static int recover(crb_ring_t *ring, int apply, crb_recovery_fn fn, void *context, crb_recovery_t *recovery)
{
	uint64_t head = atomic_load_explicit(&ring->head, memory_order_relaxed);
	const uint64_t tail = atomic_load_explicit(&ring->tail, memory_order_relaxed);
	const uint64_t releasing = atomic_load_explicit(&ring->releasing, memory_order_relaxed);
	/* A release was zeroing when the process died: its records were delivered. */
	if (releasing > head && releasing <= tail)
		head = releasing;
	if (tail < head || tail - head > ring->capacity || (head & (CRB_ALIGNMENT - 1)) != 0 ||
	    (tail & (CRB_ALIGNMENT - 1)) != 0)
		return -EBADMSG;
	uint64_t position = head;
	while (position < tail) {
		const uint64_t index = position & ring->mask;
		const uint64_t word = atomic_load_explicit(header_at(ring, index), memory_order_relaxed);
		const int32_t length = header_length(word);
		const int32_t type = header_type(word);
		if (length == 0 && type == 0) {
			/* Claimed (the tail moved past it) and died before its header was written: its length
			 * is unknown, so everything from here to the tail is skipped. */
			recovery->skipped_bytes += tail - position;
			if (apply)
				pad(ring, position, tail - position);
			break;
		}
		const uint64_t size = length < 0 ? (uint64_t)(-(int64_t)length) : (uint64_t)length;
		const uint64_t stride = align_record(size);
		if (size < CRB_HEADER_LENGTH || stride > tail - position || index + stride > ring->capacity)
			return -EBADMSG;
		if (type == CRB_PADDING_TYPE) {
			if (length < 0)
				return -EBADMSG;
		} else if (type <= 0 || size > (uint64_t)ring->max_length + CRB_HEADER_LENGTH) {
			return -EBADMSG;
		} else {
			const uint8_t *payload = buffer_of(ring) + index + CRB_HEADER_LENGTH;
			const int32_t kept =
				fn != NULL ? fn(type, length > 0, payload, (uint32_t)(size - CRB_HEADER_LENGTH), context) : type;
			if (length > 0 && kept != CRB_PADDING_TYPE) {
				recovery->committed++;
				if (apply && kept > 0 && kept != type)
					atomic_store_explicit(header_at(ring, index), header(length, kept), memory_order_relaxed);
			} else {
				recovery->uncommitted++;
				if (apply)
					pad(ring, position, stride);
			}
		}
		position += stride;
	}
	if (apply) {
		/* The free space: zero (a producer's claim relies on it), whatever a damaged file held. */
		const uint64_t free_start = tail & ring->mask;
		const uint64_t free_length = ring->capacity - (tail - head);
		const uint64_t first = free_length < ring->capacity - free_start ? free_length : ring->capacity - free_start;
		memset(buffer_of(ring) + free_start, 0, (size_t)first);
		memset(buffer_of(ring), 0, (size_t)(free_length - first));
		atomic_store_explicit(&ring->read, head, memory_order_relaxed);
		atomic_store_explicit(&ring->head, head, memory_order_relaxed);
		atomic_store_explicit(&ring->releasing, head, memory_order_relaxed);
		atomic_store_explicit(&ring->head_cache, head, memory_order_relaxed);
	}
	return 0;
}

/* Reads and checks the header of a ring file of `size` bytes. Returns 0, -EBADMSG or -ESTALE. */
static int check_header(int fd, uint64_t size, const uint8_t boot_id[16])
{
	crb_ring_t header;
	if (size < sizeof(header) || pread(fd, &header, sizeof(header), 0) != (ssize_t)sizeof(header))
		return -EBADMSG;
	if (memcmp(header.magic, crb_magic, sizeof(crb_magic)) != 0 || header.version != CRB_FILE_VERSION ||
	    header.header_length != CRB_HEADER_PAGE || !valid_capacity(header.capacity) || size != CRB_HEADER_PAGE + header.capacity)
		return -EBADMSG;
	if (memcmp(header.boot_id, boot_id, sizeof(header.boot_id)) != 0)
		return -ESTALE;
	return 0;
}

/* The fields derived from the capacity: recomputed, never read from a file. */
static void derive(crb_ring_t *ring, uint64_t length)
{
	ring->mask = ring->capacity - 1;
	ring->max_length = (uint32_t)(ring->capacity / 8) - CRB_HEADER_LENGTH;
	ring->manual_release = 1;
	ring->map_length = length;
}

int crb_open_file(int fd, size_t capacity, const uint8_t boot_id[16], crb_recovery_fn fn, void *context, crb_recovery_t *recovery,
		  crb_ring_t **out)
{
	if (!valid_capacity(capacity))
		return -EINVAL;
	memset(recovery, 0, sizeof(*recovery));
	struct stat st;
	if (fstat(fd, &st) != 0)
		return -errno;
	const int created = st.st_size == 0;
	uint64_t length = CRB_HEADER_PAGE + capacity;
	if (created) {
		/* Blocks on disk now: a write to a hole of a shared mapping on a full disk is a SIGBUS. */
		const int rc = posix_fallocate(fd, 0, (off_t)length);
		if (rc != 0)
			return -rc;
	} else {
		const int rc = check_header(fd, (uint64_t)st.st_size, boot_id);
		if (rc != 0)
			return rc;
		length = (uint64_t)st.st_size;
	}
#if defined(MAP_POPULATE)
	void *memory = mmap(NULL, (size_t)length, PROT_READ | PROT_WRITE, MAP_SHARED | MAP_POPULATE, fd, 0);
#else
	void *memory = mmap(NULL, (size_t)length, PROT_READ | PROT_WRITE, MAP_SHARED, fd, 0);
#endif
	if (memory == MAP_FAILED)
		return -errno;
	crb_ring_t *ring = memory;
	if (created) {
		crb_initialize(ring, capacity, 1);
		memcpy(ring->boot_id, boot_id, sizeof(ring->boot_id));
		recovery->created = 1;
	} else {
		derive(ring, length);
		crb_recovery_t check;
		memset(&check, 0, sizeof(check));
		if (recover(ring, 0, NULL, NULL, &check) != 0) {
			munmap(memory, (size_t)length);
			return -EBADMSG;
		}
		(void)recover(ring, 1, fn, context, recovery);
		ring->generation++;
	}
#ifndef MAP_POPULATE
	for (uint64_t offset = 0; offset < length; offset += 4096)
		(void)((volatile uint8_t *)memory)[offset];
#endif
	recovery->generation = ring->generation;
	*out = ring;
	return 0;
}


int crb_inspect_file(int fd, const uint8_t boot_id[16], crb_recovery_fn fn, void *context, crb_recovery_t *recovery,
		     uint64_t *capacity)
{
	memset(recovery, 0, sizeof(*recovery));
	struct stat st;
	if (fstat(fd, &st) != 0)
		return -errno;
	const int rc = check_header(fd, (uint64_t)st.st_size, boot_id);
	if (rc == -EBADMSG)
		return rc;
	/* Private: the derived fields written below never reach the file, nor a running process. */
	void *memory = mmap(NULL, (size_t)st.st_size, PROT_READ | PROT_WRITE, MAP_PRIVATE, fd, 0);
	if (memory == MAP_FAILED)
		return -errno;
	crb_ring_t *ring = memory;
	derive(ring, (uint64_t)st.st_size);
	const int checked = recover(ring, 0, fn, context, recovery);
	recovery->generation = ring->generation;
	*capacity = ring->capacity;
	munmap(memory, (size_t)st.st_size);
	return checked != 0 ? checked : rc;
}
