#ifndef OTA_SERVER_HTTP_BODY_H
#define OTA_SERVER_HTTP_BODY_H

#include <stdbool.h>

#include "http/call.h"

/*
 * Request bodies. h2o reads a whole body into memory before the handler
 * runs, up to the largest limit of any route (beyond that h2o itself refuses
 * it). Each route's own limit is checked here, so a body over it is answered
 * 413 and the connection stays usable: OTA_MAX_JSON_BODY for JSON,
 * OTA_MAX_BULK_JSON_BODY for JSON holding a fleet filter, and
 * ota__max_upload_request() for release uploads.
 */

/**
 * Checks the body of a request against its route: size (413
 * `payload_too_large`), content type (415 `unsupported_media_type` for a
 * JSON route sent anything but application/json; a missing Content-Type is
 * taken as JSON), and JSON syntax (400 `bad_request`; the top level must be
 * an object). On success stores the parsed object in call->body (NULL when
 * the body is empty) and returns true; otherwise it has responded and freed
 * the call, and returns false.
 */
bool ota__body_read(ota_call_t *call);

#endif
