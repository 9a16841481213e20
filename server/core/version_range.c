#include "core/version_range.h"

#include <string.h>

#include "ota/text.h"

/* The comparator's operator at `s`, longest first so that "<=" is not read as "<"; "" when it has none. */
static const char *operator_of(const char *s)
{
    static const char *const OPERATORS[] = {"<=", ">=", "<", ">", "="};
    for (size_t i = 0; i < sizeof OPERATORS / sizeof OPERATORS[0]; i++)
        if (strncmp(s, OPERATORS[i], strlen(OPERATORS[i])) == 0)
            return OPERATORS[i];
    return "";
}

/* Appends the comparator of `len` bytes at `s`, normalized; false when it is not one. */
static bool put_comparator(ota_text_t *out, const char *s, size_t len)
{
    const char *op = operator_of(s);
    size_t op_len = strlen(op);
    ota_semver_t version;
    if (op_len >= len || ota_semver_parse(s + op_len, len - op_len, &version) != OTA_OK)
        return false;
    if (out->len > 0)
        ota_text_puts(out, " ");
    ota_text_puts(out, op_len > 0 ? op : "=");
    ota_text_puts(out, version.text);
    return true;
}

bool ota__version_range_normalize(const char *in, char out[OTA_VERSION_RANGE_MAX])
{
    ota_text_t text;
    int comparators = 0;
    ota_text_fixed(&text, out, OTA_VERSION_RANGE_MAX);
    for (const char *p = in; *p != '\0';) {
        if (*p == ' ') {
            p++;
            continue;
        }
        size_t len = strcspn(p, " ");
        if (++comparators > OTA_VERSION_RANGE_MAX_COMPARATORS || !put_comparator(&text, p, len))
            goto Fail;
        p += len;
    }
    if (comparators > 0 && text.err == OTA_OK)
        return true;
Fail:
    out[0] = '\0';
    return false;
}
