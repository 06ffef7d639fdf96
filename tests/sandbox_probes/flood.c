/* Writes MIB mebibytes to stdout and as much to stderr, interleaved, then exits 0.
 * A sandbox that stops reading a pipe would block it forever. usage: flood MIB */
#include <stdlib.h>
#include <string.h>
#include <unistd.h>

static int write_all(int fd, const char *data, size_t size) {
    while (size > 0) {
        ssize_t n = write(fd, data, size);
        if (n < 0) return -1;
        data += n;
        size -= (size_t)n;
    }
    return 0;
}

int main(int argc, char **argv) {
    static char block[64 * 1024];
    long blocks;
    if (argc < 2) return 2;
    blocks = atol(argv[1]) * 16;
    memset(block, 'o', sizeof block);
    for (long i = 0; i < blocks; i++) {
        if (write_all(1, block, sizeof block) || write_all(2, block, sizeof block)) return 1;
    }
    return 0;
}
