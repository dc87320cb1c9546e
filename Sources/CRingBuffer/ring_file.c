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

/* The stride of the record whose header `word` sits at `position`, if it is plausible there (length
 * from a header to an eighth of the capacity, inside the buffer and before `end`, a type > 0 or
 * padding); 0 otherwise. */
static uint64_t plausible(const crb_ring_t *ring, uint64_t position, uint64_t end, uint64_t word)
{
	const int32_t length = header_length(word);
	const int32_t type = header_type(word);
	const uint64_t size = length < 0 ? (uint64_t)(-(int64_t)length) : (uint64_t)length;
	const uint64_t stride = align_record(size);
	if (size < CRB_HEADER_LENGTH || stride > end - position || (position & ring->mask) + stride > ring->capacity)
		return 0;
	if (type == CRB_PADDING_TYPE)
		return length > 0 ? stride : 0;
	if (type <= 0 || size > (uint64_t)ring->max_length + CRB_HEADER_LENGTH)
		return 0;
	return stride;
}

/* Whether plausible records lead from `position` to exactly `end`. */
static int chain_reaches(const crb_ring_t *ring, uint64_t position, uint64_t end)
{
	while (position < end) {
		const uint64_t stride = plausible(ring, position, end, atomic_load_explicit(header_at(ring, position & ring->mask),
											 memory_order_relaxed));
		if (stride == 0)
			return 0;
		position += stride;
	}
	return position == end;
}

/* After a zero header at `position` (a claim that died before writing its header; released space a
 * machine crash wrote back before the header page), the first nonzero word from which plausible
 * records lead to `end`, or `end`. */
static uint64_t resynchronize(const crb_ring_t *ring, uint64_t position, uint64_t end)
{
	for (uint64_t at = position + CRB_ALIGNMENT; at < end; at += CRB_ALIGNMENT) {
		if (atomic_load_explicit(header_at(ring, at & ring->mask), memory_order_relaxed) != 0)
			return chain_reaches(ring, at, end) ? at : end;
	}
	return end;
}

/*
 * Checks a ring an earlier process left, and makes it safe to resume: every record between the
 * released cursor and `end` (the tail; the synced cursor after a reboot) is walked (bounds, types)
 * and counted in `recovery` (and shown to `fn`), a claim that was never committed becomes padding,
 * a stretch of zeros is skipped to the next chain of records that leads to the end, and the free
 * space is zeroed. With `apply` 0 nothing is written (a first pass, so that a file that fails the
 * check is left as it was; an inspection). Returns 0 or -EBADMSG.
 */
