#ifndef OTA_SERVER_DB_SQLSTATE_H
#define OTA_SERVER_DB_SQLSTATE_H

/*
 * What a failed statement's SQLSTATE means for the client. Errors that come
 * from the request (a duplicate, a missing reference) are the client's to
 * fix; transient ones (a deadlock, a serialization failure, a database that
 * is starting, shutting down, read-only or unreachable) go away when the same
 * request is sent again a little later, so they are 503 with Retry-After, not
 * 500; everything else is a bug of ours.
 */

/** The kinds of database error the API tells apart. */
typedef enum ota_sqlstate_kind {
    OTA_SQLSTATE_INTERNAL,  /**< anything not below: 500, logged */
    OTA_SQLSTATE_DUPLICATE, /**< unique violation: 409 conflict */
    OTA_SQLSTATE_INVALID,   /**< foreign key, check constraint, value too long: 422 validation_failed */
    OTA_SQLSTATE_TRANSIENT, /**< retry later: 503 unavailable */
} ota_sqlstate_kind_t;

/** The kind of the five-character SQLSTATE `state` (NULL or "" for none: internal). */
ota_sqlstate_kind_t ota__sqlstate_kind(const char *state);

#endif
