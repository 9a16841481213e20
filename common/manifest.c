#include "ota/manifest.h"

#include <stdlib.h>
#include <string.h>
#include <openssl/err.h>
#include <openssl/evp.h>
#include "ota/base64.h"
#include "ota/text.h"

/* ---- field formats ------------------------------------------------------ */

/* Stores the length of the string in `arr` (an array of `size` bytes); 0 when it has no NUL. */
static int field_len(const char *arr, size_t size, size_t *len)
{
    const char *nul = memchr(arr, '\0', size);
    if (nul == NULL)
        return 0;
    *len = (size_t)(nul - arr);
    return 1;
}

static int is_lower_hex(char c)
{
    return (c >= '0' && c <= '9') || (c >= 'a' && c <= 'f');
}

static int is_digit(char c)
{
    return c >= '0' && c <= '9';
}

static int valid_uuid(const char *s, size_t len)
{
    if (len != OTA_MANIFEST_UUID_LEN)
        return 0;
    for (size_t i = 0; i < len; i++) {
        int dash = i == 8 || i == 13 || i == 18 || i == 23;
        if (dash ? s[i] != '-' : !is_lower_hex(s[i]))
            return 0;
    }
    return 1;
}

static int valid_model(const char *s, size_t len)
{
    if (len == 0 || len > OTA_MANIFEST_MODEL_MAX)
        return 0;
    for (size_t i = 0; i < len; i++) {
        char c = s[i];
        if (!((c >= 'a' && c <= 'z') || is_digit(c) || (i > 0 && c == '-')))
            return 0;
    }
    return 1;
}

/* Normalized only: ota_semver_parse would also take (and drop) a leading 'v'. */
static int valid_version(const char *s, size_t len)
{
    ota_semver_t v;
    return len > 0 && s[0] != 'v' && s[0] != 'V' && ota_semver_parse(s, len, &v) == OTA_OK;
}

static int valid_artifact(const char *s, size_t len)
{
    return len == 3 && (memcmp(s, "bin", 3) == 0 || memcmp(s, "ufw", 3) == 0);
}

/*
 * RFC 3986 characters (unreserved, reserved and '%') by byte value; the rest,
 * control characters and bytes >= 0x80 included, are 0. A table: the URL is
 * most of a manifest, and this loop is most of validating one.
 */
/* clang-format off */
static const unsigned char URL_CHAR[256] = {
    /*      sp !  "  #  $  %  &  '  (  )  *  +  ,  -  .  / */
    [0x20] = 0, 1, 0, 1, 1, 1, 1, 1, 1, 1, 1, 1, 1, 1, 1, 1,
    /*      0  1  2  3  4  5  6  7  8  9  :  ;  <  =  >  ? */
    [0x30] = 1, 1, 1, 1, 1, 1, 1, 1, 1, 1, 1, 1, 0, 1, 0, 1,
    /*      @  A  B  C  D  E  F  G  H  I  J  K  L  M  N  O */
    [0x40] = 1, 1, 1, 1, 1, 1, 1, 1, 1, 1, 1, 1, 1, 1, 1, 1,
    /*      P  Q  R  S  T  U  V  W  X  Y  Z  [  \  ]  ^  _ */
    [0x50] = 1, 1, 1, 1, 1, 1, 1, 1, 1, 1, 1, 1, 0, 1, 0, 1,
    /*      `  a  b  c  d  e  f  g  h  i  j  k  l  m  n  o */
    [0x60] = 0, 1, 1, 1, 1, 1, 1, 1, 1, 1, 1, 1, 1, 1, 1, 1,
    /*      p  q  r  s  t  u  v  w  x  y  z  {  |  }  ~  DEL */
    [0x70] = 1, 1, 1, 1, 1, 1, 1, 1, 1, 1, 1, 0, 0, 0, 1, 0};
/* clang-format on */

static int valid_url(const char *s, size_t len)
{
    size_t scheme;

    if (len > OTA_MANIFEST_URL_MAX)
        return 0;
    if (len >= 8 && memcmp(s, "https://", 8) == 0)
        scheme = 8;
    else if (len >= 7 && memcmp(s, "http://", 7) == 0)
        scheme = 7;
    else
        return 0;
    if (len == scheme)
        return 0;
    for (size_t i = scheme; i < len; i++) {
        if (!URL_CHAR[(unsigned char)s[i]])
            return 0;
    }
    return 1;
}

