/* tests/unit/test_transport.c — the TCP activation transport on 127.0.0.1: frames of 0, 1 and
 * 64 MiB bytes round-trip with their tags; 1000 frames arrive in order; a wrong tag, a bad magic,
 * a corrupt header or payload, a length over the limit and a foreign version are refused with
 * VR_ERR_FORMAT and leave the connection unusable (VR_ERR_UNAVAILABLE); a closed peer is
 * VR_ERR_UNAVAILABLE (and no SIGPIPE); timeouts are VR_ERR_CANCELLED. */
#include <setjmp.h>
#include <stdarg.h>
#include <stddef.h>
#include <stdint.h>
#include <stdlib.h>
#include <string.h>
#include <cmocka.h>

#include <arpa/inet.h>
#include <errno.h>
#include <netinet/in.h>
#include <pthread.h>
#include <stdio.h>
#include <sys/socket.h>
#include <time.h>
#include <unistd.h>

#include "worker/transport.h"

static int64_t ms_now(void) {
    struct timespec ts;
    clock_gettime(CLOCK_MONOTONIC, &ts);
    return (int64_t)ts.tv_sec * 1000 + ts.tv_nsec / 1000000;
}

/* a connected pair over 127.0.0.1: *a is the connecting side, *b the accepted one */
static void tcp_pair(vr_transport **a, vr_transport **b) {
    vr_error err = {0};
    vr_transport_listener *l = NULL;
    int port = 0;
    assert_int_equal(vr_transport_tcp_listen("127.0.0.1", 0, &port, &l, &err), VR_OK);
    assert_true(port > 0);
    assert_int_equal(vr_transport_tcp_connect("127.0.0.1", port, 2000, a, &err), VR_OK);
    assert_int_equal(vr_transport_tcp_accept(l, 2000, b, &err), VR_OK);
    vr_transport_listener_close(l);
}

/* a transport on one end of a socketpair; *raw is the other end for writing raw bytes */
static vr_transport *raw_pair(int *raw) {
    int sv[2];
    assert_int_equal(socketpair(AF_UNIX, SOCK_STREAM, 0, sv), 0);
    vr_transport *t = NULL;
    vr_error err = {0};
    assert_int_equal(vr_transport_from_fd(sv[0], "test peer", &t, &err), VR_OK);
    *raw = sv[1];
    return t;
}

static void put_le(uint8_t *p, uint64_t v, int n) {
    for (int i = 0; i < n; i++) p[i] = (uint8_t)(v >> (8 * i));
}

/* builds a frame by the documented layout (independent of the sender) */
static size_t build_frame(uint8_t *out, uint64_t tag, const void *data, size_t len) {
    memcpy(out, "VRTF", 4);
    put_le(out + 4, VR_TRANSPORT_VERSION, 2);
    put_le(out + 6, 0, 2);
    put_le(out + 8, tag, 8);
    put_le(out + 16, len, 8);
    put_le(out + 24, vr_crc32c(0, data, len), 4);
    put_le(out + 28, vr_crc32c(0, out, 28), 4);
    if (len) memcpy(out + 32, data, len);
    return 32 + len;
}

static void write_all(int fd, const void *p, size_t n) {
    const uint8_t *b = p;
    while (n) {
        ssize_t w = send(fd, b, n, MSG_NOSIGNAL);
        if (w < 0 && errno == EINTR) continue;
        assert_true(w > 0);
        b += w;
        n -= (size_t)w;
    }
}

static void test_crc32c(void **st) {
    (void)st;
    assert_int_equal(vr_crc32c(0, "123456789", 9), 0xE3069283u);
    assert_int_equal(vr_crc32c(0, NULL, 0), 0);
    uint8_t buf[1000];
    for (int i = 0; i < 1000; i++) buf[i] = (uint8_t)(i * 7 + 3);
    uint32_t whole = vr_crc32c(0, buf, sizeof buf);
    assert_int_equal(vr_crc32c(vr_crc32c(0, buf, 333), buf + 333, 667), whole);
    assert_int_equal(vr_crc32c(vr_crc32c(0, buf, 1), buf + 1, 999), whole);
}

