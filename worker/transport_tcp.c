/* worker/transport_tcp.c — the TCP transport: framed, checksummed messages over one non-blocking
 * stream socket, with poll-based deadlines, TCP_NODELAY and no SIGPIPE. Must not interpret
 * payloads, and must never reuse a stream after a framing error (its position is lost). */
#include "worker/transport.h"

#include <arpa/inet.h>
#include <errno.h>
#include <fcntl.h>
#include <netdb.h>
#include <netinet/in.h>
#include <netinet/tcp.h>
#include <poll.h>
#include <pthread.h>
#include <stdatomic.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/socket.h>
#include <sys/uio.h>
#include <time.h>
#include <unistd.h>

#include "common/bytes.h"
#include "common/net_listen.h"

#ifndef MSG_NOSIGNAL
#define MSG_NOSIGNAL 0 /* platforms without it get SO_NOSIGPIPE below */
#endif

typedef struct tcp_transport {
    vr_transport base;
    int fd;
    char peer[128];
    size_t max_frame;
    int send_stall_ms;
    atomic_int broken;
    pthread_mutex_t mu; /* guards reason */
    char reason[256];
} tcp_transport;

struct vr_transport_listener {
    int fd;
    int port;
};

static const vr_transport_ops tcp_ops;

static int64_t now_ms(void) {
    struct timespec ts;
    clock_gettime(CLOCK_MONOTONIC, &ts);
    return (int64_t)ts.tv_sec * 1000 + ts.tv_nsec / 1000000;
}

/* ms left until deadline (-1 = no deadline), never negative */
static int left_ms(int64_t deadline) {
    if (deadline < 0) return -1;
    int64_t l = deadline - now_ms();
    if (l < 0) return 0;
    if (l > 1000000000) return 1000000000;
    return (int)l;
}


static void sock_name(const struct sockaddr_storage *sa, char *out, size_t cap) {
    char host[INET6_ADDRSTRLEN] = "?";
    int port = 0;
    if (sa->ss_family == AF_INET) {
        const struct sockaddr_in *a = (const struct sockaddr_in *)sa;
        inet_ntop(AF_INET, &a->sin_addr, host, sizeof host);
        port = ntohs(a->sin_port);
        snprintf(out, cap, "%s:%d", host, port);
    } else if (sa->ss_family == AF_INET6) {
        const struct sockaddr_in6 *a = (const struct sockaddr_in6 *)sa;
        inet_ntop(AF_INET6, &a->sin6_addr, host, sizeof host);
        port = ntohs(a->sin6_port);
        snprintf(out, cap, "[%s]:%d", host, port);
    } else if (sa->ss_family == AF_UNIX) {
        snprintf(out, cap, "local socket");
    } else {
        snprintf(out, cap, "unknown peer");
    }
}

static void tune_socket(int fd) {
    int one = 1;
    setsockopt(fd, IPPROTO_TCP, TCP_NODELAY, &one, sizeof one); /* fails harmlessly on AF_UNIX */
#ifdef SO_NOSIGPIPE
    setsockopt(fd, SOL_SOCKET, SO_NOSIGPIPE, &one, sizeof one);
#endif
}

/* Marks the connection unusable (first reason wins) and shuts it down so the peer notices. */
static void break_conn(tcp_transport *t, const char *reason) {
    pthread_mutex_lock(&t->mu);
    if (!atomic_load(&t->broken)) {
        size_t n = strnlen(reason, sizeof t->reason - 1);
        memcpy(t->reason, reason, n);
        t->reason[n] = 0;
        atomic_store(&t->broken, 1);
        shutdown(t->fd, SHUT_RDWR);
    }
    pthread_mutex_unlock(&t->mu);
}

/* Sets err from the current error, breaks the connection with that message, returns code. */
static vr_status fail(tcp_transport *t, vr_error *err, vr_status code) {
    break_conn(t, err ? err->msg : vr_status_name(code));
    return code;
}

