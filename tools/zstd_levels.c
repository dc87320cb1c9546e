/*
 * zstd levels on a spill segment's own requests: how long each level takes per record and the
 * ratio it reaches, with the libzstd the store links (the spill store's level was chosen with it).
 *
 *   cc -O2 tools/zstd_levels.c -lzstd -o .build/zstd_levels && .build/zstd_levels SEGMENT.spill
 *
 * Reads up to 40 intact frames (FORMAT.md: a 32-byte segment header, then 32-byte frame headers
 * "FRM1", compressed length at 4, uncompressed length at 8, record count at 12), decompresses
 * them, and compresses them 10 times at each level.
 */
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <time.h>
#include <zstd.h>

int main(int argc, char **argv)
{
	if (argc != 2) {
		fprintf(stderr, "usage: %s SEGMENT.spill\n", argv[0]);
		return 2;
	}
	FILE *f = fopen(argv[1], "rb");
	if (!f) {
		perror(argv[1]);
		return 1;
	}
	static unsigned char file[256 << 20];
	size_t n = fread(file, 1, sizeof file, f);
	if (ferror(f)) {
		perror(argv[1]);
		fclose(f);
		return 1;
	}
	fclose(f);
	unsigned char *frames[40];
	size_t lengths[40];
	uint32_t records = 0;
	int count = 0;
	for (size_t at = 32; at + 32 <= n && count < 40 && memcmp(file + at, "FRM1", 4) == 0;) {
		uint32_t compressed, plain, recs;
		memcpy(&compressed, file + at + 4, 4);
		memcpy(&plain, file + at + 8, 4);
		memcpy(&recs, file + at + 12, 4);
		if (at + 32 + compressed > n)
			break;
		frames[count] = malloc(plain);
		if (ZSTD_isError(ZSTD_decompress(frames[count], plain, file + at + 32, compressed)))
			break;
		lengths[count++] = plain;
		records += recs;
		at += 32 + compressed;
	}
	if (count == 0) {
		fprintf(stderr, "%s: no intact frame at the start of the file (not a spill segment?)\n", argv[1]);
		return 1;
	}
	printf("%d frames, %u records, libzstd %s\n", count, records, ZSTD_versionString());
	ZSTD_CCtx *cctx = ZSTD_createCCtx();
	size_t capacity = 64 << 20;
	unsigned char *out = malloc(capacity);
	const int levels[] = { 3, 1, -1, -2, -3, -5 };
	for (size_t l = 0; l < sizeof levels / sizeof levels[0]; l++) {
		struct timespec a, b;
		size_t in = 0, packed = 0;
		clock_gettime(CLOCK_MONOTONIC, &a);
		for (int round = 0; round < 10; round++)
			for (int i = 0; i < count; i++) {
				packed += ZSTD_compressCCtx(cctx, out, capacity, frames[i], lengths[i], levels[l]);
				in += lengths[i];
			}
		clock_gettime(CLOCK_MONOTONIC, &b);
		double seconds = (double)(b.tv_sec - a.tv_sec) + (double)(b.tv_nsec - a.tv_nsec) / 1e9;
		printf("level %2d: %5.0f ns per record, %6.0f MB/s, ratio %.2f\n", levels[l], seconds / (10.0 * records) * 1e9,
		       (double)in / seconds / 1e6, (double)in / (double)packed);
	}
	return 0;
}
