/* common/error.c — formatting of vr_error messages. Must not print or exit. */
#include "common/error.h"

#include <stdarg.h>
#include <stdio.h>
#include <string.h>

vr_status vr_error_set(vr_error *err, vr_status code, const char *fmt, ...) {
    if (err) {
        va_list ap;
        va_start(ap, fmt);
        err->code = code;
        vsnprintf(err->msg, sizeof err->msg, fmt, ap);
        va_end(ap);
    }
    return code;
}

vr_status vr_error_wrap(vr_error *err, const char *fmt, ...) {
    if (!err) return VR_ERR_INTERNAL;
    char prefix[256];
    va_list ap;
    va_start(ap, fmt);
    vsnprintf(prefix, sizeof prefix, fmt, ap);
    va_end(ap);
    char old[sizeof err->msg];
    memcpy(old, err->msg, sizeof old);
    snprintf(err->msg, sizeof err->msg, "%s: %s", prefix, old);
    return err->code;
}

const char *vr_status_name(vr_status code) {
    switch (code) {
    case VR_OK: return "ok";
    case VR_ERR_IO: return "io error";
    case VR_ERR_FORMAT: return "format error";
    case VR_ERR_UNSUPPORTED: return "unsupported";
    case VR_ERR_INVALID: return "invalid argument";
    case VR_ERR_NOMEM: return "out of memory";
    case VR_ERR_INTERNAL: return "internal error";
    }
    return "unknown";
}