static void test_small_frames_and_tags(void **st) {
    (void)st;
    vr_transport *a, *b;
    tcp_pair(&a, &b);
    vr_error err = {0};
    assert_non_null(strstr(vr_transport_peer_name(a), "127.0.0.1:"));
    assert_non_null(strstr(vr_transport_peer_name(b), "127.0.0.1:"));

    uint8_t one = 0xA5;
    assert_int_equal(vr_transport_send(a, 1, &one, 1, &err), VR_OK);
    assert_int_equal(vr_transport_send(a, 0xFFFFFFFFFFFFFFFFull, NULL, 0, &err), VR_OK);
    assert_int_equal(vr_transport_send(a, 42, "abc", 3, &err), VR_OK);

    void *d = NULL;
    size_t n = 99;
    assert_int_equal(vr_transport_recv(b, 1, &d, &n, 2000, &err), VR_OK);
    assert_int_equal(n, 1);
    assert_int_equal(((uint8_t *)d)[0], 0xA5);
    free(d);
    assert_int_equal(vr_transport_recv(b, 0xFFFFFFFFFFFFFFFFull, &d, &n, 2000, &err), VR_OK);
    assert_int_equal(n, 0);
    assert_non_null(d);
    free(d);
    assert_int_equal(vr_transport_recv(b, 42, &d, &n, 2000, &err), VR_OK);
    assert_int_equal(n, 3);
    assert_memory_equal(d, "abc", 3);
    free(d);

    /* the other direction on the same connection */
    assert_int_equal(vr_transport_send(b, 7, "xy", 2, &err), VR_OK);
    assert_int_equal(vr_transport_recv(a, 7, &d, &n, 2000, &err), VR_OK);
    assert_int_equal(n, 2);
    free(d);
    vr_transport_close(a);
    vr_transport_close(b);
}

typedef struct sender_job {
    vr_transport *t;
    const uint8_t *data;
    size_t len;
    int frames;
    vr_status st;
} sender_job;

static void *big_sender(void *arg) {
    sender_job *j = arg;
    vr_error err = {0};
    j->st = vr_transport_send(j->t, 0xB16, j->data, j->len, &err);
    return NULL;
}

static void test_large_frame(void **st) {
    (void)st;
    vr_transport *a, *b;
    tcp_pair(&a, &b);
    size_t n = (size_t)64 << 20;
    uint8_t *big = malloc(n);
    assert_non_null(big);
    uint64_t x = 0x243F6A8885A308D3ull;
    for (size_t i = 0; i < n; i++) {
        x ^= x << 13;
        x ^= x >> 7;
        x ^= x << 17;
        big[i] = (uint8_t)x;
    }
    sender_job j = {a, big, n, 1, VR_ERR_INTERNAL};
    pthread_t th;
    assert_int_equal(pthread_create(&th, NULL, big_sender, &j), 0);
    vr_error err = {0};
    void *d = NULL;
    size_t got = 0;
    vr_status s = vr_transport_recv(b, 0xB16, &d, &got, 60000, &err);
    pthread_join(th, NULL);
    assert_int_equal(j.st, VR_OK);
    if (s != VR_OK) fail_msg("recv: %s", err.msg);
    assert_int_equal(got, n);
    assert_memory_equal(d, big, n);
    free(d);
    free(big);
    vr_transport_close(a);
    vr_transport_close(b);
}

static void *many_sender(void *arg) {
    sender_job *j = arg;
    vr_error err = {0};
    uint8_t buf[4096];
    j->st = VR_OK;
    for (int i = 0; i < j->frames && j->st == VR_OK; i++) {
        size_t len = (size_t)(i * 37) % sizeof buf;
        for (size_t k = 0; k < len; k++) buf[k] = (uint8_t)(i + k);
        j->st = vr_transport_send(j->t, (uint64_t)i, buf, len, &err);
    }
    return NULL;
}