static vr_status check_usable(tcp_transport *t, vr_error *err) {
    if (!atomic_load(&t->broken)) return VR_OK;
    pthread_mutex_lock(&t->mu);
    vr_status s = vr_error_set(err, VR_ERR_UNAVAILABLE,
                               "connection to %s is unusable after an earlier failure (%s); reconnect", t->peer,
                               t->reason);
    pthread_mutex_unlock(&t->mu);
    return s;
}

static vr_status errno_status(int e) {
    switch (e) {
    case ECONNRESET:
    case EPIPE:
    case ENOTCONN:
    case ETIMEDOUT:
    case ECONNABORTED:
    case EHOSTUNREACH:
    case ENETUNREACH:
    case ENETDOWN:
    case ESHUTDOWN:
        return VR_ERR_UNAVAILABLE;
    default:
        return VR_ERR_IO;
    }
}

/* Waits for fd to become ready for events. 1 ready, 0 timeout, -1 error (errno). */
static int wait_fd(int fd, short events, int timeout_ms) {
    for (;;) {
        struct pollfd p = {.fd = fd, .events = events, .revents = 0};
        int r = poll(&p, 1, timeout_ms);
        if (r < 0 && errno == EINTR) continue; /* a signal: the caller recomputes the deadline */
        return r;
    }
}

/* ---- send ---- */

static vr_status tcp_send(vr_transport *base, uint64_t tag, const void *data, size_t len, vr_error *err) {
    tcp_transport *t = (tcp_transport *)base;
    vr_status s = check_usable(t, err);
    if (s != VR_OK) return s;
    if (len > t->max_frame)
        return vr_error_set(err, VR_ERR_INVALID, "frame of %zu bytes to %s is over the %zu-byte frame limit", len,
                            t->peer, t->max_frame);
    uint8_t hdr[VR_TRANSPORT_HEADER_SIZE];
    memcpy(hdr, VR_TRANSPORT_MAGIC, 4);
    vr_put_u16le(hdr + 4, VR_TRANSPORT_VERSION);
    vr_put_u16le(hdr + 6, 0);
    vr_put_u64le(hdr + 8, tag);
    vr_put_u64le(hdr + 16, (uint64_t)len);
    vr_put_u32le(hdr + 24, vr_crc32c(0, data, len));
    vr_put_u32le(hdr + 28, vr_crc32c(0, hdr, 28));

    struct iovec iov[2];
    iov[0].iov_base = hdr;
    iov[0].iov_len = sizeof hdr;
    iov[1].iov_base = (void *)data;
    iov[1].iov_len = len;
    int niov = len ? 2 : 1, first = 0;
    size_t total = sizeof hdr + len, sent = 0;
    while (sent < total) {
        struct msghdr mh;
        memset(&mh, 0, sizeof mh);
        mh.msg_iov = iov + first;
        mh.msg_iovlen = (size_t)(niov - first);
        ssize_t n = sendmsg(t->fd, &mh, MSG_NOSIGNAL);
        if (n < 0) {
            int e = errno;
            if (e == EINTR) continue;
            if (e == EAGAIN || e == EWOULDBLOCK) {
                int r = wait_fd(t->fd, POLLOUT, t->send_stall_ms);
                if (r > 0) continue;
                if (r == 0) {
                    vr_error_set(err, VR_ERR_CANCELLED,
                                 "send to %s made no progress for %d ms (after %zu of %zu bytes); the peer is stuck",
                                 t->peer, t->send_stall_ms, sent, total);
                    return fail(t, err, VR_ERR_CANCELLED);
                }
                e = errno;
            }
            vr_status code = errno_status(e);
            vr_error_set(err, code, "send to %s failed after %zu of %zu bytes: %s%s", t->peer, sent, total,
                         strerror(e), code == VR_ERR_UNAVAILABLE ? " (peer stage gone?)" : "");
            return fail(t, err, code);
        }
        sent += (size_t)n;
        size_t k = (size_t)n;
        while (first < niov && k >= iov[first].iov_len) {
            k -= iov[first].iov_len;
            first++;
        }
        if (first < niov) {
            iov[first].iov_base = (uint8_t *)iov[first].iov_base + k;
            iov[first].iov_len -= k;
        }
    }
    return VR_OK;
}

