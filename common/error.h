/* common/error.h — the status codes and error messages every vrwkv function returns.
 * Holds no policy: callers decide what to do with an error; this only carries it. */
#ifndef VR_ERROR_H
#define VR_ERROR_H

#include <stddef.h>

typedef enum {
    VR_OK = 0,
    VR_ERR_IO,          /* a file or socket could not be opened, read or written */
    VR_ERR_FORMAT,      /* bytes do not follow the format they claim (corrupt, truncated) */
    VR_ERR_UNSUPPORTED, /* valid input that vrwkv does not handle (opcode, dtype, layout) */
    VR_ERR_INVALID,     /* a bad argument or value from the caller or user */
    VR_ERR_NOMEM,       /* allocation failed or a size limit was exceeded */
    VR_ERR_INTERNAL,    /* a broken invariant: a bug in vrwkv */
    VR_ERR_NOT_FOUND,   /* a key, session or file that does not exist */
    VR_ERR_UNAVAILABLE, /* a peer or service is down or unreachable; retrying may succeed */
    VR_ERR_CANCELLED,   /* the caller cancelled or its deadline passed */
    VR_ERR_AUTH         /* missing or wrong credentials */
} vr_status;

/* An error: a status and a one-line message a user can act on. */
typedef struct vr_error {
    vr_status code;
    char msg[512];
} vr_error;

/* Sets err (when non-NULL) and returns code, so callers can write
 * `return vr_error_set(err, VR_ERR_FORMAT, "%s: truncated", path);`. */
vr_status vr_error_set(vr_error *err, vr_status code, const char *fmt, ...)
    __attribute__((format(printf, 3, 4)));

/* Prepends "prefix: " to an existing message (adds context while unwinding). */
vr_status vr_error_wrap(vr_error *err, const char *fmt, ...) __attribute__((format(printf, 2, 3)));

const char *vr_status_name(vr_status code);

#endif
