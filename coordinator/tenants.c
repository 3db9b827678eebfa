/* coordinator/tenants.c — tenants config parsing and API-key authentication. */
#include "coordinator/tenants.h"

#include <cjson/cJSON.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "common/mapped_file.h"

static int valid_name(const char *s) {
    size_t n = strlen(s);
    if (n == 0 || n > 128) return 0;
    for (size_t i = 0; i < n; i++) {
        char c = s[i];
        if (!((c >= 'a' && c <= 'z') || (c >= 'A' && c <= 'Z') || (c >= '0' && c <= '9') || c == '-' || c == '_' ||
              c == '.'))
            return 0;
    }
    return strcmp(s, ".") && strcmp(s, "..");
}

static int int_field(const cJSON *o, const char *k, int def) {
    const cJSON *v = cJSON_GetObjectItemCaseSensitive(o, k);
    return cJSON_IsNumber(v) ? (int)v->valuedouble : def;
}

vr_status vr_tenants_parse(const char *json, const char *name, vr_tenants *out, vr_error *err) {
    memset(out, 0, sizeof *out);
    cJSON *root = cJSON_Parse(json);
    if (!root) return vr_error_set(err, VR_ERR_FORMAT, "%s: not valid JSON", name);
    const cJSON *arr = cJSON_GetObjectItemCaseSensitive(root, "tenants");
    vr_status st = VR_OK;
    if (!cJSON_IsArray(arr) || cJSON_GetArraySize(arr) == 0) {
        st = vr_error_set(err, VR_ERR_FORMAT, "%s: expected {\"tenants\": [ … ]} with at least one tenant", name);
        goto done;
    }
    out->items = calloc((size_t)cJSON_GetArraySize(arr), sizeof *out->items);
    if (!out->items) {
        st = vr_error_set(err, VR_ERR_NOMEM, "out of memory");
        goto done;
    }
    const cJSON *t;
    cJSON_ArrayForEach(t, arr) {
        const cJSON *nm = cJSON_GetObjectItemCaseSensitive(t, "name");
        const cJSON *key = cJSON_GetObjectItemCaseSensitive(t, "api_key");
        if (!cJSON_IsString(nm) || !valid_name(nm->valuestring)) {
            st = vr_error_set(err, VR_ERR_FORMAT, "%s: tenant %d needs a name of 1-128 [A-Za-z0-9._-]", name, out->n);
            goto done;
        }
        if (!cJSON_IsString(key) || strlen(key->valuestring) < 8) {
            st = vr_error_set(err, VR_ERR_FORMAT, "%s: tenant %s needs an api_key of at least 8 characters", name,
                              nm->valuestring);
            goto done;
        }
        for (int i = 0; i < out->n; i++)
            if (!strcmp(out->items[i].name, nm->valuestring) || !strcmp(out->items[i].api_key, key->valuestring)) {
                st = vr_error_set(err, VR_ERR_FORMAT, "%s: tenant %s repeats a name or an api_key", name,
                                  nm->valuestring);
                goto done;
            }
        vr_tenant *x = &out->items[out->n++];
        snprintf(x->name, sizeof x->name, "%s", nm->valuestring);
        x->api_key = strdup(key->valuestring);
        x->max_prompt_tokens = int_field(t, "max_prompt_tokens", 8192);
        x->max_tokens = int_field(t, "max_tokens", 4096);
        x->max_sessions = int_field(t, "max_sessions", 10000);
        if (!x->api_key) {
            st = vr_error_set(err, VR_ERR_NOMEM, "out of memory");
            goto done;
        }
    }
done:
    cJSON_Delete(root);
    if (st != VR_OK) vr_tenants_free(out);
    return st;
}

vr_status vr_tenants_load(const char *path, vr_tenants *out, vr_error *err) {
    char *text = NULL;
    vr_status st = vr_read_file(path, 16 << 20, &text, NULL, err);
    if (st != VR_OK) return st;
    st = vr_tenants_parse(text, path, out, err);
    free(text);
    return st;
}

vr_status vr_tenants_single(const char *api_key, vr_tenants *out, vr_error *err) {
    char json[1024];
    cJSON *k = cJSON_CreateString(api_key);
    char *quoted = k ? cJSON_PrintUnformatted(k) : NULL;
    cJSON_Delete(k);
    if (!quoted) return vr_error_set(err, VR_ERR_NOMEM, "out of memory");
    snprintf(json, sizeof json, "{\"tenants\": [{\"name\": \"default\", \"api_key\": %s}]}", quoted);
    free(quoted);
    return vr_tenants_parse(json, "api key", out, err);
}

void vr_tenants_free(vr_tenants *t) {
    for (int i = 0; i < t->n; i++) free(t->items[i].api_key);
    free(t->items);
    memset(t, 0, sizeof *t);
}

static int same_secret(const char *a, const char *b) {
    size_t na = strlen(a), nb = strlen(b);
    unsigned diff = (unsigned)(na ^ nb);
    for (size_t i = 0; i < na; i++) diff |= (unsigned char)a[i] ^ (unsigned char)b[i % (nb ? nb : 1)];
    return diff == 0;
}

const vr_tenant *vr_tenants_authenticate(const vr_tenants *t, const char *authorization) {
    if (!authorization) return NULL;
    const char *prefix = "Bearer ";
    if (strncmp(authorization, prefix, strlen(prefix)) != 0) return NULL;
    const char *key = authorization + strlen(prefix);
    const vr_tenant *found = NULL;
    for (int i = 0; i < t->n; i++)
        if (same_secret(key, t->items[i].api_key)) found = &t->items[i];
    return found;
}
