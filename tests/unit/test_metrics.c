/* tests/unit/test_metrics.c — Prometheus metrics and the structured log: the exposition text is
 * checked line by line (labelled counter with escaping, gauge, cumulative histogram buckets);
 * registration refuses bad names; 4 threads observing concurrently sum exactly; the HTTP
 * endpoint serves /metrics, /healthz and 404 over a real socket, and an idle client or one
 * sending 1 MB of garbage does not stall it; vr_log writes one logfmt line per event. */
#include <setjmp.h>
#include <stdarg.h>
#include <stddef.h>
#include <stdint.h>
#include <stdlib.h>
#include <string.h>
#include <cmocka.h>

#include <arpa/inet.h>
#include <errno.h>
#include <fcntl.h>
#include <math.h>
#include <netinet/in.h>
#include <poll.h>
#include <pthread.h>
#include <stdio.h>
#include <sys/socket.h>
#include <time.h>
#include <unistd.h>

#include "common/log.h"
#include "common/metrics.h"

static int64_t ms_now(void) {
    struct timespec ts;
    clock_gettime(CLOCK_MONOTONIC, &ts);
    return (int64_t)ts.tv_sec * 1000 + ts.tv_nsec / 1000000;
}

/* Compares text with the expected lines one by one (clear failure messages). */
static void expect_lines(const char *text, const char *const *lines, int n) {
    const char *p = text;
    for (int i = 0; i < n; i++) {
        const char *nl = strchr(p, '\n');
        if (!nl) fail_msg("line %d missing: expected \"%s\"", i + 1, lines[i]);
        size_t len = (size_t)(nl - p);
        if (len != strlen(lines[i]) || memcmp(p, lines[i], len) != 0)
            fail_msg("line %d: got \"%.*s\", expected \"%s\"", i + 1, (int)len, p, lines[i]);
        p = nl + 1;
    }
    if (*p) fail_msg("unexpected extra output: \"%s\"", p);
}

