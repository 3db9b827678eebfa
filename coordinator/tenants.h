/* coordinator/tenants.h — tenants and their API keys, loaded from a JSON config file:
 *   {"tenants": [{"name": "acme", "api_key": "…", "max_prompt_tokens": 4096,
 *                 "max_sessions": 1000, "max_tokens": 1024}]}
 * Lookup by key is constant-time in the key's contents (no early exit on the first differing
 * byte). Knows nothing of gRPC. */
#ifndef VR_TENANTS_H
#define VR_TENANTS_H

#include "common/error.h"

typedef struct vr_tenant {
    char name[129];
    char *api_key;
    int max_prompt_tokens; /* ids in one turn's prompt (image counted as its rows) */
    int max_tokens;        /* generated tokens per turn */
    int max_sessions;
} vr_tenant;

typedef struct vr_tenants {
    vr_tenant *items;
    int n;
} vr_tenants;

vr_status vr_tenants_load(const char *path, vr_tenants *out, vr_error *err);
vr_status vr_tenants_parse(const char *json, const char *name, vr_tenants *out, vr_error *err);
/* One tenant "default" with the given key (for `vrwkv serve` without a tenants file). */
vr_status vr_tenants_single(const char *api_key, vr_tenants *out, vr_error *err);
void vr_tenants_free(vr_tenants *t);
/* From an "authorization" header value ("Bearer <key>"); NULL when missing or unknown. */
const vr_tenant *vr_tenants_authenticate(const vr_tenants *t, const char *authorization);

#endif