/* ---- recv ---- */

/* Reads exactly n bytes. *got counts bytes read so far in this frame (for the messages and to
 * tell "nothing yet" from "mid-frame"). */
static vr_status read_full(tcp_transport *t, uint8_t *buf, size_t n, size_t *got, size_t frame_total,
                           int64_t deadline, int timeout_ms, vr_error *err) {
    size_t off = 0;
    while (off < n) {
        size_t want = n - off;
        if (want > ((size_t)1 << 30)) want = (size_t)1 << 30;
        ssize_t r = recv(t->fd, buf + off, want, 0);
        if (r > 0) {
            off += (size_t)r;
            *got += (size_t)r;
            continue;
        }
        if (r == 0) {
            if (atomic_load(&t->broken)) return check_usable(t, err); /* interrupted here: say why */
            if (*got == 0)
                return vr_error_set(err, VR_ERR_UNAVAILABLE, "peer %s closed the connection", t->peer);
            return vr_error_set(err, VR_ERR_UNAVAILABLE, "peer %s closed the connection mid-frame (after %zu of %s)",
                                t->peer, *got, frame_total ? "the frame's bytes" : "the header's bytes");
        }
        int e = errno;
        if (e == EINTR) continue;
        if (e == EAGAIN || e == EWOULDBLOCK) {
            int w = wait_fd(t->fd, POLLIN, left_ms(deadline));
            if (w > 0) continue;
            if (w == 0) {
                if (*got == 0)
                    return vr_error_set(err, VR_ERR_CANCELLED, "no frame from %s within %d ms", t->peer, timeout_ms);
                return vr_error_set(err, VR_ERR_CANCELLED,
                                    "frame from %s not complete within %d ms (got %zu bytes); connection dropped",
                                    t->peer, timeout_ms, *got);
            }
            e = errno;
        }
        vr_status code = errno_status(e);
        return vr_error_set(err, code, "receive from %s failed: %s", t->peer, strerror(e));
    }
    return VR_OK;
}