static unsigned two_digits(const char *s)
{
    return (unsigned)(s[0] - '0') * 10 + (unsigned)(s[1] - '0');
}

static unsigned days_in_month(unsigned year, unsigned month)
{
    static const unsigned days[12] = {31, 28, 31, 30, 31, 30, 31, 31, 30, 31, 30, 31};
    int leap = (year % 4 == 0 && year % 100 != 0) || year % 400 == 0;
    return month == 2 && leap ? 29 : days[month - 1];
}

/* "YYYY-MM-DDTHH:MM:SSZ", a real date, no leap second. */
static int valid_time(const char *s, size_t len)
{
    static const char shape[] = "dddd-dd-ddTdd:dd:ddZ";

    if (len != OTA_MANIFEST_TIME_LEN)
        return 0;
    for (size_t i = 0; i < len; i++) {
        if (shape[i] == 'd' ? !is_digit(s[i]) : s[i] != shape[i])
            return 0;
    }
    unsigned year = two_digits(s) * 100 + two_digits(s + 2);
    unsigned month = two_digits(s + 5), day = two_digits(s + 8);
    if (month < 1 || month > 12 || day < 1 || day > days_in_month(year, month))
        return 0;
    return two_digits(s + 11) <= 23 && two_digits(s + 14) <= 59 && two_digits(s + 17) <= 59;
}

static int valid_sha256(const char *s, size_t len)
{
    if (len != OTA_MANIFEST_SHA256_HEX_LEN)
        return 0;
    for (size_t i = 0; i < len; i++) {
        if (!is_lower_hex(s[i]))
            return 0;
    }
    return 1;
}

/* Decodes the signature field into `sig`; 0 unless it is the padded base64 of exactly 64 bytes. */
static int decode_signature(const char *arr, unsigned char sig[OTA_MANIFEST_SIGNATURE_LEN])
{
    unsigned char buf[OTA_MANIFEST_SIGNATURE_B64_LEN / 4 * 3];
    size_t len = 0, n = 0;

    if (!field_len(arr, OTA_MANIFEST_SIGNATURE_B64_LEN + 1, &len) || len != OTA_MANIFEST_SIGNATURE_B64_LEN ||
        ota_base64_decode(arr, len, buf, sizeof buf, &n) != OTA_OK || n != OTA_MANIFEST_SIGNATURE_LEN)
        return 0;
    memcpy(sig, buf, n);
    return 1;
}

#define CHECK_FIELD(m, name, valid)                                                                                    \
    do {                                                                                                               \
        size_t len_;                                                                                                   \
        if (!field_len((m)->name, sizeof(m)->name, &len_) || !valid((m)->name, len_))                                  \
            return OTA_ERR_INVALID;                                                                                    \
    } while (0)

/* The delta's signed fields; nothing when the manifest has none. */
static ota_err_t validate_delta_signed(const ota_manifest_t *m)
{
    if (!m->has_delta)
        return OTA_OK;
    CHECK_FIELD(m, delta.from_sha256, valid_sha256);
    CHECK_FIELD(m, delta.sha256, valid_sha256);
    if (m->delta.size < 1 || m->delta.size > OTA_MANIFEST_SIZE_MAX)
        return OTA_ERR_INVALID;
    return OTA_OK;
}

static ota_err_t validate_signed(const ota_manifest_t *m)
{
    CHECK_FIELD(m, assignment_id, valid_uuid);
    CHECK_FIELD(m, device_id, valid_uuid);
    CHECK_FIELD(m, release_id, valid_uuid);
    CHECK_FIELD(m, model, valid_model);
    CHECK_FIELD(m, version, valid_version);
    CHECK_FIELD(m, artifact, valid_artifact);
    CHECK_FIELD(m, sha256, valid_sha256);
    CHECK_FIELD(m, not_after, valid_time);
    if (m->size < 1 || m->size > OTA_MANIFEST_SIZE_MAX)
        return OTA_ERR_INVALID;
    return validate_delta_signed(m);
}

