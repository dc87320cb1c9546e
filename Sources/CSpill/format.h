/*
 * The spill format, version 1 (DESIGN.md "Spill format, version 1"): sizes,
 * magics and little-endian helpers shared by the writer and the reader.
 */
#ifndef CSPILL_FORMAT_H
#define CSPILL_FORMAT_H

#include <stdint.h>
#include <string.h>

#define CSP_SEGMENT_HEADER_SIZE 32
#define CSP_FRAME_HEADER_SIZE 32
#define CSP_FORMAT_VERSION 1

static const char csp_segment_magic[8] = { 'S', 'P', 'I', 'L', 'L', 'W', 'A', 'Y' };
static const char csp_frame_magic[4] = { 'F', 'R', 'M', '1' };
static const char csp_pad_magic[4] = { 'P', 'A', 'D', '1' };

static inline void csp_put16(uint8_t *p, uint16_t v) { p[0] = (uint8_t)v; p[1] = (uint8_t)(v >> 8); }
static inline void csp_put32(uint8_t *p, uint32_t v) { for (int i = 0; i < 4; i++) p[i] = (uint8_t)(v >> (8 * i)); }
static inline void csp_put64(uint8_t *p, uint64_t v) { for (int i = 0; i < 8; i++) p[i] = (uint8_t)(v >> (8 * i)); }
static inline uint16_t csp_get16(const uint8_t *p) { return (uint16_t)(p[0] | p[1] << 8); }
static inline uint32_t csp_get32(const uint8_t *p)
{
	return (uint32_t)p[0] | (uint32_t)p[1] << 8 | (uint32_t)p[2] << 16 | (uint32_t)p[3] << 24;
}
static inline uint64_t csp_get64(const uint8_t *p) { return (uint64_t)csp_get32(p) | (uint64_t)csp_get32(p + 4) << 32; }

#endif /* CSPILL_FORMAT_H */
