/* common/http_metrics.c — the /metrics and /healthz HTTP endpoint: one thread, poll over a
 * listening socket, a stop pipe and a few non-blocking connections, each with a deadline.
 * Serves GET/HEAD only, HTTP/1.0-style (Connection: close). Must not block on any one client
 * and must not grow without bound: request headers are capped, connections are capped. */
#include "common/metrics.h"
#include "common/net_listen.h"

#include <errno.h>
#include <fcntl.h>
#include <netdb.h>
#include <netinet/in.h>
#include <poll.h>
#include <pthread.h>
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/socket.h>
#include <time.h>
#include <unistd.h>

#ifndef MSG_NOSIGNAL
#define MSG_NOSIGNAL 0
#endif

typedef struct conn {
    int fd;          /* -1 = free slot */
    int writing;     /* 0: reading the request; 1: sending out */
    int64_t deadline; /* monotonic ms */
    char in[VR_METRICS_HTTP_MAX_REQUEST + 1];
    size_t in_len;
    char *out;
    size_t out_len, out_off;
} conn;

struct vr_metrics_http {
    vr_metrics *m;
    int listen_fd;
    int stop_pipe[2];
    pthread_t thread;
    conn conns[VR_METRICS_HTTP_MAX_CONNS];
};

static int64_t now_ms(void) {
    struct timespec ts;
    clock_gettime(CLOCK_MONOTONIC, &ts);
    return (int64_t)ts.tv_sec * 1000 + ts.tv_nsec / 1000000;
}

static void conn_close(conn *c) {
    if (c->fd >= 0) close(c->fd);
    free(c->out);
    c->fd = -1;
    c->out = NULL;
    c->out_len = c->out_off = c->in_len = 0;
    c->writing = 0;
}

/* Prepares the response; the body is taken over (freed with the connection). */
static void respond(conn *c, int code, const char *reason, const char *ctype, char *body, size_t body_len,
                    int head_only) {
    char hdr[256];
    int n = snprintf(hdr, sizeof hdr,
                     "HTTP/1.1 %d %s\r\nContent-Type: %s\r\nContent-Length: %zu\r\nConnection: close\r\n\r\n", code,
                     reason, ctype, body_len);
    size_t send_body = head_only ? 0 : body_len;
    char *out = malloc((size_t)n + send_body);
    if (!out) {
        free(body);
        conn_close(c);
        return;
    }
    memcpy(out, hdr, (size_t)n);
    if (send_body) memcpy(out + n, body, send_body);
    free(body);
    c->out = out;
    c->out_len = (size_t)n + send_body;
    c->out_off = 0;
    c->writing = 1;
    c->deadline = now_ms() + VR_METRICS_HTTP_WRITE_TIMEOUT_MS;
}

static void respond_text(conn *c, int code, const char *reason, const char *text, int head_only) {
    size_t n = strlen(text);
    char *body = malloc(n + 1);
    if (!body) {
        conn_close(c);
        return;
    }
    memcpy(body, text, n + 1);
    respond(c, code, reason, "text/plain; charset=utf-8", body, n, head_only);
}

/* Called once the header is complete (or the cap was hit: too_large). */
static void handle_request(vr_metrics_http *h, conn *c, int too_large) {
    if (too_large) {
        respond_text(c, 431, "Request Header Fields Too Large", "request too large\n", 0);
        return;
    }
    /* request line: METHOD SP TARGET SP VERSION */
    char *line = c->in;
    char *eol = strpbrk(line, "\r\n");
    if (eol) *eol = 0;
    char *sp1 = strchr(line, ' ');
    char *sp2 = sp1 ? strchr(sp1 + 1, ' ') : NULL;
    if (!sp1 || !sp2 || strncmp(sp2 + 1, "HTTP/", 5) != 0) {
        respond_text(c, 400, "Bad Request", "bad request\n", 0);
        return;
    }
    *sp1 = 0;
    *sp2 = 0;
    const char *method = line;
    char *target = sp1 + 1;
    char *q = strchr(target, '?');
    if (q) *q = 0;
    int head_only = strcmp(method, "HEAD") == 0;
    if (!head_only && strcmp(method, "GET") != 0) {
        respond_text(c, 405, "Method Not Allowed", "only GET and HEAD are served\n", 0);
        return;
    }
    if (strcmp(target, "/metrics") == 0) {
        char *text = NULL;
        size_t len = 0;
        vr_error err = {0};
        if (vr_metrics_render(h->m, &text, &len, &err) != VR_OK) {
            respond_text(c, 500, "Internal Server Error", "metrics render failed\n", head_only);
            return;
        }
        respond(c, 200, "OK", "text/plain; version=0.0.4; charset=utf-8", text, len, head_only);
    } else if (strcmp(target, "/healthz") == 0) {
        respond_text(c, 200, "OK", "ok\n", head_only);
    } else {
        respond_text(c, 404, "Not Found", "not found\n", head_only);
    }
}

static void on_readable(vr_metrics_http *h, conn *c) {
    for (;;) {
        size_t room = VR_METRICS_HTTP_MAX_REQUEST - c->in_len;
        if (room == 0) {
            handle_request(h, c, 1);
            return;
        }
        ssize_t n = recv(c->fd, c->in + c->in_len, room, 0);
        if (n < 0 && errno == EINTR) continue;
        if (n < 0 && (errno == EAGAIN || errno == EWOULDBLOCK)) return;
        if (n <= 0) { /* closed or failed before a whole request */
            conn_close(c);
            return;
        }
        /* look for the end of the header, starting a little before the new bytes */
        size_t from = c->in_len >= 3 ? c->in_len - 3 : 0;
        c->in_len += (size_t)n;
        c->in[c->in_len] = 0;
        for (size_t i = from; i < c->in_len; i++) {
            if ((i + 4 <= c->in_len && memcmp(c->in + i, "\r\n\r\n", 4) == 0) ||
                (i + 2 <= c->in_len && memcmp(c->in + i, "\n\n", 2) == 0)) {
                handle_request(h, c, 0);
                return;
            }
        }
    }
}