ota_err_t ota_manifest_validate(const ota_manifest_t *m)
{
    unsigned char sig[OTA_MANIFEST_SIGNATURE_LEN];

    if (m == NULL || validate_signed(m) != OTA_OK)
        return OTA_ERR_INVALID;
    CHECK_FIELD(m, url, valid_url);
    CHECK_FIELD(m, url_expires_at, valid_time);
    if (m->has_delta) {
        CHECK_FIELD(m, delta.url, valid_url);
        CHECK_FIELD(m, delta.url_expires_at, valid_time);
    }
    return decode_signature(m->signature, sig) ? OTA_OK : OTA_ERR_INVALID;
}

/* ---- JSON writing ------------------------------------------------------- */

/* The escape of `c` as the header specifies for the canonical form into `esc` (6 bytes); its length, 0 for none. */
static size_t json_escape(unsigned char c, char esc[6])
{
    static const char HEX[] = "0123456789abcdef";
    static const char SHORT[] = {
        ['"'] = '"', ['\\'] = '\\', ['\b'] = 'b', ['\t'] = 't', ['\n'] = 'n', ['\f'] = 'f', ['\r'] = 'r'};
    esc[0] = '\\';
    if (c < sizeof SHORT && SHORT[c] != 0) {
        esc[1] = SHORT[c];
        return 2;
    }
    if (c >= 0x20)
        return 0;
    memcpy(esc + 1, "u00", 3);
    esc[4] = HEX[c >> 4];
    esc[5] = HEX[c & 15];
    return 6;
}

/* `s` as a JSON string. Runs of characters that need no escape are copied at once (the URL is most of a manifest). */
static void put_json_string(ota_text_t *w, const char *s)
{
    const char *run = s;
    ota_text_put(w, "\"", 1);
    for (; *s != '\0'; s++) {
        char esc[6];
        size_t n = json_escape((unsigned char)*s, esc);
        if (n == 0)
            continue;
        ota_text_put(w, run, (size_t)(s - run));
        ota_text_put(w, esc, n);
        run = s + 1;
    }
    ota_text_put(w, run, (size_t)(s - run));
    ota_text_put(w, "\"", 1);
}

static void put_member_str(ota_text_t *w, const char *key, const char *value)
{
    put_json_string(w, key);
    ota_text_put(w, ":", 1);
    put_json_string(w, value);
}

/* `"key":"value"`, both written as they are: for text known to hold nothing that JSON escapes. */
static void put_member_plain(ota_text_t *w, const char *key, const char *value)
{
    ota_text_put(w, "\"", 1);
    ota_text_put(w, key, strlen(key));
    ota_text_put(w, "\":\"", 3);
    ota_text_put(w, value, strlen(value));
    ota_text_put(w, "\"", 1);
}

static void put_member_u64(ota_text_t *w, const char *key, uint64_t value)
{
    put_json_string(w, key);
    ota_text_put(w, ":", 1);
    ota_text_put_u64(w, value);
}

static void put_member_bool(ota_text_t *w, const char *key, bool value)
{
    put_json_string(w, key);
    ota_text_puts(w, value ? ":true" : ":false");
}

static ota_err_t finish(const ota_text_t *w, size_t *len)
{
    *len = w->len;
    return w->err;
}

