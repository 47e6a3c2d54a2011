// Linux socket calls Swift's Glibc module does not import: recvmmsg and
// sendmmsg need _GNU_SOURCE (set in sockets.c, not here, since the Glibc
// module is built without it), epoll and eventfd live in headers outside it.
#ifndef PARLEY_CSOCKETS_H
#define PARLEY_CSOCKETS_H

#include <sys/socket.h>
#include <sys/epoll.h>
#include <sys/eventfd.h>
#include <netinet/in.h>

/// Layout-identical to glibc's `struct mmsghdr` (checked in sockets.c).
typedef struct {
    struct msghdr msg_hdr;
    unsigned int msg_len;
} parley_mmsghdr;

/// recvmmsg(2) with no timeout. Returns messages received or -1 (errno set).
int parley_recvmmsg(int fd, parley_mmsghdr *messages, unsigned int count, int flags);

/// sendmmsg(2). Returns messages sent or -1 (errno set).
int parley_sendmmsg(int fd, parley_mmsghdr *messages, unsigned int count, int flags);

#endif
