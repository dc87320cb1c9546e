#define _GNU_SOURCE
#include "CSpill.h"

#include <errno.h>

#include <fcntl.h>
#include <signal.h>

#include "platform.h"
#if CSP_HAVE_URING
#include <liburing.h>
#endif
#include <stdbool.h>
#include <zstd.h>

#if defined(__x86_64__)
#include <cpuid.h>
#endif

static uint32_t crc_table[8][256];
static bool crc_table_ready;

static void crc_table_init(void)
{
	/* Racing initialisers compute the same values; the flag is only a shortcut. */
	for (uint32_t i = 0; i < 256; i++) {
		uint32_t crc = i;
		for (int k = 0; k < 8; k++)
			crc = (crc >> 1) ^ (0x82F63B78u & (0u - (crc & 1)));
		crc_table[0][i] = crc;
	}
	for (uint32_t i = 0; i < 256; i++)
		for (int t = 1; t < 8; t++)
			crc_table[t][i] = (crc_table[t - 1][i] >> 8) ^ crc_table[0][crc_table[t - 1][i] & 0xff];
	__atomic_store_n(&crc_table_ready, true, __ATOMIC_RELEASE);
}

static uint32_t crc32c_table(uint32_t crc, const uint8_t *p, size_t n)
{
	if (!__atomic_load_n(&crc_table_ready, __ATOMIC_ACQUIRE))
		crc_table_init();
	while (n >= 8) {
		uint32_t lo = crc ^ ((uint32_t)p[0] | (uint32_t)p[1] << 8 | (uint32_t)p[2] << 16 | (uint32_t)p[3] << 24);
		crc = crc_table[7][lo & 0xff] ^ crc_table[6][(lo >> 8) & 0xff] ^ crc_table[5][(lo >> 16) & 0xff] ^
		      crc_table[4][lo >> 24] ^ crc_table[3][p[4]] ^ crc_table[2][p[5]] ^ crc_table[1][p[6]] ^
		      crc_table[0][p[7]];
		p += 8;
		n -= 8;
	}
	while (n--)
		crc = (crc >> 8) ^ crc_table[0][(crc ^ *p++) & 0xff];
	return crc;
}

#if defined(__x86_64__)
__attribute__((target("sse4.2"))) static uint32_t crc32c_sse42(uint32_t crc, const uint8_t *p, size_t n)
{
	uint64_t c = crc;
	while (n >= 8) {
		uint64_t v;
		__builtin_memcpy(&v, p, 8);
		c = __builtin_ia32_crc32di(c, v);
		p += 8;
		n -= 8;
	}
	uint32_t c32 = (uint32_t)c;
	while (n--)
		c32 = __builtin_ia32_crc32qi(c32, *p++);
	return c32;
}

static bool has_sse42(void)
{
	unsigned a, b, c, d;
	if (!__get_cpuid(1, &a, &b, &c, &d))
		return false;
	return (c & bit_SSE4_2) != 0;
}
#endif

uint32_t csp_crc32c(uint32_t crc, const void *data, size_t length)
{
	crc = ~crc;
#if defined(__x86_64__)
	static int sse = -1;
	if (sse < 0)
		sse = has_sse42();
	if (sse)
		return ~crc32c_sse42(crc, data, length);
#endif
	return ~crc32c_table(crc, data, length);
}

int csp_uring_probe(void)
{
#if !CSP_HAVE_URING
	return -ENOSYS;
#else
	struct io_uring ring;
	int rc = io_uring_queue_init(2, &ring, 0);
	if (rc < 0)
		return rc;
	io_uring_queue_exit(&ring);
	return 0;
#endif
}

unsigned csp_zstd_version(void)
{
	return ZSTD_versionNumber();
}