ota_err_t ota_manifest_canonical(const ota_manifest_t *m, char *out, size_t cap, size_t *len)
{
    ota_text_t w;
    size_t n;

    if (m == NULL || len == NULL || (out == NULL && cap > 0))
        return OTA_ERR_INVALID;
    if (!field_len(m->artifact, sizeof m->artifact, &n) || !field_len(m->assignment_id, sizeof m->assignment_id, &n) ||
        !field_len(m->device_id, sizeof m->device_id, &n) || !field_len(m->model, sizeof m->model, &n) ||
        !field_len(m->not_after, sizeof m->not_after, &n) || !field_len(m->release_id, sizeof m->release_id, &n) ||
        !field_len(m->sha256, sizeof m->sha256, &n) || !field_len(m->version, sizeof m->version, &n))
        return OTA_ERR_INVALID;
    if (m->has_delta && (!field_len(m->delta.from_sha256, sizeof m->delta.from_sha256, &n) ||
                         !field_len(m->delta.sha256, sizeof m->delta.sha256, &n)))
        return OTA_ERR_INVALID;
    ota_text_fixed(&w, out, cap);
    ota_text_put(&w, "{", 1);
    put_member_str(&w, "artifact", m->artifact);
    ota_text_put(&w, ",", 1);
    put_member_str(&w, "assignment_id", m->assignment_id);
    ota_text_put(&w, ",", 1);
    put_member_u64(&w, "crc32", m->crc32);
    ota_text_put(&w, ",", 1);
    if (m->has_delta) {
        /* "delta" sorts between "crc32" and "device_id"; its own members are in ascending order too. */
        ota_text_puts(&w, "\"delta\":{");
        put_member_str(&w, "from_sha256", m->delta.from_sha256);
        ota_text_put(&w, ",", 1);
        put_member_str(&w, "sha256", m->delta.sha256);
        ota_text_put(&w, ",", 1);
        put_member_u64(&w, "size", m->delta.size);
        ota_text_puts(&w, "},");
    }
    put_member_str(&w, "device_id", m->device_id);
    ota_text_put(&w, ",", 1);
    put_member_bool(&w, "downgrade", m->downgrade);
    ota_text_put(&w, ",", 1);
    put_member_str(&w, "model", m->model);
    ota_text_put(&w, ",", 1);
    put_member_str(&w, "not_after", m->not_after);
    ota_text_put(&w, ",", 1);
    put_member_str(&w, "release_id", m->release_id);
    ota_text_put(&w, ",", 1);
    put_member_str(&w, "sha256", m->sha256);
    ota_text_put(&w, ",", 1);
    put_member_u64(&w, "size", m->size);
    ota_text_put(&w, ",", 1);
    put_member_str(&w, "version", m->version);
    ota_text_put(&w, "}", 1);
    return finish(&w, len);
}

ota_err_t ota_manifest_encode(const ota_manifest_t *m, char *out, size_t cap, size_t *len)
{
    ota_text_t w;

    if (m == NULL || len == NULL || (out == NULL && cap > 0) || ota_manifest_validate(m) != OTA_OK)
        return OTA_ERR_INVALID;
    /* Validated, every string is in a format without a character that JSON escapes (UUID, lowercase model,
     * SemVer, RFC 3986 URL characters, timestamp, hex, base64): written as it is. The URL is most of a
     * manifest; escaping it character by character was an eighth of the server's instructions for a
     * delivering heartbeat. */
    ota_text_fixed(&w, out, cap);
    ota_text_put(&w, "{", 1);
    put_member_plain(&w, "assignment_id", m->assignment_id);
    ota_text_put(&w, ",", 1);
    put_member_plain(&w, "device_id", m->device_id);
    ota_text_put(&w, ",", 1);
    put_member_plain(&w, "release_id", m->release_id);
    ota_text_put(&w, ",", 1);
    put_member_plain(&w, "model", m->model);
    ota_text_put(&w, ",", 1);
    put_member_plain(&w, "version", m->version);
    ota_text_put(&w, ",", 1);
    put_member_bool(&w, "downgrade", m->downgrade);
    ota_text_put(&w, ",", 1);
    put_member_plain(&w, "artifact", m->artifact);
    ota_text_put(&w, ",", 1);
    put_member_plain(&w, "url", m->url);
    ota_text_put(&w, ",", 1);
    put_member_plain(&w, "url_expires_at", m->url_expires_at);
    ota_text_put(&w, ",", 1);
    put_member_plain(&w, "not_after", m->not_after);
    ota_text_put(&w, ",", 1);
    put_member_u64(&w, "size", m->size);
    ota_text_put(&w, ",", 1);
    put_member_u64(&w, "crc32", m->crc32);
    ota_text_put(&w, ",", 1);
    put_member_plain(&w, "sha256", m->sha256);
    ota_text_put(&w, ",", 1);
    put_member_plain(&w, "signature", m->signature);
    if (m->has_delta) {
        ota_text_puts(&w, ",\"delta\":{");
        put_member_plain(&w, "from_sha256", m->delta.from_sha256);
        ota_text_put(&w, ",", 1);
        put_member_plain(&w, "url", m->delta.url);
        ota_text_put(&w, ",", 1);
        put_member_plain(&w, "url_expires_at", m->delta.url_expires_at);
        ota_text_put(&w, ",", 1);
        put_member_u64(&w, "size", m->delta.size);
        ota_text_put(&w, ",", 1);
        put_member_plain(&w, "sha256", m->delta.sha256);
        ota_text_put(&w, "}", 1);
    }
    ota_text_put(&w, "}", 1);
    return finish(&w, len);
}

