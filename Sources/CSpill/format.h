/*
 * The spill format, version 1 (FORMAT.md): sizes, magics, field offsets and
 * little-endian helpers shared by the writer and the reader. Every offset into
 * a segment or frame header is named here and nowhere else.
 */
#ifndef CSPILL_FORMAT_H
#define CSPILL_FORMAT_H

#include <stdint.h>
#include <string.h>

#define CSP_FORMAT_VERSION 1

/* Segment header: 32 bytes at the start of every segment file. */
#define CSP_SEGMENT_HEADER_SIZE 32
#define CSP_SEGMENT_MAGIC 0      /* 8 bytes, "SPILLWAY" */
#define CSP_SEGMENT_VERSION 8    /* u16 */
#define CSP_SEGMENT_SIGNAL 10    /* u16: CSP_SIGNAL_TRACES, _LOGS or _METRICS */
#define CSP_SEGMENT_FLAGS 12     /* u32 */
#define CSP_SEGMENT_SEQUENCE 16  /* u64 */
#define CSP_SEGMENT_CREATED 24   /* u64, Unix nanoseconds */

/* Frame and padding header: 32 bytes. */
#define CSP_FRAME_HEADER_SIZE 32
#define CSP_FRAME_MAGIC 0            /* 4 bytes, "FRM1" or "PAD1" */
#define CSP_FRAME_COMPRESSED 4       /* u32; for PAD1: the zero bytes that follow */
#define CSP_FRAME_UNCOMPRESSED 8     /* u32 */
#define CSP_FRAME_RECORDS 12         /* u32 */
#define CSP_FRAME_BATCH 16           /* u64 */
#define CSP_FRAME_PAYLOAD_CRC 24     /* u32, CRC32C of the compressed payload */
#define CSP_FRAME_HEADER_CRC 28      /* u32, CRC32C of header bytes 0..27 */

/* A record needs at least a tag and a length byte inside its request: a header that names more
 * records than half its uncompressed bytes lies about its count. */
#define CSP_MIN_RECORD_BYTES 2

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
