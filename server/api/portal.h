#ifndef OTA_SERVER_API_PORTAL_H
#define OTA_SERVER_API_PORTAL_H

#include <stddef.h>

/*
 * The operators' portal: the files of server/portal/, compiled into the
 * server (cmake/embed_portal.cmake), served at / (index.html) and
 * /portal/<name>. Every answer carries a Content-Security-Policy that lets
 * the page load scripts, styles and data from this server only, and run no
 * inline script; the files are revalidated by ETag, so an upgraded server
 * is seen at once and an unchanged file costs a 304.
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

/** The Content-Security-Policy of every portal file. */
#define OTA_PORTAL_CSP                                                                                                 \
    "default-src 'none'; script-src 'self'; style-src 'self'; connect-src 'self'; img-src 'self' data:; "            \
    "base-uri 'none'; form-action 'self'; frame-ancestors 'none'"

#endif
