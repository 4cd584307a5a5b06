/* net.h - small socket helpers shared by the daemons. */
#ifndef DEVBRIDGE_CORE_NET_H
#define DEVBRIDGE_CORE_NET_H

#include <stddef.h>
#include <stdint.h>
#include <sys/socket.h>

/* A non-blocking, close-on-exec TCP listener on addr:port (numeric, v4 or
 * v6; v6 sockets are V6ONLY).  Returns the fd and, if ret_port, the bound
 * port; or a negative errno. */
int net_listen_tcp(const char *addr, uint16_t port, uint16_t *ret_port);

/* Start a non-blocking connect; returns the fd (connected or in progress)
 * or a negative errno. */
int net_connect_nb(const struct sockaddr *sa, socklen_t sl);

/* The pending error of a socket (SO_ERROR), as a positive errno or 0. */
int net_so_error(int fd);

/* The peer's numeric address ("?" if unknown). */
void net_peer_name(int fd, char *buf, size_t n);

/* A random RFC 4122 version 4 UUID, lowercase (37 bytes with the NUL). */
void net_uuid_v4(char *out, size_t n);

#endif
