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
    size_t n = strlen(prefix);
    if (n > sizeof err->msg - 3) n = sizeof err->msg - 3;
    memcpy(err->msg, prefix, n);
    memcpy(err->msg + n, ": ", 2);
    size_t rest = sizeof err->msg - n - 3;
    size_t m = strlen(old);
    if (m > rest) m = rest;
    memcpy(err->msg + n + 2, old, m);
    err->msg[n + 2 + m] = 0;
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
    case VR_ERR_NOT_FOUND: return "not found";
    case VR_ERR_UNAVAILABLE: return "unavailable";
    case VR_ERR_CANCELLED: return "cancelled";
    case VR_ERR_AUTH: return "unauthenticated";
    }
    return "unknown";
}
