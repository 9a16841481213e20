#ifndef OTA_SERVER_API_PORTAL_H
#define OTA_SERVER_API_PORTAL_H

#include <stddef.h>

#include "ota/err.h"
#include "storage/storage.h"

/*
 * The operators' portal: the files of server/portal/, compiled into the
 * server (cmake/embed_portal.cmake), served at / (index.html) and
 * /portal/<name>. Every answer carries a Content-Security-Policy that lets
 * the page load scripts and styles from this server only, connect to it
 * (and to the s3 storage, where presigned uploads go), and run no inline
 * script; the files are revalidated by ETag, so an upgraded server is seen
 * at once and an unchanged file costs a 304.
 */

/** One file of the portal. */
typedef struct ota_portal_file {
    const char *name;           /**< "index.html", "app.js", ... (NULL ends the table) */
    const char *content_type;
    const unsigned char *bytes;
    size_t len;
    const char *etag; /**< a quoted strong ETag made of the file's SHA-256 */
} ota_portal_file_t;

/** Every file of the portal, ended by an entry whose name is NULL (generated at build time). */
extern const ota_portal_file_t ota__portal_files[];

/*
 * The Content-Security-Policy of every portal file, in two halves around the end of connect-src's list. The page
 * connects to this server, and with the s3 storage also to the storage's origin: a browser PUTs a large file
 * straight to the presigned URL of POST /v1/uploads, which is on the storage's host.
 */
#define OTA_PORTAL_CSP_HEAD "default-src 'none'; script-src 'self'; style-src 'self'; connect-src 'self'"
#define OTA_PORTAL_CSP_TAIL "; img-src 'self' data:; base-uri 'none'; form-action 'self'; frame-ancestors 'none'"
/** The CSP with the fs storage, whose presigned URLs are on this server, which 'self' covers. */
#define OTA_PORTAL_CSP OTA_PORTAL_CSP_HEAD OTA_PORTAL_CSP_TAIL
/** Room for the CSP with a storage origin in connect-src, with its NUL. */
#define OTA_PORTAL_CSP_MAX (sizeof OTA_PORTAL_CSP + sizeof " https://" + OTA_SIGV4_HOST_MAX)

/** The length of the origin ("scheme://host[:port]") that `url` starts with; 0 when it is not http(s)://host. */
size_t ota__url_origin_len(const char *url);

/**
 * Writes into `out` (`cap` bytes) OTA_PORTAL_CSP with `origin` (`len` bytes) added to connect-src.
 * OTA_ERR_INVALID when the origin is empty or has a byte outside A-Z a-z 0-9 . : - / (a ';', ',', quote or
 * space would change the policy), OTA_ERR_TOO_LARGE when the CSP does not fit; `out` is then unusable.
 */
ota_err_t ota__portal_csp_make(const char *origin, size_t len, char *out, size_t cap);

/**
 * Sets the CSP that every portal file is sent with, once at start before any thread serves: OTA_PORTAL_CSP
 * with the fs storage; with s3, the origin of a URL that `storage` presigns added to connect-src, unless
 * ota__portal_csp_make refuses it (then OTA_PORTAL_CSP, and a warning in the log).
 */
void ota__portal_csp_init(ota_storage_t *storage);

#endif
