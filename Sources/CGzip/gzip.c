#include "CGzip.h"

#include <errno.h>
#include <string.h>
#include <zlib.h>

/* windowBits 15 + 16 selects the gzip wrapper; + 32 on inflate also accepts zlib. */
#define CGZ_GZIP_WINDOW (15 + 16)

size_t cgz_bound(size_t length)
{
	/* deflateBound() plus the gzip header and trailer (18 bytes), generously. */
	return length + length / 1000 + 64 + 18;
}

long cgz_compress(const void *input, size_t length, void *output, size_t capacity, int level)
{
	if (level < 0 || level > 9)
		return -EINVAL;
	z_stream stream;
	memset(&stream, 0, sizeof(stream));
	if (deflateInit2(&stream, level, Z_DEFLATED, CGZ_GZIP_WINDOW, 8, Z_DEFAULT_STRATEGY) != Z_OK)
		return -ENOMEM;
	stream.next_in = (Bytef *)input;
	stream.avail_in = (uInt)length;
	stream.next_out = output;
	stream.avail_out = (uInt)capacity;
	int rc = deflate(&stream, Z_FINISH);
	long written = (long)stream.total_out;
	deflateEnd(&stream);
	if (rc != Z_STREAM_END)
		return -ENOBUFS;
	return written;
}

long cgz_decompress(const void *input, size_t length, void *output, size_t capacity)
{
	z_stream stream;
	memset(&stream, 0, sizeof(stream));
	if (inflateInit2(&stream, CGZ_GZIP_WINDOW + 16) != Z_OK)
		return -ENOMEM;
	stream.next_in = (Bytef *)input;
	stream.avail_in = (uInt)length;
	stream.next_out = output;
	stream.avail_out = (uInt)capacity;
	long result;
	for (;;) {
		int rc = inflate(&stream, Z_NO_FLUSH);
		if (rc == Z_STREAM_END) {
			/* Concatenated members are one body (RFC 1952 2.2). */
			if (stream.avail_in > 0 && inflateReset(&stream) == Z_OK)
				continue;
			result = (long)(capacity - stream.avail_out);
			break;
		}
		if (rc == Z_OK && stream.avail_out == 0) {
			result = -EFBIG;
			break;
		}
		if (rc == Z_BUF_ERROR && stream.avail_out == 0) {
			result = -EFBIG;
			break;
		}
		result = -EBADMSG;
		break;
	}
	inflateEnd(&stream);
	return result;
}