static void test_render_format(void **st) {
    (void)st;
    vr_error err = {0};
    vr_metrics *m = NULL;
    assert_int_equal(vr_metrics_create(&m, &err), VR_OK);
    vr_counter *c = NULL;
    vr_gauge *g = NULL;
    vr_histogram *h = NULL, *hl = NULL;
    const char *cl[] = {"code", "method"};
    assert_int_equal(vr_metrics_counter(m, "vrwkv_requests_total", "Requests served.\nBy code \\ method.", cl, 2, &c, &err),
                     VR_OK);
    assert_int_equal(vr_metrics_gauge(m, "vrwkv_live_sessions", "Sessions in memory.", NULL, 0, &g, &err), VR_OK);
    const double bounds[] = {0.1, 0.5, 1};
    assert_int_equal(vr_metrics_histogram(m, "vrwkv_step_seconds", "Step latency.", NULL, 0, bounds, 3, &h, &err), VR_OK);
    const char *hln[] = {"stage"};
    assert_int_equal(vr_metrics_histogram(m, "vrwkv_hop_seconds", "Hop latency.", hln, 1, NULL, 0, &hl, &err), VR_OK);

    const char *ok[] = {"200", "GET"};
    const char *odd[] = {"500", "a\"b\\c\nd"};
    vr_counter_inc(c, ok);
    vr_counter_inc(c, ok);
    vr_counter_add(c, odd, 2.5);
    vr_counter_add(c, ok, -5); /* ignored */
    vr_gauge_set(g, NULL, 3);
    vr_gauge_add(g, NULL, -1.5);
    vr_histogram_observe(h, NULL, 0.0625);
    vr_histogram_observe(h, NULL, 0.5); /* a bound is inclusive */
    vr_histogram_observe(h, NULL, 0.25);
    vr_histogram_observe(h, NULL, 2);
    const char *s1[] = {"1"};
    vr_histogram_observe(hl, s1, 0.003);
    assert_true(vr_metric_value(c, ok) == 2.0);
    double sum = 0;
    unsigned long long cnt = 0;
    assert_true(vr_histogram_read(h, NULL, &sum, &cnt));
    assert_true(sum == 2.8125);
    assert_int_equal(cnt, 4);

    char *text = NULL;
    size_t len = 0;
    assert_int_equal(vr_metrics_render(m, &text, &len, &err), VR_OK);
    assert_int_equal(len, strlen(text));
    const char *expected[] = {
        "# HELP vrwkv_requests_total Requests served.\\nBy code \\\\ method.",
        "# TYPE vrwkv_requests_total counter",
        "vrwkv_requests_total{code=\"200\",method=\"GET\"} 2",
        "vrwkv_requests_total{code=\"500\",method=\"a\\\"b\\\\c\\nd\"} 2.5",
        "# HELP vrwkv_live_sessions Sessions in memory.",
        "# TYPE vrwkv_live_sessions gauge",
        "vrwkv_live_sessions 1.5",
        "# HELP vrwkv_step_seconds Step latency.",
        "# TYPE vrwkv_step_seconds histogram",
        "vrwkv_step_seconds_bucket{le=\"0.1\"} 1",
        "vrwkv_step_seconds_bucket{le=\"0.5\"} 3",
        "vrwkv_step_seconds_bucket{le=\"1\"} 3",
        "vrwkv_step_seconds_bucket{le=\"+Inf\"} 4",
        "vrwkv_step_seconds_sum 2.8125",
        "vrwkv_step_seconds_count 4",
        "# HELP vrwkv_hop_seconds Hop latency.",
        "# TYPE vrwkv_hop_seconds histogram",
        "vrwkv_hop_seconds_bucket{stage=\"1\",le=\"0.001\"} 0",
        "vrwkv_hop_seconds_bucket{stage=\"1\",le=\"0.0025\"} 0",
        "vrwkv_hop_seconds_bucket{stage=\"1\",le=\"0.005\"} 1",
        "vrwkv_hop_seconds_bucket{stage=\"1\",le=\"0.01\"} 1",
        "vrwkv_hop_seconds_bucket{stage=\"1\",le=\"0.025\"} 1",
        "vrwkv_hop_seconds_bucket{stage=\"1\",le=\"0.05\"} 1",
        "vrwkv_hop_seconds_bucket{stage=\"1\",le=\"0.1\"} 1",
        "vrwkv_hop_seconds_bucket{stage=\"1\",le=\"0.25\"} 1",
        "vrwkv_hop_seconds_bucket{stage=\"1\",le=\"0.5\"} 1",
        "vrwkv_hop_seconds_bucket{stage=\"1\",le=\"1\"} 1",
        "vrwkv_hop_seconds_bucket{stage=\"1\",le=\"2.5\"} 1",
        "vrwkv_hop_seconds_bucket{stage=\"1\",le=\"5\"} 1",
        "vrwkv_hop_seconds_bucket{stage=\"1\",le=\"10\"} 1",
        "vrwkv_hop_seconds_bucket{stage=\"1\",le=\"30\"} 1",
        "vrwkv_hop_seconds_bucket{stage=\"1\",le=\"60\"} 1",
        "vrwkv_hop_seconds_bucket{stage=\"1\",le=\"+Inf\"} 1",
        "vrwkv_hop_seconds_sum{stage=\"1\"} 0.003",
        "vrwkv_hop_seconds_count{stage=\"1\"} 1",
    };
    expect_lines(text, expected, (int)(sizeof expected / sizeof expected[0]));
    free(text);

    /* special values; a NULL metric is a no-op */
    vr_gauge_set(g, NULL, INFINITY);
    vr_counter_inc(NULL, NULL);
    vr_histogram_observe(NULL, NULL, 1);
    assert_int_equal(vr_metrics_render(m, &text, &len, &err), VR_OK);
    assert_non_null(strstr(text, "\nvrwkv_live_sessions +Inf\n"));
    free(text);
    vr_gauge_set(g, NULL, 1e-7);
    assert_int_equal(vr_metrics_render(m, &text, &len, &err), VR_OK);
    assert_non_null(strstr(text, "\nvrwkv_live_sessions 1e-07\n"));
    assert_null(strstr(text, "dropped"));
    free(text);
    /* a NaN observation is dropped and counted */
    vr_histogram_observe(h, NULL, NAN);
    assert_int_equal(vr_metrics_render(m, &text, &len, &err), VR_OK);
    assert_non_null(strstr(text, "\nvrwkv_metrics_dropped_samples_total 1\n"));
    free(text);
    vr_metrics_free(m);
}

