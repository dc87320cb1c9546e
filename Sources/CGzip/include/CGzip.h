/*
 * CGzip — gzip for OTLP/HTTP bodies (Content-Encoding: gzip), on zlib.
 */
#ifndef CGZIP_H
#define CGZIP_H

#include <stddef.h>
#include <stdint.h>

#ifdef __cplusplus
extern "C" {
#endif

/** An upper bound for the gzip output of `length` input bytes. */
size_t cgz_bound(size_t length);

/**
 * Compresses `length` bytes from `input` as one gzip member into `output`
 * (`capacity` bytes, at least cgz_bound(length)) at zlib `level` (1 fast … 9 small).
 * Safe from any thread.
 *
 * Returns the number of bytes written, or -ENOBUFS if `capacity` is too small,
 * -EINVAL for a bad level, or -ENOMEM.
 */
long cgz_compress(const void *input, size_t length, void *output, size_t capacity, int level);

/**
 * Decompresses one or more gzip members from `input` into `output`. Safe from any thread.
 *
 * Returns the number of bytes written, -EFBIG if the output would exceed
 * `capacity` (a cap against gzip bombs), -EBADMSG if the input is not gzip or
 * is truncated, or -ENOMEM.
 */
long cgz_decompress(const void *input, size_t length, void *output, size_t capacity);

#ifdef __cplusplus
}
#endif

#endif /* CGZIP_H */
