#include "ota/err.h"

const char *ota_strerror(ota_err_t err)
{
    switch (err) {
    case OTA_OK:
        return "success";
    case OTA_ERR_INVALID:
        return "invalid argument or input";
    case OTA_ERR_NOMEM:
        return "out of memory";
    case OTA_ERR_TOO_LARGE:
        return "input too large";
    case OTA_ERR_NOT_FOUND:
        return "not found";
    case OTA_ERR_IO:
        return "input/output error";
    case OTA_ERR_UNAVAILABLE:
        return "service unavailable";
    case OTA_ERR_CRYPTO:
        return "cryptographic failure";
    }
    return "unknown error";
}