static void on_writable(conn *c) {
    while (c->out_off < c->out_len) {
        ssize_t n = send(c->fd, c->out + c->out_off, c->out_len - c->out_off, MSG_NOSIGNAL);
        if (n < 0 && errno == EINTR) continue;
        if (n < 0 && (errno == EAGAIN || errno == EWOULDBLOCK)) return;
        if (n <= 0) {
            conn_close(c);
            return;
        }
        c->out_off += (size_t)n;
    }
    shutdown(c->fd, SHUT_WR);
    conn_close(c);
}

static void *serve(void *arg) {
    vr_metrics_http *h = arg;
    struct pollfd pfd[2 + VR_METRICS_HTTP_MAX_CONNS];
    int idx[2 + VR_METRICS_HTTP_MAX_CONNS];
    for (;;) {
        int n = 0, free_slot = -1;
        pfd[n].fd = h->stop_pipe[0];
        pfd[n].events = POLLIN;
        idx[n++] = -1;
        int64_t now = now_ms(), next = now + 1000;
        for (int i = 0; i < VR_METRICS_HTTP_MAX_CONNS; i++) {
            conn *c = &h->conns[i];
            if (c->fd < 0) {
                if (free_slot < 0) free_slot = i;
                continue;
            }
            if (now >= c->deadline) { /* too slow: drop it */
                conn_close(c);
                if (free_slot < 0) free_slot = i;
                continue;
            }
            if (c->deadline < next) next = c->deadline;
            pfd[n].fd = c->fd;
            pfd[n].events = c->writing ? POLLOUT : POLLIN;
            idx[n++] = i;
        }
        int listen_at = -1;
        if (free_slot >= 0) { /* when every slot is busy new clients wait in the backlog */
            listen_at = n;
            pfd[n].fd = h->listen_fd;
            pfd[n].events = POLLIN;
            idx[n++] = -1;
        }
        int64_t wait = next - now;
        if (wait < 0) wait = 0;
        int r = poll(pfd, (nfds_t)n, (int)wait);
        if (r < 0) {
            if (errno == EINTR) continue;
            break;
        }
        if (pfd[0].revents) break; /* stop requested */
        for (int k = 1; k < n; k++) {
            if (!pfd[k].revents || k == listen_at) continue;
            conn *c = &h->conns[idx[k]];
            if (c->writing)
                on_writable(c);
            else
                on_readable(h, c);
        }
        if (listen_at >= 0 && (pfd[listen_at].revents & POLLIN)) {
            int fd = accept(h->listen_fd, NULL, NULL);
            if (fd >= 0) {
                if (vr_fd_set_nonblock(fd) != 0) {
                    close(fd);
                } else {
                    conn *c = &h->conns[free_slot];
                    c->fd = fd;
                    c->writing = 0;
                    c->in_len = 0;
                    c->deadline = now_ms() + VR_METRICS_HTTP_READ_TIMEOUT_MS;
                }
            }
        }
    }
    return NULL;
}

vr_status vr_metrics_http_start(vr_metrics *m, const char *bind_addr, int port, int *bound_port, vr_metrics_http **out,
                                vr_error *err) {
    *out = NULL;
    if (!m) return vr_error_set(err, VR_ERR_INVALID, "metrics http: no registry given");
    int fd = -1, bport = 0;
    vr_status st = vr_tcp_listen_socket(bind_addr, port, "metrics http", &fd, &bport, err);
    if (st != VR_OK) return st;
    vr_metrics_http *h = calloc(1, sizeof *h);
    if (!h) {
        close(fd);
        return vr_error_set(err, VR_ERR_NOMEM, "metrics http: out of memory");
    }
    h->m = m;
    h->listen_fd = fd;
    for (int i = 0; i < VR_METRICS_HTTP_MAX_CONNS; i++) h->conns[i].fd = -1;
    if (pipe(h->stop_pipe) != 0) {
        int e = errno;
        close(fd);
        free(h);
        return vr_error_set(err, VR_ERR_IO, "metrics http: pipe: %s", strerror(e));
    }
    int rc = pthread_create(&h->thread, NULL, serve, h);
    if (rc != 0) {
        close(fd);
        close(h->stop_pipe[0]);
        close(h->stop_pipe[1]);
        free(h);
        return vr_error_set(err, VR_ERR_IO, "metrics http: cannot start thread: %s", strerror(rc));
    }
    if (bound_port) *bound_port = bport;
    *out = h;
    return VR_OK;
}

void vr_metrics_http_stop(vr_metrics_http *h) {
    if (!h) return;
    char b = 1;
    ssize_t w;
    do {
        w = write(h->stop_pipe[1], &b, 1);
    } while (w < 0 && errno == EINTR);
    pthread_join(h->thread, NULL);
    for (int i = 0; i < VR_METRICS_HTTP_MAX_CONNS; i++) conn_close(&h->conns[i]);
    close(h->listen_fd);
    close(h->stop_pipe[0]);
    close(h->stop_pipe[1]);
    free(h);
}
