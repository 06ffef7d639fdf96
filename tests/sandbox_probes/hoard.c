/* Tries to hold memory that no process's RLIMIT_AS is charged for. Prints one `what=result` line per way.
 * usage: hoard MIB WAY...   (MIB: how much to put in each place, written, never mapped; WAY: memfd, memfd_x32,
 * dev_shm, root_dir, etc_dir, mq_open) */
#define _GNU_SOURCE /* memfd_create, strerrorname_np */
#include <errno.h>
#include <fcntl.h>
#include <mqueue.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/mman.h>
#include <sys/syscall.h>
#include <unistd.h>

static char chunk[1 << 20];

/* Writes `mib` MiB into fd; prints `<what>=ok` and `<what>_mib=<written>`, or the errno of the first failure. */
static void fill(const char *what, int fd, long mib) {
    long written = 0;
    if (fd < 0) {
        printf("%s=%s\n", what, strerrorname_np(errno));
        return;
    }
    while (written < mib && write(fd, chunk, sizeof chunk) == (ssize_t)sizeof chunk) written++;
    printf("%s=%s\n%s_mib=%ld\n", what, written == mib ? "ok" : strerrorname_np(errno), what, written);
    /* kept open on purpose: the memory stays held until the program exits */
}

int main(int argc, char **argv) {
    if (argc < 3) return 2;
    long mib = atol(argv[1]);
    memset(chunk, 0x5a, sizeof chunk);
    setvbuf(stdout, NULL, _IOLBF, 0); /* every line out before a way that gets the program killed */
    for (int i = 2; i < argc; i++) {
        const char *way = argv[i];
        if (!strcmp(way, "memfd")) fill(way, memfd_create("hoard", 0), mib);
        /* the x32 ABI's number for the same call: a filter that checks syscall numbers must not miss it */
        else if (!strcmp(way, "memfd_x32")) fill(way, (int)syscall(0x40000000 | SYS_memfd_create, "hoard", 0), mib);
        else if (!strcmp(way, "dev_shm")) fill(way, open("/dev/shm/hoard", O_WRONLY | O_CREAT | O_TRUNC, 0600), mib);
        else if (!strcmp(way, "root_dir")) fill(way, open("/hoard", O_WRONLY | O_CREAT | O_TRUNC, 0600), mib);
        else if (!strcmp(way, "etc_dir")) fill(way, open("/etc/hoard", O_WRONLY | O_CREAT | O_TRUNC, 0600), mib);
        else if (!strcmp(way, "mq_open")) {
            struct mq_attr attr = {.mq_maxmsg = 1, .mq_msgsize = 64};
            mqd_t queue = mq_open("/hoard", O_WRONLY | O_CREAT, 0600, &attr);
            printf("mq_open=%s\n", queue == (mqd_t)-1 ? strerrorname_np(errno) : "ok");
        } else
            return 2;
    }
    return 0;
}
