#ifndef OTA_SERVER_API_BLOBS_H
#define OTA_SERVER_API_BLOBS_H

#include <stdbool.h>
#include <h2o.h>

/*
 * The fs storage backend's object server: GET, HEAD and PUT on
 * /blobs/<key> at URLs presigned by storage/storage.c, checked with the
 * same SigV4 code as S3 uses (expiry, signature, method). GET serves HTTP
 * Range (206, 416) as S3 does; PUT takes presigned uploads (keys under
 * "uploads/"). Errors are S3-style XML, so a device cannot tell the
 * backends apart.
 */

/** The path prefix this module serves. */
#define OTA_BLOBS_PREFIX "/blobs/"

/** True when `req` is for the blob server (an fs backend and a path under OTA_BLOBS_PREFIX). */
bool ota__blobs_match(h2o_req_t *req);

/** Handles a blob request. */
void ota__blobs_handle(h2o_req_t *req);

#endif