static vr_status tcp_recv(vr_transport *base, uint64_t tag_a, uint64_t tag_b, uint64_t *got_tag, void **data,
                          size_t *len, int timeout_ms, vr_error *err) {
    tcp_transport *t = (tcp_transport *)base;
    vr_status s = check_usable(t, err);
    if (s != VR_OK) return s;
    int64_t deadline = timeout_ms < 0 ? -1 : now_ms() + timeout_ms;
    uint8_t hdr[VR_TRANSPORT_HEADER_SIZE];
    size_t got = 0;
    s = read_full(t, hdr, sizeof hdr, &got, 0, deadline, timeout_ms, err);
    if (s != VR_OK) {
        if (s == VR_ERR_CANCELLED && got == 0) return s; /* nothing consumed: still usable */
        return fail(t, err, s);
    }
    if (memcmp(hdr, VR_TRANSPORT_MAGIC, 4) != 0) {
        vr_error_set(err, VR_ERR_FORMAT,
                     "frame from %s has bad magic %02x%02x%02x%02x (not a vrwkv transport peer, or the stream is "
                     "out of step)", t->peer, hdr[0], hdr[1], hdr[2], hdr[3]);
        return fail(t, err, VR_ERR_FORMAT);
    }
    uint32_t hcrc = vr_crc32c(0, hdr, 28);
    if (vr_get_u32le(hdr + 28) != hcrc) {
        vr_error_set(err, VR_ERR_FORMAT, "frame header from %s is corrupt (header checksum %08x, expected %08x)",
                     t->peer, vr_get_u32le(hdr + 28), hcrc);
        return fail(t, err, VR_ERR_FORMAT);
    }
    uint16_t version = vr_get_u16le(hdr + 4), flags = vr_get_u16le(hdr + 6);
    if (version != VR_TRANSPORT_VERSION || flags != 0) {
        vr_error_set(err, VR_ERR_FORMAT,
                     "frame from %s uses transport version %u flags %u; this build speaks version %d (upgrade both "
                     "stages to the same release)", t->peer, version, flags, VR_TRANSPORT_VERSION);
        return fail(t, err, VR_ERR_FORMAT);
    }
    uint64_t tag = vr_get_u64le(hdr + 8), flen = vr_get_u64le(hdr + 16);
    if (flen > (uint64_t)t->max_frame) {
        vr_error_set(err, VR_ERR_FORMAT, "frame from %s claims %llu bytes, over the %zu-byte frame limit", t->peer,
                     (unsigned long long)flen, t->max_frame);
        return fail(t, err, VR_ERR_FORMAT);
    }
    if (tag != tag_a && tag != tag_b) {
        vr_error_set(err, VR_ERR_FORMAT,
                     "frame from %s carries tag 0x%llx but 0x%llx was expected (the stages are out of step)",
                     t->peer, (unsigned long long)tag, (unsigned long long)tag_a);
        return fail(t, err, VR_ERR_FORMAT);
    }
    size_t n = (size_t)flen;
    uint8_t *buf = malloc(n ? n : 1);
    if (!buf) {
        vr_error_set(err, VR_ERR_NOMEM, "out of memory for a %zu-byte frame from %s", n, t->peer);
        return fail(t, err, VR_ERR_NOMEM);
    }
    s = read_full(t, buf, n, &got, sizeof hdr + n, deadline, timeout_ms, err);
    if (s != VR_OK) {
        free(buf);
        return fail(t, err, s);
    }
    uint32_t crc = vr_crc32c(0, buf, n);
    if (crc != vr_get_u32le(hdr + 24)) {
        free(buf);
        vr_error_set(err, VR_ERR_FORMAT,
                     "frame from %s (tag 0x%llx, %zu bytes) failed its checksum (%08x, expected %08x): corrupted in "
                     "transit", t->peer, (unsigned long long)tag, n, crc, vr_get_u32le(hdr + 24));
        return fail(t, err, VR_ERR_FORMAT);
    }
    *data = buf;
    *len = n;
    *got_tag = tag;
    return VR_OK;
}

static const char *tcp_peer_name(vr_transport *base) { return ((tcp_transport *)base)->peer; }

static void tcp_close(vr_transport *base) {
    tcp_transport *t = (tcp_transport *)base;
    close(t->fd);
    pthread_mutex_destroy(&t->mu);
    free(t);
}

static int tcp_wait_readable(vr_transport *base, int timeout_ms) {
    tcp_transport *t = (tcp_transport *)base;
    if (atomic_load(&t->broken)) return 1; /* recv says why at once */
    return wait_fd(t->fd, POLLIN, timeout_ms) != 0;
}

static void tcp_interrupt(vr_transport *base, const char *why) { break_conn((tcp_transport *)base, why); }

static const vr_transport_ops tcp_ops = {tcp_send, tcp_recv, tcp_peer_name, tcp_close, tcp_wait_readable,
                                         tcp_interrupt};

/* ---- construction ---- */