static void test_registration_errors(void **st) {
    (void)st;
    vr_error err = {0};
    vr_metrics *m = NULL;
    assert_int_equal(vr_metrics_create(&m, &err), VR_OK);
    vr_counter *c = NULL;
    assert_int_equal(vr_metrics_counter(m, "ok_total", "x", NULL, 0, &c, &err), VR_OK);
    assert_int_equal(vr_metrics_counter(m, "ok_total", "x", NULL, 0, &c, &err), VR_ERR_INVALID);
    assert_null(c);
    assert_non_null(strstr(err.msg, "already"));
    assert_int_equal(vr_metrics_counter(m, "9bad", "x", NULL, 0, &c, &err), VR_ERR_INVALID);
    assert_int_equal(vr_metrics_counter(m, "bad-name", "x", NULL, 0, &c, &err), VR_ERR_INVALID);
    const char *bad_label[] = {"__reserved"};
    assert_int_equal(vr_metrics_counter(m, "a_total", "x", bad_label, 1, &c, &err), VR_ERR_INVALID);
    const char *twice[] = {"a", "a"};
    assert_int_equal(vr_metrics_counter(m, "b_total", "x", twice, 2, &c, &err), VR_ERR_INVALID);
    const char *le[] = {"le"};
    vr_histogram *h = NULL;
    assert_int_equal(vr_metrics_histogram(m, "h1", "x", le, 1, NULL, 0, &h, &err), VR_ERR_INVALID);
    const double down[] = {1, 0.5};
    assert_int_equal(vr_metrics_histogram(m, "h2", "x", NULL, 0, down, 2, &h, &err), VR_ERR_INVALID);
    const double inf[] = {1, INFINITY};
    assert_int_equal(vr_metrics_histogram(m, "h3", "x", NULL, 0, inf, 2, &h, &err), VR_ERR_INVALID);
    vr_metrics_free(m);
}

typedef struct worker_arg {
    vr_histogram *h;
    vr_counter *c;
    int id;
} worker_arg;

#define OBS_PER_THREAD 100000

static void *observer(void *p) {
    worker_arg *a = p;
    const char *lab[] = {(a->id % 2) ? "odd" : "even"};
    for (int i = 0; i < OBS_PER_THREAD; i++) {
        vr_histogram_observe(a->h, NULL, 0.25);
        vr_counter_inc(a->c, lab);
    }
    return NULL;
}

static void test_concurrent_observe(void **st) {
    (void)st;
    vr_error err = {0};
    vr_metrics *m = NULL;
    assert_int_equal(vr_metrics_create(&m, &err), VR_OK);
    vr_histogram *h = NULL;
    vr_counter *c = NULL;
    assert_int_equal(vr_metrics_histogram(m, "lat_seconds", "x", NULL, 0, NULL, 0, &h, &err), VR_OK);
    const char *ln[] = {"parity"};
    assert_int_equal(vr_metrics_counter(m, "tokens_total", "x", ln, 1, &c, &err), VR_OK);
    pthread_t th[4];
    worker_arg args[4];
    for (int i = 0; i < 4; i++) {
        args[i] = (worker_arg){h, c, i};
        assert_int_equal(pthread_create(&th[i], NULL, observer, &args[i]), 0);
    }
    /* render concurrently with the updates */
    for (int i = 0; i < 20; i++) {
        char *text = NULL;
        size_t len = 0;
        assert_int_equal(vr_metrics_render(m, &text, &len, &err), VR_OK);
        free(text);
    }
    for (int i = 0; i < 4; i++) pthread_join(th[i], NULL);
    double sum = 0;
    unsigned long long cnt = 0;
    assert_true(vr_histogram_read(h, NULL, &sum, &cnt));
    assert_int_equal(cnt, 4 * OBS_PER_THREAD);
    assert_true(sum == 0.25 * 4 * OBS_PER_THREAD);
    const char *even[] = {"even"}, *odd[] = {"odd"};
    assert_true(vr_metric_value(c, even) == 2 * OBS_PER_THREAD);
    assert_true(vr_metric_value(c, odd) == 2 * OBS_PER_THREAD);
    char *text = NULL;
    size_t len = 0;
    assert_int_equal(vr_metrics_render(m, &text, &len, &err), VR_OK);
    assert_non_null(strstr(text, "\nlat_seconds_bucket{le=\"0.25\"} 400000\n"));
    assert_non_null(strstr(text, "\nlat_seconds_bucket{le=\"0.1\"} 0\n"));
    assert_non_null(strstr(text, "\nlat_seconds_count 400000\n"));
    assert_non_null(strstr(text, "\nlat_seconds_sum 100000\n"));
    free(text);
    vr_metrics_free(m);
}

