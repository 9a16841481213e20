#ifndef OTA_TEST_DEVICE_STUB_H
#define OTA_TEST_DEVICE_STUB_H

/*
 * A tiny HTTP/1.1 server in a thread, for the libota-device unit tests: it
 * serves one image at /img* and one delta at /delta* (with Range, and faults
 * on demand, which strike either) and answers
 * POST /v1/devices/<id>/heartbeat with queued bodies, recording what the
 * client sent. One connection at a time, "Connection: close" on every
 * answer. Not a mock of ota-server: the end-to-end tests use the real one.
 */

#include <stdbool.h>
#include <stddef.h>
#include <stdint.h>

#define STUB_MAX_RECORDS 64

typedef struct stub_faults {
    int status_next; /* answer the next `status_count` image requests with this status (e.g. 403, 503) */
    int status_count;
    long drop_after;      /* close the connection after this many body bytes, once (-1: never) */
    bool ignore_range;    /* answer 200 with everything even when Range asks for less */
    size_t extra;         /* send this many bytes more than the image */
    bool refuse_path_old; /* answer 403 to /img?old (an "expired" URL) */
} stub_faults_t;

typedef struct stub stub_t;

/** Starts the server on 127.0.0.1 with a free port. Aborts the test program on failure. */
stub_t *stub_start(void);

/** Stops the server and frees it. */
void stub_stop(stub_t *s);

/** "http://127.0.0.1:<port>" */
const char *stub_url(const stub_t *s);

/** The image served at /img (copied). */
void stub_set_image(stub_t *s, const unsigned char *data, size_t len);

/** The delta served at /delta (copied). */
void stub_set_delta(stub_t *s, const unsigned char *data, size_t len);

/** How many delta requests came. */
int stub_delta_requests(stub_t *s);

/** Replaces the faults (all off: stub_faults_none()). */
void stub_set_faults(stub_t *s, const stub_faults_t *f);

/** No faults. */
stub_faults_t stub_faults_none(void);

/** Queues the body of the next heartbeat answer (200, JSON; copied). With none queued, the answer has no update. */
void stub_queue_answer(stub_t *s, const char *json);

/** Drops the queued answers not sent yet. */
void stub_clear_answers(stub_t *s);

/** How many image requests came, and the Range start of request `i` (-1: no Range). */
int stub_image_requests(stub_t *s);
long stub_range_start(stub_t *s, int i);

/** How many heartbeats came, and the body of heartbeat `i` (borrowed until stub_stop). */
int stub_heartbeats(stub_t *s);
const char *stub_heartbeat_body(stub_t *s, int i);

#endif