static void test_thousand_frames_in_order(void **st) {
    (void)st;
    vr_transport *a, *b;
    tcp_pair(&a, &b);
    sender_job j = {a, NULL, 0, 1000, VR_ERR_INTERNAL};
    pthread_t th;
    assert_int_equal(pthread_create(&th, NULL, many_sender, &j), 0);
    vr_error err = {0};
    for (int i = 0; i < 1000; i++) {
        void *d = NULL;
        size_t n = 0;
        vr_status s = vr_transport_recv(b, (uint64_t)i, &d, &n, 10000, &err);
        if (s != VR_OK) fail_msg("frame %d: %s", i, err.msg);
        size_t len = (size_t)(i * 37) % 4096;
        assert_int_equal(n, len);
        for (size_t k = 0; k < len; k++) assert_int_equal(((uint8_t *)d)[k], (uint8_t)(i + k));
        free(d);
    }
    pthread_join(th, NULL);
    assert_int_equal(j.st, VR_OK);
    vr_transport_close(a);
    vr_transport_close(b);
}

static void test_wrong_tag_refused(void **st) {
    (void)st;
    vr_transport *a, *b;
    tcp_pair(&a, &b);
    vr_error err = {0};
    assert_int_equal(vr_transport_send(a, 5, "hello", 5, &err), VR_OK);
    void *d = (void *)1;
    size_t n = 1;
    assert_int_equal(vr_transport_recv(b, 6, &d, &n, 2000, &err), VR_ERR_FORMAT);
    assert_null(d);
    assert_non_null(strstr(err.msg, "tag"));
    /* the receiving side is now unusable both ways */
    assert_int_equal(vr_transport_recv(b, 5, &d, &n, 100, &err), VR_ERR_UNAVAILABLE);
    assert_non_null(strstr(err.msg, "unusable"));
    assert_int_equal(vr_transport_send(b, 1, "x", 1, &err), VR_ERR_UNAVAILABLE);
    /* and the sender sees its peer go */
    assert_int_equal(vr_transport_recv(a, 1, &d, &n, 2000, &err), VR_ERR_UNAVAILABLE);
    vr_transport_close(a);
    vr_transport_close(b);
}

/* recv_either: a frame with either tag is taken and says which it carried; a third is refused */
static void test_either_tag(void **st) {
    (void)st;
    vr_transport *a, *b;
    tcp_pair(&a, &b);
    vr_error err = {0};
    assert_int_equal(vr_transport_send(a, 7, "seven", 5, &err), VR_OK);
    assert_int_equal(vr_transport_send(a, 9, "nine", 4, &err), VR_OK);
    assert_int_equal(vr_transport_send(a, 8, "eight", 5, &err), VR_OK);
    void *d = NULL;
    size_t n = 0;
    uint64_t got = 0;
    assert_int_equal(vr_transport_recv_either(b, 9, 7, &got, &d, &n, 2000, &err), VR_OK);
    assert_int_equal(got, 7);
    assert_int_equal(n, 5);
    assert_memory_equal(d, "seven", 5);
    free(d);
    assert_int_equal(vr_transport_recv_either(b, 9, 7, &got, &d, &n, 2000, &err), VR_OK);
    assert_int_equal(got, 9);
    assert_memory_equal(d, "nine", 4);
    free(d);
    assert_int_equal(vr_transport_recv_either(b, 9, 7, NULL, &d, &n, 2000, &err), VR_ERR_FORMAT);
    assert_null(d);
    assert_non_null(strstr(err.msg, "tag"));
    vr_transport_close(a);
    vr_transport_close(b);
}

typedef void (*corrupt_fn)(uint8_t *frame, size_t len);
static void c_magic(uint8_t *f, size_t len) { (void)len; f[0] = 'X'; }
static void c_payload(uint8_t *f, size_t len) { f[len - 1] ^= 0x01; }
static void c_header(uint8_t *f, size_t len) { (void)len; f[9] ^= 0x10; } /* tag bit: header crc fails */
static void c_version(uint8_t *f, size_t len) {
    (void)len;
    f[4] = VR_TRANSPORT_VERSION + 1;
    put_le(f + 28, vr_crc32c(0, f, 28), 4);
}