/* ---- JSON reading ------------------------------------------------------- */

/* Reads the boolean member `key` (true or false, nothing else). */
static int get_bool(const json_t *obj, const char *key, bool *out)
{
    const json_t *v = json_object_get(obj, key);

    if (!json_is_boolean(v))
        return 0;
    *out = json_is_true(v);
    return 1;
}

/* Copies the string member `key` into `arr` (`size` bytes): it must exist, be a string, fit, and hold no NUL. */
static int get_string(const json_t *obj, const char *key, char *arr, size_t size)
{
    const json_t *v = json_object_get(obj, key);
    const char *s;
    size_t len;

    if (!json_is_string(v))
        return 0;
    s = json_string_value(v);
    len = json_string_length(v);
    if (len >= size || strlen(s) != len)
        return 0;
    memcpy(arr, s, len);
    arr[len] = '\0';
    return 1;
}

/* Reads the integer member `key`, which must be in [min, max]. */
static int get_integer(const json_t *obj, const char *key, uint64_t min, uint64_t max, uint64_t *out)
{
    const json_t *v = json_object_get(obj, key);
    json_int_t n;

    if (!json_is_integer(v))
        return 0;
    n = json_integer_value(v);
    if (n < 0 || (uint64_t)n < min || (uint64_t)n > max)
        return 0;
    *out = (uint64_t)n;
    return 1;
}

/* The optional "delta" member into m->delta: absent is fine; present, it must be an object with every member. */
static int get_delta(const json_t *obj, ota_manifest_t *m)
{
    const json_t *d = json_object_get(obj, "delta");
    if (d == NULL)
        return 1;
    m->has_delta = true;
    return json_is_object(d) && get_string(d, "from_sha256", m->delta.from_sha256, sizeof m->delta.from_sha256) &&
           get_string(d, "url", m->delta.url, sizeof m->delta.url) &&
           get_string(d, "url_expires_at", m->delta.url_expires_at, sizeof m->delta.url_expires_at) &&
           get_integer(d, "size", 1, OTA_MANIFEST_SIZE_MAX, &m->delta.size) &&
           get_string(d, "sha256", m->delta.sha256, sizeof m->delta.sha256);
}

ota_err_t ota_manifest_decode_json(const json_t *obj, ota_manifest_t *out)
{
    ota_manifest_t m;
    uint64_t size = 0, crc = 0;

    memset(&m, 0, sizeof m);
    if (out == NULL || !json_is_object(obj))
        return OTA_ERR_INVALID;
    if (!get_string(obj, "assignment_id", m.assignment_id, sizeof m.assignment_id) ||
        !get_string(obj, "device_id", m.device_id, sizeof m.device_id) ||
        !get_string(obj, "release_id", m.release_id, sizeof m.release_id) ||
        !get_string(obj, "model", m.model, sizeof m.model) ||
        !get_string(obj, "version", m.version, sizeof m.version) || !get_bool(obj, "downgrade", &m.downgrade) ||
        !get_string(obj, "artifact", m.artifact, sizeof m.artifact) || !get_string(obj, "url", m.url, sizeof m.url) ||
        !get_string(obj, "url_expires_at", m.url_expires_at, sizeof m.url_expires_at) ||
        !get_string(obj, "not_after", m.not_after, sizeof m.not_after) ||
        !get_integer(obj, "size", 1, OTA_MANIFEST_SIZE_MAX, &size) || !get_integer(obj, "crc32", 0, UINT32_MAX, &crc) ||
        !get_string(obj, "sha256", m.sha256, sizeof m.sha256) ||
        !get_string(obj, "signature", m.signature, sizeof m.signature) || !get_delta(obj, &m))
        return OTA_ERR_INVALID;
    m.size = size;
    m.crc32 = (uint32_t)crc;
    if (ota_manifest_validate(&m) != OTA_OK)
        return OTA_ERR_INVALID;
    *out = m;
    return OTA_OK;
}