vr_status vr_transport_from_fd(int fd, const char *peer_name, vr_transport **out, vr_error *err) {
    *out = NULL;
    if (fd < 0) return vr_error_set(err, VR_ERR_INVALID, "transport: invalid socket");
    int type = 0;
    socklen_t tl = sizeof type;
    if (getsockopt(fd, SOL_SOCKET, SO_TYPE, &type, &tl) != 0 || type != SOCK_STREAM) {
        close(fd);
        return vr_error_set(err, VR_ERR_INVALID, "transport: descriptor %d is not a stream socket", fd);
    }
    if (vr_fd_set_nonblock(fd) != 0) {
        int e = errno;
        close(fd);
        return vr_error_set(err, VR_ERR_IO, "transport: cannot make the socket non-blocking: %s", strerror(e));
    }
    tune_socket(fd);
    tcp_transport *t = calloc(1, sizeof *t);
    if (!t) {
        close(fd);
        return vr_error_set(err, VR_ERR_NOMEM, "transport: out of memory");
    }
    t->base.ops = &tcp_ops;
    t->fd = fd;
    t->max_frame = VR_TRANSPORT_DEFAULT_MAX_FRAME;
    t->send_stall_ms = VR_TRANSPORT_DEFAULT_SEND_STALL_MS;
    atomic_init(&t->broken, 0);
    pthread_mutex_init(&t->mu, NULL);
    if (peer_name) {
        snprintf(t->peer, sizeof t->peer, "%s", peer_name);
    } else {
        struct sockaddr_storage sa;
        socklen_t sl = sizeof sa;
        memset(&sa, 0, sizeof sa);
        if (getpeername(fd, (struct sockaddr *)&sa, &sl) == 0)
            sock_name(&sa, t->peer, sizeof t->peer);
        else
            snprintf(t->peer, sizeof t->peer, "unknown peer");
    }
    *out = &t->base;
    return VR_OK;
}

vr_status vr_transport_tcp_set_limits(vr_transport *base, size_t max_frame, int send_stall_ms, vr_error *err) {
    if (!base || base->ops != &tcp_ops)
        return vr_error_set(err, VR_ERR_INVALID, "transport: limits apply to TCP transports only");
    tcp_transport *t = (tcp_transport *)base;
    if (max_frame) t->max_frame = max_frame;
    if (send_stall_ms > 0) t->send_stall_ms = send_stall_ms;
    return VR_OK;
}

vr_status vr_transport_tcp_listen(const char *bind_host, int port, int *bound_port, vr_transport_listener **out,
                                  vr_error *err) {
    *out = NULL;
    int fd = -1, got = 0;
    vr_status st = vr_tcp_listen_socket(bind_host, port, "transport listen", &fd, &got, err);
    if (st != VR_OK) return st;
    vr_transport_listener *l = calloc(1, sizeof *l);
    if (!l) {
        close(fd);
        return vr_error_set(err, VR_ERR_NOMEM, "transport listen: out of memory");
    }
    l->fd = fd;
    l->port = got;
    if (bound_port) *bound_port = got;
    *out = l;
    return VR_OK;
}

vr_status vr_transport_tcp_accept(vr_transport_listener *l, int timeout_ms, vr_transport **out, vr_error *err) {
    *out = NULL;
    if (!l) return vr_error_set(err, VR_ERR_INVALID, "transport accept: no listener given");
    int64_t deadline = timeout_ms < 0 ? -1 : now_ms() + timeout_ms;
    for (;;) {
        struct sockaddr_storage sa;
        socklen_t sl = sizeof sa;
        int fd = accept(l->fd, (struct sockaddr *)&sa, &sl);
        if (fd >= 0) {
            char name[128];
            sock_name(&sa, name, sizeof name);
            return vr_transport_from_fd(fd, name, out, err);
        }
        int e = errno;
        if (e == EINTR || e == ECONNABORTED || e == EPROTO) continue;
        if (e != EAGAIN && e != EWOULDBLOCK)
            return vr_error_set(err, VR_ERR_IO, "transport accept on port %d failed: %s", l->port, strerror(e));
        int w = wait_fd(l->fd, POLLIN, left_ms(deadline));
        if (w == 0)
            return vr_error_set(err, VR_ERR_CANCELLED, "no peer connected to port %d within %d ms", l->port,
                                timeout_ms);
        if (w < 0)
            return vr_error_set(err, VR_ERR_IO, "transport accept on port %d failed: %s", l->port, strerror(errno));
    }
}

void vr_transport_listener_close(vr_transport_listener *l) {
    if (!l) return;
    close(l->fd);
    free(l);
}

