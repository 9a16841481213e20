/*
 * Integration: the audit log (GET /v1/audit). A representative write of every resource made with an API key is
 * recorded with its action, target and actor; writes that fail or are refused, and device-token writes, leave no
 * entry; the action and target_id filters and the keyset pages work.
 */
#define _GNU_SOURCE
#include <ctype.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "checks.h"

/* The admin key's id (the bootstrap key of h_g_srv), the actor of every write the fixtures make. */
static char g_admin_id[40];

/* GET /v1/audit with `query` as h_g_srv's admin: the answer (caller frees), checked to be a page. */
static void get_audit(const char *query, h_resp_t *r)
{
    char path[512];
    snprintf(path, sizeof path, "/v1/audit%s%s", query[0] != '\0' ? "?" : "", query);
    h_http(&h_g_srv, "GET", path, h_g_srv.admin_key, NULL, 0, NULL, r);
    EXPECT_STATUS(r, 200);
    CHECK(json_is_array(json_object_get(r->json, "items")) && json_object_get(r->json, "next") != NULL, "GET %s: %s",
          path, BODY(r));
}

/* The entry has the contract's shape, the admin as its actor, `action` and the target (`type`, `id`: NULL null). */
static void expect_entry(json_t *e, const char *action, const char *type, const char *id)
{
    json_t *actor = json_object_get(e, "actor"), *target = json_object_get(e, "target");
    time_t t;
    char *text = json_dumps(e, 0);
    CHECK(h_rfc3339_utc(h_jstr(e, "at"), &t) && h_streq(h_jstr(e, "action"), action) &&
              h_streq(h_jstr(actor, "api_key_id"), g_admin_id) && h_streq(h_jstr(actor, "name"), "bootstrap") &&
              h_streq(h_jstr(target, "type"), type) &&
              (id != NULL ? h_streq(h_jstr(target, "id"), id) : h_jnull(target, "id")) &&
              json_object_get(e, "details") != NULL,
          "want %s of %s %s by %s, got %s", action, type, id ? id : "null", g_admin_id, text);
    free(text);
}

/*
 * The entries of target `id` with `action`: exactly one, made by the admin (expect_entry). Returns its details
 * (caller decrefs).
 */
static json_t *expect_audited(const char *action, const char *type, const char *id)
{
    char query[256];
    h_resp_t r = {0};
    snprintf(query, sizeof query, "target_id=%s&action=%s", id, action);
    get_audit(query, &r);
    json_t *items = json_object_get(r.json, "items");
    CHECK(json_array_size(items) == 1, "want one %s entry of %s, got %s", action, id, BODY(&r));
    expect_entry(json_array_get(items, 0), action, type, id);
    json_t *details = json_incref(json_object_get(json_array_get(items, 0), "details"));
    h_resp_free(&r);
    return details;
}

/* expect_audited for an entry whose details do not matter here. */
static void expect_audited_plain(const char *action, const char *type, const char *id)
{
    json_decref(expect_audited(action, type, id));
}

/* `method` `path` with the JSON `body` (NULL: none) as the admin, answered `want`; returns the answer's JSON. */
static json_t *admin(const char *method, const char *path, const char *body, long want)
{
    h_resp_t r = {0};
    h_request(&h_g_srv, method, path, h_g_srv.admin_key, body, &r);
    CHECK(r.status == want, "%s %s: want %ld, got %ld: %s", method, path, want, r.status, BODY(&r));
    json_t *j = json_incref(r.json);
    h_resp_free(&r);
    return j;
}

/* The number of audit rows that SQL condition `where` selects equals `n`. */
static bool audit_rows(const char *where, int n)
{
    char expr[600];
    snprintf(expr, sizeof expr, "(SELECT count(*) FROM audit_log WHERE %s) = %d", where, n);
    return h_sql_holds(expr);
}

