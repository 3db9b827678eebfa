/* common/log.c — the logfmt line writer behind vr_log. Formats each printf conversion on its own
 * so a value can be quoted and escaped, then writes the whole line with one write(2).
 * Must not take locks (one write per line is the atomicity), allocate, exit or abort. */
#include "common/log.h"

#include <errno.h>
#include <pthread.h>
#include <stdatomic.h>
#include <stddef.h>
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <strings.h>
#include <sys/types.h>
#include <time.h>
#include <unistd.h>
#include <wchar.h>

static atomic_int g_level = VR_LOG_INFO;
static atomic_int g_fd = 2;
static pthread_once_t g_once = PTHREAD_ONCE_INIT;
static atomic_int g_level_overridden = 0;

static const char *const level_names[] = {"debug", "info", "warn", "error"};

int vr_log_parse_level(const char *s, vr_log_level *out) {
    if (!s) return 0;
    vr_log_level l;
    if (strcasecmp(s, "debug") == 0)
        l = VR_LOG_DEBUG;
    else if (strcasecmp(s, "info") == 0)
        l = VR_LOG_INFO;
    else if (strcasecmp(s, "warn") == 0 || strcasecmp(s, "warning") == 0)
        l = VR_LOG_WARN;
    else if (strcasecmp(s, "error") == 0)
        l = VR_LOG_ERROR;
    else
        return 0;
    if (out) *out = l;
    return 1;
}

static void init_from_env(void) {
    vr_log_level l = VR_LOG_INFO;
    if (!atomic_load(&g_level_overridden) && vr_log_parse_level(getenv("VRWKV_LOG_LEVEL"), &l))
        atomic_store(&g_level, (int)l);
}

int vr_log_enabled(vr_log_level level) {
    pthread_once(&g_once, init_from_env);
    return (int)level >= atomic_load(&g_level);
}

void vr_log_set_level(vr_log_level level) {
    atomic_store(&g_level_overridden, 1);
    pthread_once(&g_once, init_from_env);
    atomic_store(&g_level, (int)level);
}

void vr_log_set_fd(int fd) { atomic_store(&g_fd, fd < 0 ? 2 : fd); }

/* ---- the line buffer ---- */

typedef struct line {
    char buf[VR_LOG_MAX_LINE];
    size_t len;
    int cut;
} line;

/* room for " truncated=true\n" is kept at the end */
#define TAIL_RESERVE 17

static void put(line *l, const char *s, size_t n) {
    size_t room = sizeof l->buf - TAIL_RESERVE - l->len;
    if (n > room) {
        n = room;
        l->cut = 1;
    }
    memcpy(l->buf + l->len, s, n);
    l->len += n;
}

static void put_str(line *l, const char *s) { put(l, s, strlen(s)); }

static int needs_quotes(const char *s, size_t n) {
    if (n == 0) return 1;
    for (size_t i = 0; i < n; i++) {
        unsigned char c = (unsigned char)s[i];
        if (c <= ' ' || c == '"' || c == '=' || c == '\\' || c == 0x7f) return 1;
    }
    return 0;
}

/* Escapes control characters (always) and quotes/backslashes (inside quotes). */
static void put_escaped(line *l, const char *s, size_t n, int quoted) {
    for (size_t i = 0; i < n; i++) {
        unsigned char c = (unsigned char)s[i];
        char esc[8];
        if (c == '\n')
            put(l, "\\n", 2);
        else if (c == '\r')
            put(l, "\\r", 2);
        else if (c == '\t')
            put(l, "\\t", 2);
        else if (c < 0x20 || c == 0x7f) {
            snprintf(esc, sizeof esc, "\\x%02x", c);
            put(l, esc, 4);
        } else if (quoted && (c == '"' || c == '\\')) {
            esc[0] = '\\';
            esc[1] = (char)c;
            put(l, esc, 2);
        } else {
            put(l, (const char *)&s[i], 1);
        }
    }
}

static void put_value(line *l, const char *s, size_t n, int as_value) {
    if (as_value && needs_quotes(s, n)) {
        put(l, "\"", 1);
        put_escaped(l, s, n, 1);
        put(l, "\"", 1);
    } else {
        put_escaped(l, s, n, 0);
    }
}

/* Formats one conversion (spec is "%...c", NUL-terminated) with its arguments into out. */
static int format_one(char *out, size_t cap, const char *spec, char conv, const char *len_mod, int nstar, int s1,
                      int s2, va_list *ap) {
#define EMIT(T)                                                  \
    do {                                                         \
        T v_ = va_arg(*ap, T);                                   \
        if (nstar == 0) return snprintf(out, cap, spec, v_);     \
        if (nstar == 1) return snprintf(out, cap, spec, s1, v_); \
        return snprintf(out, cap, spec, s1, s2, v_);             \
    } while (0)
    int hh = strcmp(len_mod, "hh") == 0, h = strcmp(len_mod, "h") == 0, lo = strcmp(len_mod, "l") == 0,
        ll = strcmp(len_mod, "ll") == 0, j = strcmp(len_mod, "j") == 0, z = strcmp(len_mod, "z") == 0,
        t = strcmp(len_mod, "t") == 0, L = strcmp(len_mod, "L") == 0;
    switch (conv) {
    case 'd':
    case 'i':
        if (lo) EMIT(long);
        if (ll) EMIT(long long);
        if (j) EMIT(intmax_t);
        if (z) EMIT(ssize_t);
        if (t) EMIT(ptrdiff_t);
        (void)hh;
        (void)h;
        EMIT(int);
    case 'u':
    case 'o':
    case 'x':
    case 'X':
        if (lo) EMIT(unsigned long);
        if (ll) EMIT(unsigned long long);
        if (j) EMIT(uintmax_t);
        if (z) EMIT(size_t);
        if (t) EMIT(ptrdiff_t);
        EMIT(unsigned int);
    case 'c':
        if (lo) EMIT(wint_t);
        EMIT(int);
    case 's':
        if (lo) EMIT(const wchar_t *);
        EMIT(const char *);
    case 'p':
        EMIT(void *);
    case 'f':
    case 'F':
    case 'e':
    case 'E':
    case 'g':
    case 'G':
    case 'a':
    case 'A':
        if (L) EMIT(long double);
        EMIT(double);
    default:
        return -1;
    }
#undef EMIT
}

