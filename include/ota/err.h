#ifndef OTA_ERR_H
#define OTA_ERR_H

/**
 * The one error type of the libraries (server and device alike).
 * 0 is success; every other value names a failure that callers may branch on.
 */
typedef enum ota_err {
    OTA_OK = 0,
    OTA_ERR_INVALID,     /**< an argument or an input is malformed */
    OTA_ERR_NOMEM,       /**< out of memory */
    OTA_ERR_TOO_LARGE,   /**< an input is over its size cap */
    OTA_ERR_NOT_FOUND,   /**< the thing asked for does not exist */
    OTA_ERR_IO,          /**< a read or write failed */
    OTA_ERR_UNAVAILABLE, /**< a dependency (database, storage, network) cannot be reached */
    OTA_ERR_CRYPTO,      /**< a cryptographic operation or check failed */
} ota_err_t;

/** A short static English name of `err` (never NULL). */
const char *ota_strerror(ota_err_t err);

#endif