static void test_models_devices_tags(void **state)
{
    (void)state;
    char model[32], path[128], body[256];
    h_make_model(model, sizeof model, "Audited model");
    json_t *details = expect_audited("model.create", "model", model);
    CHECK(h_streq(h_jstr(details, "name"), "Audited model"), "model.create details");
    json_decref(details);

    h_device_t d;
    h_make_device(model, "1.0.0", &d);
    details = expect_audited("device.create", "device", d.id);
    CHECK(h_streq(h_jstr(details, "serial"), d.serial) && h_streq(h_jstr(details, "model"), model),
          "device.create details");
    json_decref(details);

    snprintf(path, sizeof path, "/v1/devices/%s", d.id);
    json_decref(admin("PATCH", path, "{\"tags\": [\"audited\"]}", 200));
    details = expect_audited("device.update", "device", d.id);
    CHECK(json_array_size(json_object_get(details, "tags")) == 1 && json_object_get(details, "name") == NULL,
          "device.update details name only the changed members");
    json_decref(details);

    snprintf(body, sizeof body, "{\"filter\": {\"ids\": [\"%s\"]}, \"add\": [\"bulk\"]}", d.id);
    json_decref(admin("POST", "/v1/devices/tags", body, 200));
    h_resp_t r = {0};
    get_audit("action=device.tag&limit=1", &r);
    json_t *e = json_array_get(json_object_get(r.json, "items"), 0);
    expect_entry(e, "device.tag", "device", NULL);
    details = json_object_get(e, "details");
    CHECK(h_jint(details, "matched") == 1 &&
              h_streq(json_string_value(json_array_get(json_object_get(json_object_get(details, "filter"), "ids"), 0)),
                      d.id),
          "device.tag details: %s", BODY(&r));
    h_resp_free(&r);

    snprintf(path, sizeof path, "/v1/devices/%s/token", d.id);
    json_decref(admin("POST", path, NULL, 200));
    expect_audited_plain("device.rotate_token", "device", d.id);

    snprintf(path, sizeof path, "/v1/devices/%s", d.id);
    json_decref(admin("DELETE", path, NULL, 204));
    expect_audited_plain("device.delete", "device", d.id);
}

/* Releases (made on job threads, their row and its entry in one statement), uploads, assignments. */
static void test_releases_uploads_assignments(void **state)
{
    (void)state;
    char model[32], path[128], assignment[40];
    h_make_model(model, sizeof model, "Audited releases");
    h_release_t rel, spare;
    h_make_release(model, "1.1.0", 256, &rel);
    json_t *details = expect_audited("release.create", "release", rel.id);
    CHECK(h_streq(h_jstr(details, "version"), "1.1.0") && h_streq(h_jstr(details, "model"), model),
          "release.create details");
    json_decref(details);

    json_t *upload = admin("POST", "/v1/uploads", "{\"artifact\": \"bin\", \"size\": 100}", 201);
    details = expect_audited("upload.create", "upload", h_jstr(upload, "upload_id"));
    CHECK(h_jint(details, "size") == 100 && h_streq(h_jstr(details, "artifact"), "bin"), "upload.create details");
    json_decref(details);
    json_decref(upload);

    h_device_t d;
    h_make_device(model, "1.0.0", &d);
    h_assign_ok(&d, &rel, assignment);
    details = expect_audited("assignment.create", "assignment", assignment);
    CHECK(h_streq(h_jstr(details, "device_id"), d.id) && h_streq(h_jstr(details, "release_id"), rel.id),
          "assignment.create details");
    json_decref(details);
    snprintf(path, sizeof path, "/v1/assignments/%s/cancel", assignment);
    json_decref(admin("POST", path, NULL, 200));
    expect_audited_plain("assignment.cancel", "assignment", assignment);

    snprintf(path, sizeof path, "/v1/releases/%s", rel.id);
    json_decref(admin("PATCH", path, "{\"notes\": \"audited notes\"}", 200));
    details = expect_audited("release.update", "release", rel.id);
    CHECK(h_streq(h_jstr(details, "notes"), "audited notes") && json_object_get(details, "status") == NULL,
          "release.update details");
    json_decref(details);
    json_decref(admin("PATCH", path, "{\"status\": \"withdrawn\"}", 200));
    expect_audited_plain("release.withdraw", "release", rel.id);

    h_make_release(model, "1.2.0", 64, &spare);
    snprintf(path, sizeof path, "/v1/releases/%s", spare.id);
    json_decref(admin("DELETE", path, NULL, 204));
    details = expect_audited("release.delete", "release", spare.id);
    CHECK(h_streq(h_jstr(details, "version"), "1.2.0"), "release.delete details");
    json_decref(details);
    h_release_free(&rel);
    h_release_free(&spare);
}