/* ---- HTTP ---- */

static int connect_local(int port) {
    int fd = socket(AF_INET, SOCK_STREAM, 0);
    assert_true(fd >= 0);
    struct sockaddr_in sa;
    memset(&sa, 0, sizeof sa);
    sa.sin_family = AF_INET;
    sa.sin_port = htons((uint16_t)port);
    sa.sin_addr.s_addr = htonl(INADDR_LOOPBACK);
    assert_int_equal(connect(fd, (struct sockaddr *)&sa, sizeof sa), 0);
    return fd;
}

/* Sends req and reads the whole response (until the server closes) within timeout_ms.
 * Returns a malloc'd NUL-terminated response. */
static char *http_request(int port, const char *req, int timeout_ms) {
    int64_t deadline = ms_now() + timeout_ms;
    int fd = connect_local(port);
    size_t n = strlen(req), off = 0;
    while (off < n) {
        ssize_t w = send(fd, req + off, n - off, MSG_NOSIGNAL);
        assert_true(w > 0);
        off += (size_t)w;
    }
    size_t cap = 1 << 16, len = 0;
    char *buf = malloc(cap);
    for (;;) {
        int left = (int)(deadline - ms_now());
        if (left <= 0) fail_msg("no complete response to \"%.20s\" within %d ms", req, timeout_ms);
        struct pollfd p = {.fd = fd, .events = POLLIN, .revents = 0};
        if (poll(&p, 1, left) <= 0) continue;
        if (len + 1 >= cap) {
            cap *= 2;
            buf = realloc(buf, cap);
        }
        ssize_t r = recv(fd, buf + len, cap - len - 1, 0);
        if (r < 0 && errno == EINTR) continue;
        if (r <= 0) break;
        len += (size_t)r;
    }
    buf[len] = 0;
    close(fd);
    return buf;
}

static const char *body_of(const char *resp) {
    const char *b = strstr(resp, "\r\n\r\n");
    return b ? b + 4 : "";
}

typedef struct garbage_arg {
    int port;
    int fd;
} garbage_arg;

/* Sends up to 1 MB of garbage without blocking for more than ~3 s; errors (reset) are fine. */
static void *garbage_client(void *p) {
    garbage_arg *g = p;
    char *junk = malloc(1 << 20);
    for (int i = 0; i < (1 << 20); i++) junk[i] = (char)('A' + i % 26);
    int fl = fcntl(g->fd, F_GETFL, 0);
    fcntl(g->fd, F_SETFL, fl | O_NONBLOCK);
    size_t off = 0;
    int64_t deadline = ms_now() + 3000;
    while (off < (1u << 20) && ms_now() < deadline) {
        ssize_t w = send(g->fd, junk + off, (1u << 20) - off, MSG_NOSIGNAL);
        if (w > 0) {
            off += (size_t)w;
            continue;
        }
        if (w < 0 && (errno == EAGAIN || errno == EINTR)) {
            struct pollfd pf = {.fd = g->fd, .events = POLLOUT, .revents = 0};
            poll(&pf, 1, 50);
            continue;
        }
        break; /* reset by the server: expected */
    }
    free(junk);
    return NULL;
}

