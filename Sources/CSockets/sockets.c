#define _GNU_SOURCE
#include <sys/socket.h>
#include <stddef.h>
#include "CSockets.h"

_Static_assert(sizeof(parley_mmsghdr) == sizeof(struct mmsghdr), "parley_mmsghdr must match struct mmsghdr");

int parley_recvmmsg(int fd, parley_mmsghdr *messages, unsigned int count, int flags) {
    return recvmmsg(fd, (struct mmsghdr *)messages, count, flags, NULL);
}

int parley_sendmmsg(int fd, parley_mmsghdr *messages, unsigned int count, int flags) {
    return sendmmsg(fd, (struct mmsghdr *)messages, count, flags);
}