static void test_rollouts_and_keys(void **state)
{
    (void)state;
    char model[32], rollout[40], path[128];
    static const char *const ACTS[] = {"resume", "advance", "pause", "cancel"};
    h_make_model(model, sizeof model, "Audited rollouts");
    h_release_t rel;
    h_device_t target;
    h_make_release(model, "2.0.0", 64, &rel);
    /* A target that never heartbeats: a rollout of none would complete as soon as it runs, and could not pause. */
    h_make_device(model, "1.0.0", &target);
    json_decref(h_create_rollout(rel.id, "\"name\": \"audited\", \"waves\": [50, 100], \"start\": false", rollout));
    json_t *details = expect_audited("rollout.create", "rollout", rollout);
    CHECK(h_streq(h_jstr(details, "name"), "audited") && h_streq(h_jstr(details, "release_id"), rel.id),
          "rollout.create details");
    json_decref(details);
    for (size_t i = 0; i < sizeof ACTS / sizeof ACTS[0]; i++) {
        char action[32];
        snprintf(path, sizeof path, "/v1/rollouts/%s/%s", rollout, ACTS[i]);
        json_decref(admin("POST", path, NULL, 200));
        snprintf(action, sizeof action, "rollout.%s", ACTS[i]);
        expect_audited_plain(action, "rollout", rollout);
    }
    h_release_free(&rel);

    json_t *key = admin("POST", "/v1/api-keys", "{\"name\": \"audited key\", \"role\": \"viewer\"}", 201);
    char id[40];
    snprintf(id, sizeof id, "%s", h_jstr(key, "id"));
    json_decref(key);
    details = expect_audited("api_key.create", "api_key", id);
    CHECK(h_streq(h_jstr(details, "name"), "audited key") && h_streq(h_jstr(details, "role"), "viewer") &&
              json_object_get(details, "key") == NULL,
          "api_key.create details");
    json_decref(details);
    snprintf(path, sizeof path, "/v1/api-keys/%s", id);
    json_decref(admin("DELETE", path, NULL, 204));
    json_decref(admin("DELETE", path, NULL, 204)); /* revoked already: nothing changes, nothing recorded */
    expect_audited_plain("api_key.revoke", "api_key", id);
}

