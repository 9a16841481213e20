#ifndef OTA_SERVER_STORAGE_LIST_H
#define OTA_SERVER_STORAGE_LIST_H

#include <stdint.h>
#include <time.h>

/**
 * What a storage listing calls for each object: its key (borrowed for the call), size and last-modified time
 * (UTC seconds). Return non-zero to end the listing early.
 */
typedef int (*ota_storage_list_cb)(const char *key, uint64_t size, time_t modified, void *arg);

#endif
