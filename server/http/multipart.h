#ifndef OTA_SERVER_HTTP_MULTIPART_H
#define OTA_SERVER_HTTP_MULTIPART_H

#include <stdbool.h>
#include <stddef.h>

#include "ota/err.h"

/**
 * multipart/form-data (RFC 7578 over the syntax of RFC 2046 section 5.1.1)
 * of a body that is wholly in memory. Strict: lines end with CRLF, the
 * closing delimiter is required, header fields follow RFC 9110 (no
 * obsolete line folding, no control characters), and a boundary delimiter
 * (CRLF "--" boundary) found in a part must be followed by "--" or by a line
 * end, or the body is refused. Every length is capped; nothing is allocated.
 */

#define OTA_MULTIPART_BOUNDARY_MAX 70  /**< longest boundary (RFC 2046) */
#define OTA_MULTIPART_VALUE_MAX 128    /**< bytes of a part's name, filename or content type, with the NUL */
#define OTA_MULTIPART_HEADER_LINES 16  /**< most header lines in one part */
#define OTA_MULTIPART_HEADER_LINE 1024 /**< longest header line of a part, without its CRLF */

/** One part of a body. Its strings are copies; `data` points into the body. */
typedef struct ota_multipart_part {
    char name[OTA_MULTIPART_VALUE_MAX];         /**< the Content-Disposition name, unquoted; never empty */
    char filename[OTA_MULTIPART_VALUE_MAX];     /**< the filename, unquoted, when `has_filename` (may be empty) */
    char content_type[OTA_MULTIPART_VALUE_MAX]; /**< the Content-Type field value, when `has_content_type` */
    bool has_filename;
    bool has_content_type;
    const char *data; /**< borrowed: the part's bytes inside the parsed body, any octets */
    size_t data_len;
} ota_multipart_part_t;

/**
 * Extracts the boundary from the `len` bytes of a Content-Type field value
 * `content_type` (need not be NUL-terminated): the media type must be
 * multipart/form-data (any case), with exactly one `boundary` parameter,
 * quoted or not, of 1 to 70 RFC 2046 boundary characters. Writes it,
 * unquoted and NUL-terminated, to `out` (`cap` bytes; 71 are always enough).
 * Returns OTA_ERR_INVALID when the value is malformed or has no valid
 * boundary, OTA_ERR_TOO_LARGE when `cap` is too small; `out` is then unspecified.
 */
ota_err_t ota__multipart_boundary(const char *content_type, size_t len, char *out, size_t cap);

/**
 * Parses the `len` bytes of `body` delimited by `boundary` (NUL-terminated,
 * as ota__multipart_boundary writes it) into `parts`, which has room for
 * `max_parts`, and stores the number of parts in `*nparts`. A preamble
 * before the first delimiter and an epilogue after the closing one (on its
 * own line) are ignored; at least one part is required, and each needs a
 * `Content-Disposition: form-data` field with a non-empty `name`. Other
 * header fields are ignored, except Content-Type (kept) and
 * Content-Transfer-Encoding (only 7bit, 8bit or binary accepted).
 * The parts' `data` point into `body`, which must outlive them.
 *
 * Returns OTA_ERR_INVALID when the body is malformed (including truncated),
 * OTA_ERR_TOO_LARGE when it exceeds a cap: more than `max_parts` parts, more
 * than OTA_MULTIPART_HEADER_LINES header lines in a part or a line longer
 * than OTA_MULTIPART_HEADER_LINE, a name, filename or content type that does
 * not fit in OTA_MULTIPART_VALUE_MAX. On an error `*nparts` is untouched and
 * the contents of `parts` are unspecified. Never reads outside `body`.
 */
ota_err_t ota__multipart_parse(const char *body, size_t len, const char *boundary, ota_multipart_part_t *parts,
                               size_t max_parts, size_t *nparts);

#endif