/* Writes that fail (an error inside the statement) or are refused leave no entry; nor do device-token writes. */
static void test_refused_writes_leave_no_entry(void **state)
{
    (void)state;
    char model[32], where[256], path[128], body[256], assignment[40], rollout[40];
    h_make_model(model, sizeof model, "Refusals");
    snprintf(body, sizeof body, "{\"id\": \"%s\", \"name\": \"again\"}", model);
    json_decref(admin("POST", "/v1/models", body, 409)); /* a unique violation in the audited INSERT */
    snprintf(where, sizeof where, "target_id = '%s'", model);
    CHECK(audit_rows(where, 1), "a refused duplicate model left an entry");

    json_decref(admin("POST", "/v1/devices", "{\"serial\": \"refused-serial-x1\", \"model\": \"no-such-model\"}", 422));
    CHECK(audit_rows("details->>'serial' = 'refused-serial-x1'", 0), "a device of no model left an entry");

    h_release_t rel;
    h_device_t d;
    h_make_release(model, "3.0.0", 64, &rel);
    h_make_device(model, "1.0.0", &d);
    h_assign_ok(&d, &rel, assignment);
    snprintf(path, sizeof path, "/v1/devices/%s/assignments", d.id);
    snprintf(body, sizeof body, "{\"release_id\": \"%s\"}", rel.id);
    json_decref(admin("POST", path, body, 409)); /* active_assignment_exists: an outcome, no error */
    snprintf(where, sizeof where, "action = 'assignment.create' AND details->>'device_id' = '%s'", d.id);
    CHECK(audit_rows(where, 1), "a refused assignment left an entry");

    snprintf(path, sizeof path, "/v1/releases/%s", rel.id);
    json_decref(admin("DELETE", path, NULL, 409)); /* in_use: a foreign key error */
    snprintf(where, sizeof where, "action = 'release.delete' AND target_id = '%s'", rel.id);
    CHECK(audit_rows(where, 0), "a refused release delete left an entry");

    snprintf(path, sizeof path, "/v1/assignments/%s/cancel", assignment);
    json_decref(admin("POST", path, NULL, 200));
    json_decref(admin("POST", path, NULL, 409));
    snprintf(where, sizeof where, "action = 'assignment.cancel' AND target_id = '%s'", assignment);
    CHECK(audit_rows(where, 1), "a refused cancel left an entry");

    json_decref(h_create_rollout(rel.id, "\"start\": false", rollout));
    snprintf(path, sizeof path, "/v1/rollouts/%s/pause", rollout);
    json_decref(admin("POST", path, NULL, 409));
    snprintf(where, sizeof where, "action = 'rollout.pause' AND target_id = '%s'", rollout);
    CHECK(audit_rows(where, 0), "a refused pause left an entry");

    /* A viewer's write (403) and a device's heartbeat. */
    json_t *key = admin("POST", "/v1/api-keys", "{\"name\": \"refused viewer\", \"role\": \"viewer\"}", 201);
    h_resp_t r = {0};
    h_request(&h_g_srv, "POST", "/v1/models", h_jstr(key, "key"), "{\"id\": \"viewer-model\", \"name\": \"v\"}", &r);
    EXPECT_STRICT_ERROR(&r, 403, "forbidden");
    h_resp_free(&r);
    json_decref(key);
    CHECK(audit_rows("actor_name = 'refused viewer'", 0), "a viewer's refused write left an entry");
    snprintf(where, sizeof where, "target_id = '%s' OR details->>'device_id' = '%s'", d.id, d.id);
    CHECK(audit_rows(where, 2), "want the device's create and its assignment only");
    h_heartbeat_fw(&d, "1.0.0", &r);
    h_resp_free(&r);
    CHECK(audit_rows(where, 2), "a device token's heartbeat left an entry");
    h_release_free(&rel);
}