static int recover(crb_ring_t *ring, int apply, uint64_t end, crb_recovery_fn fn, void *context, crb_recovery_t *recovery)
{
	uint64_t head = atomic_load_explicit(&ring->head, memory_order_relaxed);
	const uint64_t releasing = atomic_load_explicit(&ring->releasing, memory_order_relaxed);
	/* A release was zeroing when the process died: its records were delivered. */
	if (releasing > head && releasing <= end)
		head = releasing;
	if (end < head || end - head > ring->capacity || (head & (CRB_ALIGNMENT - 1)) != 0 || (end & (CRB_ALIGNMENT - 1)) != 0)
		return -EBADMSG;
	uint64_t position = head;
	while (position < end) {
		const uint64_t index = position & ring->mask;
		const uint64_t word = atomic_load_explicit(header_at(ring, index), memory_order_relaxed);
		if (word == 0) {
			const uint64_t next = resynchronize(ring, position, end);
			recovery->skipped_bytes += next - position;
			if (apply)
				pad(ring, position, next - position);
			position = next;
			continue;
		}
		const uint64_t stride = plausible(ring, position, end, word);
		if (stride == 0)
			return -EBADMSG;
		const int32_t length = header_length(word);
		const int32_t type = header_type(word);
		if (type != CRB_PADDING_TYPE) {
			const uint8_t *payload = buffer_of(ring) + index + CRB_HEADER_LENGTH;
			const uint32_t size = (uint32_t)(length < 0 ? -length : length) - CRB_HEADER_LENGTH;
			const int32_t kept = fn != NULL ? fn(type, length > 0, payload, size, context) : type;
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
		const uint64_t free_start = end & ring->mask;
		const uint64_t free_length = ring->capacity - (end - head);
		const uint64_t first = free_length < ring->capacity - free_start ? free_length : ring->capacity - free_start;
		memset(buffer_of(ring) + free_start, 0, (size_t)first);
		memset(buffer_of(ring), 0, (size_t)(free_length - first));
		atomic_store_explicit(&ring->tail, end, memory_order_relaxed);
		atomic_store_explicit(&ring->read, head, memory_order_relaxed);
		atomic_store_explicit(&ring->head, head, memory_order_relaxed);
		atomic_store_explicit(&ring->releasing, head, memory_order_relaxed);
		atomic_store_explicit(&ring->head_cache, head, memory_order_relaxed);
		atomic_store_explicit(&ring->synced, head, memory_order_relaxed);
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
	ring->reserve = 0; /* a run-time setting of the process that had it open */
}

/* Where recovery stops: the tail, or, for a file from before a reboot, the synced cursor (what a
 * group commit made durable); 0 when a file from before a reboot was never synced. */
static uint64_t trusted_end(const crb_ring_t *ring, int other_boot)
{
	const uint64_t tail = atomic_load_explicit(&ring->tail, memory_order_relaxed);
	if (!other_boot)
		return tail;
	const uint64_t synced = atomic_load_explicit(&ring->synced, memory_order_relaxed);
	uint64_t head = atomic_load_explicit(&ring->head, memory_order_relaxed);
	const uint64_t releasing = atomic_load_explicit(&ring->releasing, memory_order_relaxed);
	if (releasing > head && releasing <= tail)
		head = releasing;
	/* Never synced: no group commit ran, nothing in it can be trusted. Otherwise what was synced and
	 * not yet released (records before the head were delivered or spilled). */
	if (synced == 0 || synced > tail)
		return 0;
	return synced > head ? synced : head;
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
	int other_boot = 0;
	if (created) {
		/* Blocks on disk now: a write to a hole of a shared mapping on a full disk is a SIGBUS. */
		const int rc = posix_fallocate(fd, 0, (off_t)length);
		if (rc != 0)
			return -rc;
	} else {
		const int rc = check_header(fd, (uint64_t)st.st_size, boot_id);
		if (rc != 0 && rc != -ESTALE)
			return rc;
		other_boot = rc == -ESTALE;
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
		const uint64_t end = trusted_end(ring, other_boot);
		if (end == 0) {
			/* Written before a reboot, and nothing synced: the page cache that held it is gone. */
			munmap(memory, (size_t)length);
			return -ESTALE;
		}
		crb_recovery_t check;
		memset(&check, 0, sizeof(check));
		if (recover(ring, 0, end, NULL, NULL, &check) != 0) {
			munmap(memory, (size_t)length);
			return -EBADMSG;
		}
		const uint64_t tail = atomic_load_explicit(&ring->tail, memory_order_relaxed);
		(void)recover(ring, 1, end, fn, context, recovery);
		if (other_boot) {
			/* What was never synced cannot be trusted after a reboot: counted, not read. */
			recovery->skipped_bytes += tail - end;
			recovery->after_reboot = 1;
			memcpy(ring->boot_id, boot_id, sizeof(ring->boot_id));
		}
		ring->generation++;
	}
	/* Not dirtied here: the first write to a clean page of a shared file mapping faults (the kernel
	 * tracks dirty pages), about 2 µs a page, once per page and again after the kernel wrote it back
	 * (every 30 s by default): 16 ms a 32 MiB lap. Dirtying all of it at open cost every pipeline a
	 * 32 MiB write-back, which slowed the fsyncs of spill stores beside it (ext4 data=ordered). */
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
	int rc = check_header(fd, (uint64_t)st.st_size, boot_id);
	if (rc == -EBADMSG)
		return rc;
	/* Private: the derived fields written below never reach the file, nor a running process. */
	void *memory = mmap(NULL, (size_t)st.st_size, PROT_READ | PROT_WRITE, MAP_PRIVATE, fd, 0);
	if (memory == MAP_FAILED)
		return -errno;
	crb_ring_t *ring = memory;
	derive(ring, (uint64_t)st.st_size);
	uint64_t end = trusted_end(ring, rc == -ESTALE);
	if (end != 0 && rc == -ESTALE) {
		recovery->after_reboot = 1;
		rc = 0;
	}
	if (end == 0)
		end = atomic_load_explicit(&ring->tail, memory_order_relaxed);
	const int checked = recover(ring, 0, end, fn, context, recovery);
	recovery->generation = ring->generation;
	*capacity = ring->capacity;
	munmap(memory, (size_t)st.st_size);
	return checked != 0 ? checked : rc;
}

int crb_sync(crb_ring_t *ring, uint64_t *from, uint64_t *to)
{
	uint64_t start;
	uint64_t end;
	for (;;) {
		/* Acquire: pairs with R3 (the release of the head): records before it were delivered. */
		const uint64_t head = atomic_load_explicit(&ring->head, memory_order_acquire);
		const uint64_t synced = atomic_load_explicit(&ring->synced, memory_order_relaxed);
		start = synced > head ? synced : head;
		/* Acquire: pairs with the producers' CAS (the tail carries no data; the headers do). */
		const uint64_t tail = atomic_load_explicit(&ring->tail, memory_order_acquire);
		end = start;
		while (end < tail) {
			/* A1': pairs with R1/R2/R4: a positive header means the payload before it is written,
			 * so the pages copied below hold the whole record. The walk stops at a claim not yet
			 * committed: what follows waits for the next sync. */
			const uint64_t word = atomic_load_explicit(header_at(ring, end & ring->mask), memory_order_acquire);
			if (header_length(word) <= 0)
				break;
			end += align_record((uint64_t)header_length(word));
		}
		/* Acquire, as above: if the head passed the start meanwhile, the walk may have read a newer
		 * lap's headers at the old positions; walk again from the new head. */
		if (atomic_load_explicit(&ring->head, memory_order_acquire) <= start)
			break;
	}
	*from = start;
	*to = end;
	if (end > start) {
		const uint64_t page = 4096;
		uint64_t position = start & ~(page - 1);
		while (position < end) {
			const uint64_t index = position & ring->mask;
			const uint64_t run_end = end - position < ring->capacity - index ? end : position + (ring->capacity - index);
			const uint64_t length = run_end - position;
			if (msync(buffer_of(ring) + index, (size_t)length, MS_SYNC) != 0)
				return -errno;
			position += length;
		}
	}
	/* Relaxed: the header page's msync below carries it to the disk; producers wait on the
	 * caller's own record of this sync, published after the msync. */
	atomic_store_explicit(&ring->synced, end, memory_order_relaxed);
	if (msync(ring, CRB_HEADER_PAGE, MS_SYNC) != 0)
		return -errno;
	return 0;
}

uint64_t crb_write_mpsc_end(crb_ring_t *ring, int32_t type, const void *data, uint32_t length)
{
	uint64_t end;
	return crb_write_record(ring, type, data, length, &end) == 0 ? end : 0;
}
