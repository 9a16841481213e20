/*
 * Prints the presigned URL that server/storage/sigv4.c makes, with the same
 * arguments as presign_botocore.py, so presign_crosscheck.sh can compare the
 * two byte for byte. Not the server: a test driver.
 */
#include <getopt.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "storage/sigv4.h"

typedef struct args {
    const char *endpoint, *bucket, *key, *method, *region, *access_key, *secret_key, *session_token, *time;
    long expires;
    bool path_style;
} args_t;

static void usage(FILE *out)
{
    fprintf(out, "usage: presign_c --endpoint URL --bucket B --key K --method GET|PUT|HEAD|DELETE --region R\n"
                 "                 --access-key AK --secret-key SK [--session-token T] --time YYYYMMDDTHHMMSSZ\n"
                 "                 [--expires S] [--style path|virtual]\n");
}

typedef struct slot {
    const char *name;
    const char **value;
} slot_t;

static int parse_args(int argc, char **argv, args_t *a)
{
    const char *expires = "3600", *style = "path";
    *a = (args_t){.method = "GET", .region = "us-east-1"};
    const slot_t slots[] = {
        {"endpoint", &a->endpoint},
        {"bucket", &a->bucket},
        {"key", &a->key},
        {"method", &a->method},
        {"region", &a->region},
        {"access-key", &a->access_key},
        {"secret-key", &a->secret_key},
        {"session-token", &a->session_token},
        {"time", &a->time},
        {"expires", &expires},
        {"style", &style},
    };
    enum { N = sizeof(slots) / sizeof(slots[0]) };
    struct option opts[N + 1] = {{0}};
    for (size_t i = 0; i < N; i++)
        opts[i] = (struct option){slots[i].name, required_argument, NULL, 0};

    int c, at;
    while ((c = getopt_long(argc, argv, "", opts, &at)) != -1) {
        if (c != 0)
            return -1;
        *slots[at].value = optarg;
    }
    char *end;
    a->expires = strtol(expires, &end, 10);
    a->path_style = strcmp(style, "path") == 0;
    bool complete = a->endpoint && a->bucket && a->key && a->access_key && a->secret_key && a->time;
    bool well_formed = *expires != '\0' && *end == '\0' && (a->path_style || strcmp(style, "virtual") == 0);
    return optind == argc && complete && well_formed ? 0 : -1;
}

int main(int argc, char **argv)
{
    args_t a;
    ota_sigv4_target_t target;
    char url[16384];
    ota_err_t rc;

    if (parse_args(argc, argv, &a) != 0) {
        usage(stderr);
        return 2;
    }
    ota_sigv4_signer_t signer = {a.access_key, a.secret_key, a.session_token, a.region};
    if ((rc = ota__sigv4_s3_target(a.endpoint, a.bucket, a.key, a.path_style, &target)) != OTA_OK)
        goto Exit;
    ota_sigv4_request_t req = {
        .signer = &signer,
        .method = a.method,
        .scheme = target.scheme,
        .host = target.host,
        .path = target.path,
        .amz_date = a.time,
    };
    if ((rc = ota__sigv4_presign(&req, a.expires, url, sizeof(url), NULL)) != OTA_OK)
        goto Exit;
    printf("%s\n", url);

Exit:
    if (rc != OTA_OK)
        fprintf(stderr, "presign_c: %s\n", ota_strerror(rc));
    return rc == OTA_OK ? 0 : 1;
}
