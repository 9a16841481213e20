#ifndef OTA_SERVER_HTTP_ERROR_FILTER_H
#define OTA_SERVER_HTTP_ERROR_FILTER_H

#include <h2o.h>

/*
 * h2o answers some requests itself before any handler runs, with a plain
 * text body: most importantly a body over the hard limit
 * (globalconf.max_request_entity_size), which it refuses with 413 before
 * reading it. This filter rewrites such answers into the contract's error
 * shape, so every error a client sees is JSON. (h2o still closes that
 * connection: it would otherwise have to read the whole oversized body.)
 */

/** Installs the filter on `path` (the host's fallback path, where h2o's own errors go, and the API's path). */
void ota__error_filter_install(h2o_pathconf_t *path);

#endif