static void test_filters_and_pages(void **state)
{
    (void)state;
    enum { N = 5 };
    char models[N][32];
    for (int i = 0; i < N; i++)
        h_make_model(models[i], sizeof models[i], "Paged");

    /* Every model.create entry, two a page, newest first: ours in reverse order of creation, each once. */
    char query[256], after[128] = "";
    int seen = 0, pages = 0, next_of_ours = N - 1;
    time_t last = (time_t)-1;
    for (;;) {
        h_resp_t r = {0};
        snprintf(query, sizeof query, "action=model.create&limit=2%s%s", after[0] ? "&after=" : "", after);
        get_audit(query, &r);
        json_t *items = json_object_get(r.json, "items"), *e;
        CHECK(json_array_size(items) <= 2, "a page of more than limit items: %s", BODY(&r));
        size_t i;
        json_array_foreach(items, i, e)
        {
            time_t at;
            CHECK(h_streq(h_jstr(e, "action"), "model.create") && h_rfc3339_utc(h_jstr(e, "at"), &at), "%s", BODY(&r));
            CHECK(last == (time_t)-1 || at <= last, "not newest first: %s", BODY(&r));
            last = at;
            const char *target = h_jstr(json_object_get(e, "target"), "id");
            for (int k = 0; k < N; k++) {
                if (h_streq(target, models[k])) {
                    CHECK(k == next_of_ours, "model %d came when %d was due", k, next_of_ours);
                    next_of_ours--;
                }
            }
            seen++;
        }
        pages++;
        const char *next = h_jstr(r.json, "next");
        if (next == NULL) {
            CHECK(h_jnull(r.json, "next"), "next is neither a cursor nor null: %s", BODY(&r));
            h_resp_free(&r);
            break;
        }
        CHECK(strlen(next) < sizeof after && pages < 1000, "cursor: %s", BODY(&r));
        snprintf(after, sizeof after, "%s", next);
        h_resp_free(&r);
    }
    CHECK(next_of_ours == -1, "only %d of our %d models were listed", N - 1 - next_of_ours, N);
    CHECK(pages >= 3, "%d entries in only %d pages of 2", seen, pages);

    /* Unfiltered: the newest entry first (the device made below comes first once made). */
    h_device_t newest;
    h_make_device(models[1], NULL, &newest);
    h_resp_t first = {0};
    get_audit("limit=1", &first);
    CHECK(json_array_size(json_object_get(first.json, "items")) == 1 && h_jstr(first.json, "next") != NULL,
          "GET /v1/audit?limit=1: %s", BODY(&first));
    expect_entry(json_array_get(json_object_get(first.json, "items"), 0), "device.create", "device", newest.id);
    h_resp_free(&first);

    /* A target's entries, its UUID in any case. */
    h_device_t d;
    h_make_device(models[0], NULL, &d);
    char upper[40];
    for (size_t i = 0; i <= strlen(d.id); i++)
        upper[i] = (char)toupper((unsigned char)d.id[i]);
    snprintf(query, sizeof query, "target_id=%s", upper);
    h_resp_t r = {0};
    get_audit(query, &r);
    CHECK(json_array_size(json_object_get(r.json, "items")) == 1, "target_id in upper case: %s", BODY(&r));
    expect_entry(json_array_get(json_object_get(r.json, "items"), 0), "device.create", "device", d.id);
    h_resp_free(&r);

    static const char *const BAD[] = {"action=Model.Create", "action=model", "limit=0",
                                      "limit=501",           "after=zzz",    "target_id="};
    for (size_t i = 0; i < sizeof BAD / sizeof BAD[0]; i++) {
        char path[128];
        snprintf(path, sizeof path, "/v1/audit?%s", BAD[i]);
        h_http(&h_g_srv, "GET", path, h_g_srv.admin_key, NULL, 0, NULL, &r);
        EXPECT_ERROR_AT(&r, 400, "bad_request", "GET", path);
        h_resp_free(&r);
    }
}

static int setup(void **state)
{
    int rc = h_group_setup(state);
    if (rc != 0)
        return rc;
    h_resp_t r = {0};
    h_http(&h_g_srv, "GET", "/v1/whoami", h_g_srv.admin_key, NULL, 0, NULL, &r);
    rc = r.status == 200 && h_is_uuid(h_jstr(r.json, "api_key_id")) ? 0 : -1;
    if (rc == 0)
        snprintf(g_admin_id, sizeof g_admin_id, "%s", h_jstr(r.json, "api_key_id"));
    h_resp_free(&r);
    return rc;
}

int main(void)
{
    const struct CMUnitTest tests[] = {
        cmocka_unit_test(test_models_devices_tags), cmocka_unit_test(test_releases_uploads_assignments),
        cmocka_unit_test(test_rollouts_and_keys),   cmocka_unit_test(test_refused_writes_leave_no_entry),
        cmocka_unit_test(test_filters_and_pages),
    };
    return cmocka_run_group_tests(tests, setup, h_group_teardown);
}