vr_status vr_transport_tcp_connect(const char *host, int port, int timeout_ms, vr_transport **out, vr_error *err) {
    *out = NULL;
    if (!host || !*host) return vr_error_set(err, VR_ERR_INVALID, "transport connect: no host given");
    if (port <= 0 || port > 65535)
        return vr_error_set(err, VR_ERR_INVALID, "transport connect: port %d out of range", port);
    char port_s[16];
    snprintf(port_s, sizeof port_s, "%d", port);
    struct addrinfo hints, *res = NULL;
    memset(&hints, 0, sizeof hints);
    hints.ai_family = AF_UNSPEC;
    hints.ai_socktype = SOCK_STREAM;
    int gai = getaddrinfo(host, port_s, &hints, &res);
    if (gai != 0)
        return vr_error_set(err, gai == EAI_AGAIN ? VR_ERR_UNAVAILABLE : VR_ERR_INVALID,
                            "transport connect: cannot resolve host \"%s\": %s", host, gai_strerror(gai));
    int64_t deadline = timeout_ms < 0 ? -1 : now_ms() + timeout_ms;
    int last = ECONNREFUSED, timed_out = 0;
    vr_status st = VR_OK;
    for (struct addrinfo *ai = res; ai; ai = ai->ai_next) {
        int fd = socket(ai->ai_family, ai->ai_socktype | SOCK_CLOEXEC, ai->ai_protocol);
        if (fd < 0) {
            last = errno;
            continue;
        }
        if (vr_fd_set_nonblock(fd) != 0) {
            last = errno;
            close(fd);
            continue;
        }
        int r;
        do {
            r = connect(fd, ai->ai_addr, ai->ai_addrlen);
        } while (r < 0 && errno == EINTR);
        if (r < 0 && (errno == EINPROGRESS || errno == EALREADY)) {
            int w = wait_fd(fd, POLLOUT, left_ms(deadline));
            if (w == 0) {
                timed_out = 1;
                close(fd);
                break;
            }
            int soerr = 0;
            socklen_t sl = sizeof soerr;
            if (w < 0)
                soerr = errno;
            else if (getsockopt(fd, SOL_SOCKET, SO_ERROR, &soerr, &sl) != 0)
                soerr = errno;
            r = soerr ? -1 : 0;
            errno = soerr;
        }
        if (r < 0) {
            last = errno;
            close(fd);
            continue;
        }
        char name[160];
        snprintf(name, sizeof name, "%s:%d", host, port);
        st = vr_transport_from_fd(fd, name, out, err);
        freeaddrinfo(res);
        return st;
    }
    freeaddrinfo(res);
    if (timed_out)
        return vr_error_set(err, VR_ERR_CANCELLED, "connecting to %s:%d did not finish within %d ms", host, port,
                            timeout_ms);
    return vr_error_set(err, VR_ERR_UNAVAILABLE, "cannot connect to %s:%d: %s (is that stage running?)", host, port,
                        strerror(last));
}

vr_status vr_transport_tcp_connect_address(const char *address, int timeout_ms, vr_transport **out, vr_error *err) {
    *out = NULL;
    const char *colon = address ? strrchr(address, ':') : NULL;
    char host[256];
    if (!colon || colon == address || (size_t)(colon - address) >= sizeof host)
        return vr_error_set(err, VR_ERR_INVALID, "transport connect: bad address '%s' (want host:port)",
                            address ? address : "");
    char *end = NULL;
    long port = strtol(colon + 1, &end, 10);
    if (!colon[1] || *end || port <= 0 || port > 65535)
        return vr_error_set(err, VR_ERR_INVALID, "transport connect: bad port in '%s'", address);
    memcpy(host, address, (size_t)(colon - address));
    host[colon - address] = 0;
    /* "[::1]:port" names an IPv6 host */
    if (host[0] == '[' && host[strlen(host) - 1] == ']') {
        memmove(host, host + 1, strlen(host));
        host[strlen(host) - 1] = 0;
    }
    return vr_transport_tcp_connect(host, (int)port, timeout_ms, out, err);
}