static void test_http_endpoint(void **st) {
    (void)st;
    vr_error err = {0};
    vr_metrics *m = NULL;
    assert_int_equal(vr_metrics_create(&m, &err), VR_OK);
    vr_counter *c = NULL;
    assert_int_equal(vr_metrics_counter(m, "vrwkv_http_test_total", "A test counter.", NULL, 0, &c, &err), VR_OK);
    vr_counter_add(c, NULL, 7);
    vr_metrics_http *h = NULL;
    int port = 0;
    assert_int_equal(vr_metrics_http_start(m, "127.0.0.1", 0, &port, &h, &err), VR_OK);
    assert_true(port > 0);

    char *r = http_request(port, "GET /metrics HTTP/1.1\r\nHost: x\r\n\r\n", 2000);
    assert_true(strncmp(r, "HTTP/1.1 200 ", 13) == 0);
    assert_non_null(strstr(r, "Content-Type: text/plain; version=0.0.4"));
    assert_non_null(strstr(body_of(r), "# TYPE vrwkv_http_test_total counter\nvrwkv_http_test_total 7\n"));
    free(r);

    r = http_request(port, "GET /healthz HTTP/1.0\r\n\r\n", 2000);
    assert_true(strncmp(r, "HTTP/1.1 200 ", 13) == 0);
    assert_string_equal(body_of(r), "ok\n");
    free(r);

    r = http_request(port, "GET /metrics?x=1 HTTP/1.1\r\n\r\n", 2000);
    assert_true(strncmp(r, "HTTP/1.1 200 ", 13) == 0);
    free(r);

    r = http_request(port, "GET /nope HTTP/1.1\r\n\r\n", 2000);
    assert_true(strncmp(r, "HTTP/1.1 404 ", 13) == 0);
    free(r);

    r = http_request(port, "POST /metrics HTTP/1.1\r\nContent-Length: 0\r\n\r\n", 2000);
    assert_true(strncmp(r, "HTTP/1.1 405 ", 13) == 0);
    free(r);

    r = http_request(port, "HEAD /healthz HTTP/1.1\r\n\r\n", 2000);
    assert_true(strncmp(r, "HTTP/1.1 200 ", 13) == 0);
    assert_string_equal(body_of(r), "");
    free(r);

    r = http_request(port, "garbage\r\n\r\n", 2000);
    assert_true(strncmp(r, "HTTP/1.1 400 ", 13) == 0);
    free(r);

    vr_metrics_http_stop(h);
    vr_metrics_free(m);
}

static void test_http_slow_clients_do_not_stall(void **st) {
    (void)st;
    vr_error err = {0};
    vr_metrics *m = NULL;
    assert_int_equal(vr_metrics_create(&m, &err), VR_OK);
    vr_metrics_http *h = NULL;
    int port = 0;
    assert_int_equal(vr_metrics_http_start(m, "127.0.0.1", 0, &port, &h, &err), VR_OK);

    int idle = connect_local(port); /* connects and sends nothing */
    garbage_arg g = {port, connect_local(port)};
    pthread_t th;
    assert_int_equal(pthread_create(&th, NULL, garbage_client, &g), 0);
    usleep(100 * 1000);

    int64_t t0 = ms_now();
    char *r = http_request(port, "GET /healthz HTTP/1.1\r\n\r\n", 2000);
    assert_true(ms_now() - t0 < 2000);
    assert_true(strncmp(r, "HTTP/1.1 200 ", 13) == 0);
    free(r);
    pthread_join(th, NULL);
    /* the garbage got a 431 (or a reset) and was dropped; the server still answers */
    r = http_request(port, "GET /metrics HTTP/1.1\r\n\r\n", 2000);
    assert_true(strncmp(r, "HTTP/1.1 200 ", 13) == 0);
    free(r);

    /* the idle client is dropped after the read timeout */
    struct pollfd p = {.fd = idle, .events = POLLIN, .revents = 0};
    assert_int_equal(poll(&p, 1, VR_METRICS_HTTP_READ_TIMEOUT_MS + 2000), 1);
    char b;
    assert_true(recv(idle, &b, 1, 0) <= 0);
    close(idle);
    close(g.fd);
    vr_metrics_http_stop(h);
    vr_metrics_free(m);
}

static void test_http_bind_errors(void **st) {
    (void)st;
    vr_error err = {0};
    vr_metrics *m = NULL;
    assert_int_equal(vr_metrics_create(&m, &err), VR_OK);
    vr_metrics_http *h = NULL, *h2 = NULL;
    int port = 0;
    assert_int_equal(vr_metrics_http_start(m, "127.0.0.1", 0, &port, &h, &err), VR_OK);
    assert_int_equal(vr_metrics_http_start(m, "127.0.0.1", port, NULL, &h2, &err), VR_ERR_IO);
    assert_non_null(strstr(err.msg, "in use"));
    assert_int_equal(vr_metrics_http_start(m, "127.0.0.1", 70000, NULL, &h2, &err), VR_ERR_INVALID);
    vr_metrics_http_stop(h);
    vr_metrics_http_stop(NULL);
    vr_metrics_free(m);
}