/*
 * Whether jansson failed for want of memory rather than for the text. jansson
 * 2.14 sets no error at all when an allocation fails (the error is
 * initialized with an empty text, so nothing stale is read), with one
 * exception: when it cannot copy a string token it has lexed in full, it goes
 * on as if the token were invalid and reports "invalid token" (a value) or
 * "string or '}' expected" (a key), positioned right after the string's
 * closing quote. A token that is bad of itself never ends there: only a
 * string ends with '"', and a string that is bad has its own error, which
 * jansson keeps (the first error wins). Whatever follows the point of failure
 * is not read: a text that runs out of memory may hold a later error too.
 */
static int jansson_out_of_memory(const json_error_t *e, const char *json)
{
    if (e->text[0] == '\0')
        return 1;
    int after_string = e->position > 0 && json[e->position - 1] == '"';
    return after_string && json_error_code(e) == json_error_invalid_syntax &&
           (strncmp(e->text, "invalid token", 13) == 0 || strncmp(e->text, "string or '}' expected", 22) == 0);
}

ota_err_t ota_manifest_decode(const char *json, size_t len, ota_manifest_t *out)
{
    json_error_t jerr;

    if (out == NULL || (json == NULL && len > 0))
        return OTA_ERR_INVALID;
    if (len > OTA_MANIFEST_DECODE_MAX)
        return OTA_ERR_TOO_LARGE;
    if (json == NULL)
        json = "";
    /* No JSON text holds a NUL byte, but jansson drops one that follows a number. */
    if (memchr(json, '\0', len) != NULL)
        return OTA_ERR_INVALID;
    json_t *root = json_loadb(json, len, JSON_REJECT_DUPLICATES, &jerr);
    if (root == NULL)
        return jansson_out_of_memory(&jerr, json) ? OTA_ERR_NOMEM : OTA_ERR_INVALID;
    ota_err_t rc = ota_manifest_decode_json(root, out);
    json_decref(root);
    return rc;
}

/* ---- Ed25519 ------------------------------------------------------------ */

/*
 * Every OpenSSL call below is bracketed by ERR_set_mark / ERR_pop_to_mark: a
 * failed verification must not leave errors on the thread's queue, where a
 * TLS connection on the same thread would later mistake them for its own.
 */

ota_err_t ota_ed25519_public_from_seed(const unsigned char seed[OTA_ED25519_SEED_LEN],
                                       unsigned char pub[OTA_ED25519_PUBLIC_LEN])
{
    EVP_PKEY *pkey = NULL;
    size_t len = OTA_ED25519_PUBLIC_LEN;
    ota_err_t rc = OTA_ERR_CRYPTO;

    if (seed == NULL || pub == NULL)
        return OTA_ERR_INVALID;
    ERR_set_mark();
    pkey = EVP_PKEY_new_raw_private_key(EVP_PKEY_ED25519, NULL, seed, OTA_ED25519_SEED_LEN);
    if (pkey == NULL || EVP_PKEY_get_raw_public_key(pkey, pub, &len) != 1 || len != OTA_ED25519_PUBLIC_LEN)
        goto Exit;
    rc = OTA_OK;
Exit:
    EVP_PKEY_free(pkey);
    ERR_pop_to_mark();
    return rc;
}

struct ota_manifest_signer {
    EVP_PKEY *pkey;
};

ota_manifest_signer_t *ota_manifest_signer_new(const unsigned char seed[OTA_ED25519_SEED_LEN])
{
    if (seed == NULL)
        return NULL;
    ota_manifest_signer_t *signer = calloc(1, sizeof *signer);
    if (signer == NULL)
        return NULL;
    ERR_set_mark();
    signer->pkey = EVP_PKEY_new_raw_private_key(EVP_PKEY_ED25519, NULL, seed, OTA_ED25519_SEED_LEN);
    ERR_pop_to_mark();
    if (signer->pkey == NULL) {
        free(signer);
        return NULL;
    }
    return signer;
}

void ota_manifest_signer_free(ota_manifest_signer_t *signer)
{
    if (signer == NULL)
        return;
    EVP_PKEY_free(signer->pkey);
    free(signer);
}