static void test_corrupt_frames_refused(void **st) {
    (void)st;
    struct {
        corrupt_fn fn;
        const char *needle;
    } cases[] = {{c_magic, "magic"}, {c_payload, "checksum"}, {c_header, "header"}, {c_version, "version"}};
    for (size_t c = 0; c < sizeof cases / sizeof cases[0]; c++) {
        int raw;
        vr_transport *t = raw_pair(&raw);
        uint8_t frame[64];
        size_t len = build_frame(frame, 9, "payload!", 8);
        /* an intact frame first: the builder matches the sender */
        write_all(raw, frame, len);
        vr_error err = {0};
        void *d = NULL;
        size_t n = 0;
        assert_int_equal(vr_transport_recv(t, 9, &d, &n, 2000, &err), VR_OK);
        assert_int_equal(n, 8);
        free(d);
        cases[c].fn(frame, len);
        write_all(raw, frame, len);
        assert_int_equal(vr_transport_recv(t, 9, &d, &n, 2000, &err), VR_ERR_FORMAT);
        if (!strstr(err.msg, cases[c].needle)) fail_msg("case %zu: message \"%s\" lacks \"%s\"", c, err.msg, cases[c].needle);
        assert_int_equal(vr_transport_recv(t, 9, &d, &n, 100, &err), VR_ERR_UNAVAILABLE);
        vr_transport_close(t);
        close(raw);
    }
}

static void test_length_limit(void **st) {
    (void)st;
    int raw;
    vr_transport *t = raw_pair(&raw);
    vr_error err = {0};
    assert_int_equal(vr_transport_tcp_set_limits(t, 16, 0, &err), VR_OK);
    /* the sender refuses its own oversized frame and stays usable */
    uint8_t big[17] = {0};
    assert_int_equal(vr_transport_send(t, 1, big, sizeof big, &err), VR_ERR_INVALID);
    assert_int_equal(vr_transport_send(t, 1, big, 16, &err), VR_OK);
    /* a header claiming more than the limit is refused before any allocation */
    uint8_t frame[32 + 17];
    size_t len = build_frame(frame, 3, big, 17);
    write_all(raw, frame, 32);
    void *d = NULL;
    size_t n = 0;
    assert_int_equal(vr_transport_recv(t, 3, &d, &n, 2000, &err), VR_ERR_FORMAT);
    assert_non_null(strstr(err.msg, "limit"));
    (void)len;
    /* a header claiming 2^63 bytes with the default 1 GiB limit */
    vr_transport_close(t);
    close(raw);
    t = raw_pair(&raw);
    memcpy(frame, "VRTF", 4);
    put_le(frame + 4, VR_TRANSPORT_VERSION, 2);
    put_le(frame + 6, 0, 2);
    put_le(frame + 8, 3, 8);
    put_le(frame + 16, 1ull << 63, 8);
    put_le(frame + 24, 0, 4);
    put_le(frame + 28, vr_crc32c(0, frame, 28), 4);
    write_all(raw, frame, 32);
    assert_int_equal(vr_transport_recv(t, 3, &d, &n, 2000, &err), VR_ERR_FORMAT);
    assert_non_null(strstr(err.msg, "limit"));
    vr_transport_close(t);
    close(raw);
}

static void test_garbage_from_raw_tcp_client(void **st) {
    (void)st;
    vr_error err = {0};
    vr_transport_listener *l = NULL;
    int port = 0;
    assert_int_equal(vr_transport_tcp_listen("127.0.0.1", 0, &port, &l, &err), VR_OK);
    int fd = socket(AF_INET, SOCK_STREAM, 0);
    struct sockaddr_in sa;
    memset(&sa, 0, sizeof sa);
    sa.sin_family = AF_INET;
    sa.sin_port = htons((uint16_t)port);
    sa.sin_addr.s_addr = htonl(INADDR_LOOPBACK);
    assert_int_equal(connect(fd, (struct sockaddr *)&sa, sizeof sa), 0);
    vr_transport *t = NULL;
    assert_int_equal(vr_transport_tcp_accept(l, 2000, &t, &err), VR_OK);
    const char *junk = "GET / HTTP/1.1\r\nHost: example.com\r\nAccept: */*\r\n\r\n";
    write_all(fd, junk, strlen(junk));
    void *d = NULL;
    size_t n = 0;
    assert_int_equal(vr_transport_recv(t, 0, &d, &n, 2000, &err), VR_ERR_FORMAT);
    assert_non_null(strstr(err.msg, "magic"));
    vr_transport_close(t);
    close(fd);
    vr_transport_listener_close(l);
}