static void format_fields(line *l, const char *fmt, va_list *ap) {
    const char *p = fmt;
    while (*p) {
        if (*p != '%') {
            const char *q = p;
            while (*q && *q != '%') q++;
            put_escaped(l, p, (size_t)(q - p), 0);
            p = q;
            continue;
        }
        if (p[1] == '%') {
            put(l, "%", 1);
            p += 2;
            continue;
        }
        /* %[flags][width][.precision][length]conversion */
        const char *start = p++;
        int nstar = 0, s1 = 0, s2 = 0;
        while (*p && strchr("-+ #0'", *p)) p++;
        if (*p == '*') {
            s1 = va_arg(*ap, int);
            nstar++;
            p++;
        } else {
            while (*p >= '0' && *p <= '9') p++;
        }
        if (*p == '.') {
            p++;
            if (*p == '*') {
                int v = va_arg(*ap, int);
                if (nstar == 0)
                    s1 = v;
                else
                    s2 = v;
                nstar++;
                p++;
            } else {
                while (*p >= '0' && *p <= '9') p++;
            }
        }
        char len_mod[3] = {0, 0, 0};
        if ((p[0] == 'h' && p[1] == 'h') || (p[0] == 'l' && p[1] == 'l')) {
            len_mod[0] = p[0];
            len_mod[1] = p[1];
            p += 2;
        } else if (*p && strchr("hljztL", *p)) {
            len_mod[0] = *p++;
        }
        char conv = *p;
        if (!conv) break;
        p++;
        char spec[64];
        size_t sl = (size_t)(p - start);
        if (sl >= sizeof spec || conv == 'n') {
            /* absurd spec or %n (never written): consume the argument, print nothing */
            if (conv == 'n') (void)va_arg(*ap, void *);
            continue;
        }
        memcpy(spec, start, sl);
        spec[sl] = 0;
        char tmp[4096];
        int k = format_one(tmp, sizeof tmp, spec, conv, len_mod, nstar, s1, s2, ap);
        if (k < 0) {
            put_str(l, "?");
            continue;
        }
        size_t n = (size_t)k < sizeof tmp ? (size_t)k : sizeof tmp - 1;
        if ((size_t)k >= sizeof tmp) l->cut = 1;
        /* a conversion right after '=' that ends the token is a value */
        int as_value = start > fmt && start[-1] == '=' && (*p == 0 || *p == ' ');
        put_value(l, tmp, n, as_value);
    }
}

void vr_logv(vr_log_level level, const char *event, const char *fmt, va_list ap) {
    if ((int)level < VR_LOG_DEBUG || (int)level > VR_LOG_ERROR) level = VR_LOG_ERROR;
    if (!vr_log_enabled(level)) return;
    int saved_errno = errno;
    line l;
    l.len = 0;
    l.cut = 0;

    struct timespec ts;
    clock_gettime(CLOCK_REALTIME, &ts);
    struct tm tm;
    time_t secs = ts.tv_sec;
    gmtime_r(&secs, &tm);
    char head[96];
    int hn = snprintf(head, sizeof head, "ts=%04d-%02d-%02dT%02d:%02d:%02d.%03dZ level=%s event=", tm.tm_year + 1900,
                      tm.tm_mon + 1, tm.tm_mday, tm.tm_hour, tm.tm_min, tm.tm_sec, (int)(ts.tv_nsec / 1000000),
                      level_names[level]);
    put(&l, head, (size_t)hn);
    const char *ev = event && *event ? event : "unknown";
    put_value(&l, ev, strlen(ev), 1);
    if (fmt && *fmt) {
        put(&l, " ", 1);
        va_list ap2;
        va_copy(ap2, ap);
        format_fields(&l, fmt, &ap2);
        va_end(ap2);
    }
    /* no trailing spaces before the newline */
    while (l.len > 0 && l.buf[l.len - 1] == ' ') l.len--;
    if (l.cut) {
        memcpy(l.buf + l.len, " truncated=true", 15);
        l.len += 15;
    }
    l.buf[l.len++] = '\n';

    int fd = atomic_load(&g_fd);
    size_t off = 0;
    while (off < l.len) {
        ssize_t w = write(fd, l.buf + off, l.len - off);
        if (w < 0 && errno == EINTR) continue;
        if (w <= 0) break;
        off += (size_t)w;
    }
    errno = saved_errno;
}

void vr_log(vr_log_level level, const char *event, const char *fmt, ...) {
    va_list ap;
    va_start(ap, fmt);
    vr_logv(level, event, fmt, ap);
    va_end(ap);
}
