#ifndef OTA_SERVER_API_API_H
#define OTA_SERVER_API_API_H

#include <stddef.h>

#include "http/call.h"
#include "http/router.h"

/*
 * The API's route table and its handlers, one file per resource.
 * Every handler ends in exactly one ota__respond_* call (see http/respond.h).
 */

/** Every route the server serves. */
extern const ota_route_t ota__routes[];
/** How many entries ota__routes has. */
extern const size_t ota__routes_count;

/* health.c */
void ota__api_healthz(ota_call_t *call);
void ota__api_readyz(ota_call_t *call);

/* models.c */
void ota__api_models_create(ota_call_t *call);
void ota__api_models_list(ota_call_t *call);
void ota__api_models_get(ota_call_t *call);

/* devices.c */
void ota__api_devices_create(ota_call_t *call);
void ota__api_devices_list(ota_call_t *call);
void ota__api_devices_get(ota_call_t *call);
void ota__api_devices_delete(ota_call_t *call);
void ota__api_devices_rotate_token(ota_call_t *call);

#endif
