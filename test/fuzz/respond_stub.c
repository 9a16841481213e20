#include "respond_stub.h"

#include <stdarg.h>
#include <stdio.h>
#include <stdlib.h>

#include "http/respond.h"
#include "ota/utf8.h"

ota_fuzz_answer_t ota_fuzz_answer;

void ota_fuzz_answer_reset(void)
{
    ota_fuzz_answer.status = 0;
    ota_fuzz_answer.count = 0;
}

void ota__respond_error(ota_call_t *call, int status, const char *code, json_t *details, const char *fmt, ...)
{
    char message[512];
    va_list ap;
    va_start(ap, fmt);
    int n = vsnprintf(message, sizeof message, fmt, ap);
    va_end(ap);
    (void)call;

    /* What a caller says must be UTF-8; respond.c scrubs only what its cap may cut inside a character. */
    if (n < 0 || ((size_t)n < sizeof message && !ota_utf8_valid(message, (size_t)n))) {
        fprintf(stderr, "an error message that is not UTF-8: status %d, message \"%s\"\n", status, message);
        abort();
    }
    ota_utf8_scrub(message, strlen(message));
    /* As respond.c's error_body: jansson refuses a message that is not UTF-8, and the server then stops. */
    json_t *error = json_pack("{s:s, s:s}", "code", code, "message", message);
    if (error == NULL) {
        fprintf(stderr, "the error answer cannot be built: status %d, message \"%s\"\n", status, message);
        abort();
    }
    if (details != NULL)
        json_object_set_new(error, "details", details);
    json_decref(error);
    ota_fuzz_answer.status = status;
    ota_fuzz_answer.count++;
}