static void test_peer_closed(void **st) {
    (void)st;
    vr_transport *a, *b;
    tcp_pair(&a, &b);
    vr_error err = {0};
    vr_transport_close(a);
    void *d = NULL;
    size_t n = 0;
    assert_int_equal(vr_transport_recv(b, 1, &d, &n, 2000, &err), VR_ERR_UNAVAILABLE);
    assert_non_null(strstr(err.msg, "closed"));
    vr_transport_close(b);

    /* sending into a closed peer: an error, not SIGPIPE */
    tcp_pair(&a, &b);
    vr_transport_close(b);
    static uint8_t chunk[1 << 16];
    vr_status s = VR_OK;
    for (int i = 0; i < 1000 && s == VR_OK; i++) s = vr_transport_send(a, 1, chunk, sizeof chunk, &err);
    assert_int_equal(s, VR_ERR_UNAVAILABLE);
    assert_int_equal(vr_transport_send(a, 1, chunk, 1, &err), VR_ERR_UNAVAILABLE);
    vr_transport_close(a);

    /* a peer that closes mid-frame */
    int raw;
    vr_transport *t = raw_pair(&raw);
    uint8_t frame[64];
    build_frame(frame, 4, "0123456789", 10);
    write_all(raw, frame, 36);
    close(raw);
    assert_int_equal(vr_transport_recv(t, 4, &d, &n, 2000, &err), VR_ERR_UNAVAILABLE);
    assert_non_null(strstr(err.msg, "mid-frame"));
    vr_transport_close(t);
}

static void test_timeouts(void **st) {
    (void)st;
    vr_transport *a, *b;
    tcp_pair(&a, &b);
    vr_error err = {0};
    void *d = NULL;
    size_t n = 0;
    int64_t t0 = ms_now();
    assert_int_equal(vr_transport_recv(b, 1, &d, &n, 150, &err), VR_ERR_CANCELLED);
    int64_t dt = ms_now() - t0;
    assert_true(dt >= 140 && dt < 2000);
    assert_int_equal(vr_transport_recv(b, 1, &d, &n, 0, &err), VR_ERR_CANCELLED);
    /* nothing was consumed: the connection is still fine */
    assert_int_equal(vr_transport_send(a, 1, "ok", 2, &err), VR_OK);
    assert_int_equal(vr_transport_recv(b, 1, &d, &n, 2000, &err), VR_OK);
    free(d);
    vr_transport_close(a);
    vr_transport_close(b);

    /* a frame cut short by the deadline breaks the connection */
    int raw;
    vr_transport *t = raw_pair(&raw);
    uint8_t frame[64];
    build_frame(frame, 4, "0123456789", 10);
    write_all(raw, frame, 20);
    assert_int_equal(vr_transport_recv(t, 4, &d, &n, 100, &err), VR_ERR_CANCELLED);
    assert_int_equal(vr_transport_recv(t, 4, &d, &n, 100, &err), VR_ERR_UNAVAILABLE);
    vr_transport_close(t);
    close(raw);
}

static void test_connect_and_accept_errors(void **st) {
    (void)st;
    vr_error err = {0};
    vr_transport_listener *l = NULL;
    int port = 0;
    assert_int_equal(vr_transport_tcp_listen("127.0.0.1", 0, &port, &l, &err), VR_OK);
    vr_transport *t = NULL;
    int64_t t0 = ms_now();
    assert_int_equal(vr_transport_tcp_accept(l, 100, &t, &err), VR_ERR_CANCELLED);
    assert_true(ms_now() - t0 >= 90);
    assert_null(t);
    vr_transport_listener_close(l);
    /* nobody listens there any more */
    assert_int_equal(vr_transport_tcp_connect("127.0.0.1", port, 2000, &t, &err), VR_ERR_UNAVAILABLE);
    assert_non_null(strstr(err.msg, "cannot connect"));
    assert_int_equal(vr_transport_tcp_connect("127.0.0.1", 0, 2000, &t, &err), VR_ERR_INVALID);
    assert_int_equal(vr_transport_tcp_listen("127.0.0.1", 70000, &port, &l, &err), VR_ERR_INVALID);
    int sv[2];
    assert_int_equal(socketpair(AF_UNIX, SOCK_DGRAM, 0, sv), 0);
    assert_int_equal(vr_transport_from_fd(sv[0], NULL, &t, &err), VR_ERR_INVALID);
    close(sv[1]);
}