/* ---- log ---- */

static char *read_pipe(int fd) {
    static char buf[65536];
    size_t len = 0;
    for (;;) {
        struct pollfd p = {.fd = fd, .events = POLLIN, .revents = 0};
        if (poll(&p, 1, 0) <= 0) break;
        ssize_t r = read(fd, buf + len, sizeof buf - 1 - len);
        if (r <= 0) break;
        len += (size_t)r;
    }
    buf[len] = 0;
    return buf;
}

static void test_log_lines(void **st) {
    (void)st;
    int pfd[2];
    assert_int_equal(pipe(pfd), 0);
    vr_log_set_fd(pfd[1]);
    vr_log_set_level(VR_LOG_INFO);

    vr_log(VR_LOG_INFO, "request_done", "tenant=%s tokens=%d ms=%.1f msg=%s empty=%s", "acme", 42, 12.5, "hello world",
           "");
    char *out = read_pipe(pfd[0]);
    assert_true(strncmp(out, "ts=", 3) == 0);
    /* ts=YYYY-MM-DDTHH:MM:SS.mmmZ */
    assert_int_equal(strlen(out) > 27, 1);
    assert_int_equal(out[13], 'T');
    assert_int_equal(out[26], 'Z');
    assert_int_equal(out[27], ' ');
    assert_string_equal(out + 28,
                        "level=info event=request_done tenant=acme tokens=42 ms=12.5 msg=\"hello world\" empty=\"\"\n");

    vr_log(VR_LOG_DEBUG, "hidden", "x=%d", 1);
    assert_string_equal(read_pipe(pfd[0]), "");
    assert_false(vr_log_enabled(VR_LOG_DEBUG));
    assert_true(vr_log_enabled(VR_LOG_ERROR));

    vr_log_set_level(VR_LOG_DEBUG);
    vr_log(VR_LOG_WARN, "odd values", "path=%s q=%s n=%zu u=%llu p=%5.2f%% w=%*d", "a\nb", "say \"hi\"", (size_t)7,
           18446744073709551615ull, 99.5, 4, 3);
    out = read_pipe(pfd[0]);
    assert_non_null(strchr(out, '\n'));
    assert_true(strchr(out, '\n') == out + strlen(out) - 1); /* one line */
    assert_string_equal(out + 28, "level=warn event=\"odd values\" path=\"a\\nb\" q=\"say \\\"hi\\\"\" n=7 "
                                  "u=18446744073709551615 p=99.50% w=\"   3\"\n");

    vr_log(VR_LOG_ERROR, "no_fields", NULL);
    out = read_pipe(pfd[0]);
    assert_string_equal(out + 28, "level=error event=no_fields\n");

    /* a huge value is cut, and the line says so */
    char *big = malloc(20000);
    memset(big, 'x', 19999);
    big[19999] = 0;
    vr_log(VR_LOG_INFO, "big", "v=%s", big);
    out = read_pipe(pfd[0]);
    assert_true(strlen(out) <= VR_LOG_MAX_LINE);
    assert_non_null(strstr(out, " truncated=true\n"));
    free(big);

    vr_log_level l;
    assert_true(vr_log_parse_level("WARNING", &l));
    assert_int_equal(l, VR_LOG_WARN);
    assert_false(vr_log_parse_level("loud", &l));

    vr_log_set_fd(-1);
    vr_log_set_level(VR_LOG_INFO);
    close(pfd[0]);
    close(pfd[1]);
}

int main(void) {
    const struct CMUnitTest tests[] = {
        cmocka_unit_test(test_render_format),
        cmocka_unit_test(test_registration_errors),
        cmocka_unit_test(test_concurrent_observe),
        cmocka_unit_test(test_http_endpoint),
        cmocka_unit_test(test_http_slow_clients_do_not_stall),
        cmocka_unit_test(test_http_bind_errors),
        cmocka_unit_test(test_log_lines),
    };
    return cmocka_run_group_tests(tests, NULL, NULL);
}
