/* Writes 64 KiB blocks to PATH until a write fails; prints how far it got and why.
 * usage: fill PATH   (under RLIMIT_FSIZE the kernel kills it with SIGXFSZ instead) */
#define _GNU_SOURCE /* strerrorname_np */
#include <errno.h>
#include <fcntl.h>
#include <stdio.h>
#include <string.h>
#include <unistd.h>

int main(int argc, char **argv) {
    static char block[64 * 1024];
    long long written = 0;
    int fd;
    if (argc < 2) return 2;
    fd = open(argv[1], O_WRONLY | O_CREAT | O_TRUNC, 0644);
    if (fd < 0) {
        printf("open=%s\n", strerrorname_np(errno));
        return 1;
    }
    memset(block, 'x', sizeof block);
    for (;;) {
        ssize_t n = write(fd, block, sizeof block);
        if (n < 0) {
            printf("errno=%s\nbytes=%lld\n", strerrorname_np(errno), written);
            return 0;
        }
        written += n;
    }
}
