/* common/log.h — structured logs: one logfmt line per event on stderr,
 *   ts=2026-11-27T10:00:00.123Z level=info event=request_done tenant=acme ms=12
 * Values that contain spaces, quotes, '=' or control characters (or are empty) are quoted and
 * escaped, so every event stays exactly one parseable line. The threshold comes from the
 * environment variable VRWKV_LOG_LEVEL (debug|info|warn|error; default info).
 * Thread-safe: each line is written with one write(2). Must not allocate per call beyond the
 * stack, and must never exit or abort: logging cannot fail the caller. */
#ifndef VR_LOG_H
#define VR_LOG_H

#include <stdarg.h>

typedef enum { VR_LOG_DEBUG = 0, VR_LOG_INFO = 1, VR_LOG_WARN = 2, VR_LOG_ERROR = 3 } vr_log_level;

/* Longest line written; longer ones are cut and end with truncated=true. */
#define VR_LOG_MAX_LINE 8192

/* fmt holds the key=value pairs, e.g. "tenant=%s tokens=%d" (may be NULL or ""). A conversion
 * that directly follows '=' is one value: it is quoted when needed. */
void vr_log(vr_log_level level, const char *event, const char *fmt, ...) __attribute__((format(printf, 3, 4)));
void vr_logv(vr_log_level level, const char *event, const char *fmt, va_list ap)
    __attribute__((format(printf, 3, 0)));

/* Whether a line at level would be written (skip expensive argument building). */
int vr_log_enabled(vr_log_level level);
/* Overrides VRWKV_LOG_LEVEL. */
void vr_log_set_level(vr_log_level level);
/* Parses "debug|info|warn|warning|error" (case-insensitive); returns 0 when unknown. */
int vr_log_parse_level(const char *s, vr_log_level *out);
/* Redirects the lines to fd (tests); -1 restores stderr. The caller keeps fd open. */
void vr_log_set_fd(int fd);

#endif