/* The hello that opens a connection to a shard's listener; connecting by "host:port";
 * wait_readable consumes nothing and returns 0 on a quiet connection. */
static void test_hello_address_and_readable(void **st) {
    (void)st;
    vr_error err = {0};
    vr_transport_listener *l = NULL;
    int port = 0;
    assert_int_equal(vr_transport_tcp_listen("127.0.0.1", 0, &port, &l, &err), VR_OK);
    char addr[64];
    snprintf(addr, sizeof addr, "127.0.0.1:%d", port);
    vr_transport *a = NULL, *b = NULL;
    assert_int_equal(vr_transport_tcp_connect_address(addr, 2000, &a, &err), VR_OK);
    assert_int_equal(vr_transport_tcp_accept(l, 2000, &b, &err), VR_OK);
    assert_int_equal(vr_transport_wait_readable(b, 50), 0);
    assert_int_equal(vr_transport_hello_send(a, VR_PEER_PREV_STAGE, &err), VR_OK);
    assert_int_equal(vr_transport_wait_readable(b, 2000), 1);
    assert_int_equal(vr_transport_wait_readable(b, 0), 1); /* still there: nothing consumed */
    vr_peer_role role = 0;
    assert_int_equal(vr_transport_hello_recv(b, 2000, &role, &err), VR_OK);
    assert_int_equal(role, VR_PEER_PREV_STAGE);
    assert_int_equal(vr_transport_hello_send(a, VR_PEER_VISION, &err), VR_OK);
    assert_int_equal(vr_transport_hello_recv(b, 2000, &role, &err), VR_OK);
    assert_int_equal(role, VR_PEER_VISION);
    /* anything but a hello first is refused */
    assert_int_equal(vr_transport_send(a, 42, "x", 1, &err), VR_OK);
    assert_int_equal(vr_transport_hello_recv(b, 2000, &role, &err), VR_ERR_FORMAT);
    /* a closed peer: readable (recv says why) */
    vr_transport_close(a);
    vr_transport_close(b);
    assert_int_equal(vr_transport_tcp_connect_address(addr, 2000, &a, &err), VR_OK);
    assert_int_equal(vr_transport_tcp_accept(l, 2000, &b, &err), VR_OK);
    vr_transport_close(a);
    assert_int_equal(vr_transport_wait_readable(b, 2000), 1);
    vr_transport_close(b);
    vr_transport_listener_close(l);
    /* malformed addresses */
    const char *bad[] = {"", "localhost", ":80", "127.0.0.1:", "127.0.0.1:0", "127.0.0.1:70000", "127.0.0.1:8x"};
    for (size_t i = 0; i < sizeof bad / sizeof bad[0]; i++) {
        assert_int_equal(vr_transport_tcp_connect_address(bad[i], 500, &a, &err), VR_ERR_INVALID);
        assert_null(a);
    }
}

int main(void) {
    const struct CMUnitTest tests[] = {
        cmocka_unit_test(test_crc32c),
        cmocka_unit_test(test_small_frames_and_tags),
        cmocka_unit_test(test_large_frame),
        cmocka_unit_test(test_thousand_frames_in_order),
        cmocka_unit_test(test_wrong_tag_refused), cmocka_unit_test(test_either_tag),
        cmocka_unit_test(test_corrupt_frames_refused),
        cmocka_unit_test(test_length_limit),
        cmocka_unit_test(test_garbage_from_raw_tcp_client),
        cmocka_unit_test(test_peer_closed),
        cmocka_unit_test(test_timeouts),
        cmocka_unit_test(test_connect_and_accept_errors),
        cmocka_unit_test(test_hello_address_and_readable),
    };
    return cmocka_run_group_tests(tests, NULL, NULL);
}
