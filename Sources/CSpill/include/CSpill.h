/*
 * CSpill — spill segment files for Spillway (see DESIGN.md "Spill format, version 1").
 *
 * This first version holds the pieces that the spine needs and that later work
 * builds on: CRC32C, a probe for io_uring, and the version of the linked zstd.
 * The segment writer, reader and recovery arrive with the spill issue.
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

#ifdef __cplusplus
}
#endif

#endif /* CSPILL_H */
