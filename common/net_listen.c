/* common/net_listen.c — a listening TCP socket (see net_listen.h). Must not accept or serve. */
#include "common/net_listen.h"

#include <errno.h>
#include <fcntl.h>
#include <netdb.h>
#include <netinet/in.h>
#include <stdio.h>
#include <string.h>
#include <sys/socket.h>
#include <unistd.h>

int vr_fd_set_nonblock(int fd) {
    int fl = fcntl(fd, F_GETFL, 0);
    if (fl < 0 || fcntl(fd, F_SETFL, fl | O_NONBLOCK) < 0) return -1;
    int fdfl = fcntl(fd, F_GETFD, 0);
    if (fdfl >= 0) fcntl(fd, F_SETFD, fdfl | FD_CLOEXEC);
    return 0;
}

vr_status vr_tcp_listen_socket(const char *bind_host, int port, const char *what, int *fd_out, int *bound_port,
                               vr_error *err) {
    *fd_out = -1;
    if (port < 0 || port > 65535) return vr_error_set(err, VR_ERR_INVALID, "%s: port %d out of range", what, port);
    char port_s[16];
    snprintf(port_s, sizeof port_s, "%d", port);
    struct addrinfo hints, *res = NULL;
    memset(&hints, 0, sizeof hints);
    hints.ai_family = AF_UNSPEC;
    hints.ai_socktype = SOCK_STREAM;
    hints.ai_flags = AI_PASSIVE;
    int gai = getaddrinfo(bind_host, port_s, &hints, &res);
    if (gai != 0)
        return vr_error_set(err, VR_ERR_INVALID, "%s: cannot resolve bind address \"%s\": %s", what,
                            bind_host ? bind_host : "*", gai_strerror(gai));
    int fd = -1, last = 0;
    for (struct addrinfo *ai = res; ai; ai = ai->ai_next) {
        fd = socket(ai->ai_family, ai->ai_socktype | SOCK_CLOEXEC, ai->ai_protocol);
        if (fd < 0) {
            last = errno;
            continue;
        }
        int one = 1;
        setsockopt(fd, SOL_SOCKET, SO_REUSEADDR, &one, sizeof one);
        if (bind(fd, ai->ai_addr, ai->ai_addrlen) == 0 && listen(fd, 64) == 0 && vr_fd_set_nonblock(fd) == 0) break;
        last = errno;
        close(fd);
        fd = -1;
    }
    freeaddrinfo(res);
    if (fd < 0)
        return vr_error_set(err, VR_ERR_IO, "%s: cannot listen on %s:%d: %s (is the port in use?)", what,
                            bind_host ? bind_host : "*", port, strerror(last));
    int got = port;
    struct sockaddr_storage sa;
    socklen_t sl = sizeof sa;
    if (getsockname(fd, (struct sockaddr *)&sa, &sl) == 0) {
        if (sa.ss_family == AF_INET) got = ntohs(((struct sockaddr_in *)&sa)->sin_port);
        if (sa.ss_family == AF_INET6) got = ntohs(((struct sockaddr_in6 *)&sa)->sin6_port);
    }
    if (bound_port) *bound_port = got;
    *fd_out = fd;
    return VR_OK;
}