ota_err_t ota_manifest_sign_with(ota_manifest_t *m, const ota_manifest_signer_t *signer)
{
    char tbs[OTA_MANIFEST_CANONICAL_MAX];
    unsigned char sig[OTA_MANIFEST_SIGNATURE_LEN];
    size_t tbs_len = 0, sig_len = sizeof sig;
    EVP_MD_CTX *ctx = NULL;
    ota_err_t rc;

    if (m == NULL || signer == NULL)
        return OTA_ERR_INVALID;
    if (validate_signed(m) != OTA_OK || ota_manifest_canonical(m, tbs, sizeof tbs, &tbs_len) != OTA_OK)
        return OTA_ERR_INVALID;
    ERR_set_mark();
    rc = OTA_ERR_NOMEM;
    if ((ctx = EVP_MD_CTX_new()) == NULL)
        goto Exit;
    rc = OTA_ERR_CRYPTO;
    if (EVP_DigestSignInit(ctx, NULL, NULL, NULL, signer->pkey) != 1 ||
        EVP_DigestSign(ctx, sig, &sig_len, (const unsigned char *)tbs, tbs_len) != 1 ||
        sig_len != OTA_MANIFEST_SIGNATURE_LEN)
        goto Exit;
    ota_base64_encode(sig, sig_len, m->signature);
    rc = OTA_OK;
Exit:
    EVP_MD_CTX_free(ctx);
    ERR_pop_to_mark();
    return rc;
}

ota_err_t ota_manifest_sign(ota_manifest_t *m, const unsigned char seed[OTA_ED25519_SEED_LEN])
{
    if (m == NULL || seed == NULL)
        return OTA_ERR_INVALID;
    if (validate_signed(m) != OTA_OK)
        return OTA_ERR_INVALID;
    ota_manifest_signer_t *signer = ota_manifest_signer_new(seed);
    if (signer == NULL)
        return OTA_ERR_CRYPTO;
    ota_err_t rc = ota_manifest_sign_with(m, signer);
    ota_manifest_signer_free(signer);
    return rc;
}

ota_err_t ota_manifest_verify(const ota_manifest_t *m, const unsigned char public_key[OTA_ED25519_PUBLIC_LEN])
{
    char tbs[OTA_MANIFEST_CANONICAL_MAX];
    unsigned char sig[OTA_MANIFEST_SIGNATURE_LEN];
    size_t tbs_len = 0;
    EVP_PKEY *pkey = NULL;
    EVP_MD_CTX *ctx = NULL;
    ota_err_t rc;

    if (m == NULL || public_key == NULL)
        return OTA_ERR_INVALID;
    if (!decode_signature(m->signature, sig) || validate_signed(m) != OTA_OK ||
        ota_manifest_canonical(m, tbs, sizeof tbs, &tbs_len) != OTA_OK)
        return OTA_ERR_INVALID;
    ERR_set_mark();
    rc = OTA_ERR_NOMEM;
    if ((ctx = EVP_MD_CTX_new()) == NULL)
        goto Exit;
    /* Any 32 bytes are an Ed25519 public key: these two fail only when OpenSSL cannot allocate (rc stays NOMEM). */
    pkey = EVP_PKEY_new_raw_public_key(EVP_PKEY_ED25519, NULL, public_key, OTA_ED25519_PUBLIC_LEN);
    if (pkey == NULL || EVP_DigestVerifyInit(ctx, NULL, NULL, NULL, pkey) != 1)
        goto Exit;
    unsigned long before = ERR_peek_last_error();
    if (EVP_DigestVerify(ctx, sig, sizeof sig, (const unsigned char *)tbs, tbs_len) != 1) {
        /* A signature that does not verify, unless OpenSSL says it ran out of memory on the way. */
        unsigned long e = ERR_peek_last_error();
        rc = (e != before && ERR_GET_REASON(e) == ERR_R_MALLOC_FAILURE) ? OTA_ERR_NOMEM : OTA_ERR_CRYPTO;
        goto Exit;
    }
    rc = OTA_OK;
Exit:
    EVP_MD_CTX_free(ctx);
    EVP_PKEY_free(pkey);
    ERR_pop_to_mark();
    return rc;
}
