/*
 * libFuzzer target for the spill segment reader and recovery (make fuzz).
 * Each input is written to a memory file and read frame by frame, then a copy
 * named .open is recovered; any crash, leak or unbounded allocation is a bug.
 */
#define _GNU_SOURCE
#include <errno.h>
#include <fcntl.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/mman.h>
#include <unistd.h>

#include "CSpill.h"

/* Writes a copy of the segment `bytes` with one 32-bit field of the frame header at `frame`
 * forged and the header CRC made valid again: the hostile headers of FORMAT.md's damage rules. */
static void forged_copy(const char *directory, const char *name, const uint8_t *bytes, size_t size, size_t frame, int field,
			uint32_t value)
{
	uint8_t *copy = malloc(size);
	if (!copy || frame + 32 > size) {
		free(copy);
		return;
	}
	memcpy(copy, bytes, size);
	for (int i = 0; i < 4; i++)
		copy[frame + field + i] = (uint8_t)(value >> (8 * i));
	uint32_t crc = csp_crc32c(0, copy + frame, 28);
	for (int i = 0; i < 4; i++)
		copy[frame + 28 + i] = (uint8_t)(crc >> (8 * i));
	char path[4096];
	snprintf(path, sizeof path, "%s/%s", directory, name);
	FILE *f = fopen(path, "wb");
	if (f) {
		fwrite(copy, 1, size, f);
		fclose(f);
	}
	free(copy);
}

/* Seeds the corpus with a real segment of three frames (FUZZ_SEED_DIR), so mutations start
 * from valid headers, CRCs and zstd frames instead of random bytes; and with copies whose
 * second frame claims a length beyond the file (0xFFFFFFF0) or more records than its payload
 * can hold, each followed by intact frames. */
int LLVMFuzzerInitialize(int *argc, char ***argv)
{
	(void)argc, (void)argv;
	const char *directory = getenv("FUZZ_SEED_DIR");
	if (!directory)
		return 0;
	csp_writer_options_t options = { .directory = directory, .signal = CSP_SIGNAL_TRACES, .segment_sequence = 1,
					 .io = CSP_IO_PWRITE };
	csp_writer_t *writer;
	if (csp_writer_open(&options, &writer) != 0)
		return 0;
	char payload[600];
	for (int frame = 0; frame < 3; frame++) {
		for (size_t i = 0; i < sizeof payload; i++)
			payload[i] = (char)("spillway fuzz seed "[(i + frame) % 19]);
		csp_writer_append(writer, payload, (uint32_t)(sizeof payload - 100 * frame), 1 + frame, frame, NULL);
	}
	csp_writer_close(writer);
	char path[4096];
	snprintf(path, sizeof path, "%s/00000000000000000001.spill", directory);
	FILE *f = fopen(path, "rb");
	if (!f)
		return 0;
	static uint8_t bytes[1 << 16];
	size_t size = fread(bytes, 1, sizeof bytes, f);
	fclose(f);
	size_t second = 32 + 32 + (size_t)(bytes[36] | bytes[37] << 8 | bytes[38] << 16 | (uint32_t)bytes[39] << 24);
	forged_copy(directory, "seed-length-beyond-the-file", bytes, size, second, 4, 0xFFFFFFF0u);
	forged_copy(directory, "seed-implausible-record-count", bytes, size, second, 12, 0x7FFFFFFFu);
	return 0;
}

int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size)
{
	int fd = memfd_create("segment", 0);
	if (fd < 0)
		return 0;
	if (size && write(fd, data, size) != (ssize_t)size) {
		close(fd);
		return 0;
	}
	char path[64];
	snprintf(path, sizeof path, "/proc/self/fd/%d", fd);
	csp_reader_t *reader;
	if (csp_reader_open(path, &reader, NULL) == 0) {
		csp_frame_t frame;
		for (int i = 0; i < 100000; i++) {
			int rc = csp_reader_next(reader, &frame);
			if (rc == 0 || rc == -ENOMEM)
				break;
		}
		csp_reader_close(reader);
	}
	close(fd);

	char open_path[] = "/tmp/spillway-fuzz-XXXXXX.open";
	int out = mkstemps(open_path, 5);
	if (out >= 0) {
		if (size)
			(void)!write(out, data, size);
		close(out);
		csp_recovery_t result;
		csp_recover(open_path, &result);
		unlink(open_path);
		open_path[strlen(open_path) - 5] = 0;
		char spill_path[64];
		snprintf(spill_path, sizeof spill_path, "%s.spill", open_path);
		unlink(spill_path);
	}
	return 0;
}
