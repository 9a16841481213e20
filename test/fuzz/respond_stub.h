#ifndef OTA_TEST_FUZZ_RESPOND_STUB_H
#define OTA_TEST_FUZZ_RESPOND_STUB_H

/*
 * The response functions of http/respond.h for the fuzz drivers, which run
 * the request-reading code without a server. ota__respond_error builds the
 * error document as respond.c does, and aborts when it cannot (the server
 * would stop there: an error body it cannot build is a fatal error), or
 * when the caller's message is not UTF-8.
 */

/** The last answer given, for the driver to check; `status` 0 when none was. */
typedef struct ota_fuzz_answer {
    int status;
    int count; /**< answers since the last ota_fuzz_answer_reset */
} ota_fuzz_answer_t;

/** The answers given so far (owned by the stub). */
extern ota_fuzz_answer_t ota_fuzz_answer;

/** Forgets the answers given so far. */
void ota_fuzz_answer_reset(void);

#endif
