/* common/net_listen.h — a listening TCP socket for the project's own servers (the activation
 * transport's listener, the metrics endpoint): resolve, bind, listen, non-blocking and
 * close-on-exec, and the port actually bound. Must not accept or serve: the caller owns the
 * socket from here on. */
#ifndef VR_NET_LISTEN_H
#define VR_NET_LISTEN_H

#include "common/error.h"

/* Listens on bind_host (NULL = all interfaces) : port (0 = ephemeral). *fd_out is the socket
 * (close it), *bound_port (may be NULL) the port it got. `what` names the server in errors:
 * a bad port or an unresolvable host is VR_ERR_INVALID, a port in use VR_ERR_IO. */
vr_status vr_tcp_listen_socket(const char *bind_host, int port, const char *what, int *fd_out, int *bound_port,
                               vr_error *err);
/* O_NONBLOCK (and FD_CLOEXEC) on fd: 0, or -1 with errno set. */
int vr_fd_set_nonblock(int fd);

#endif
