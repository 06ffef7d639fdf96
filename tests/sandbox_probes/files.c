/* Which files can the sandboxed program read or write? Prints one `what=result` line per attempt.
 * usage: files MARKER   (MARKER names the file it writes in /tmp, so the test can look for it on the host) */
#define _GNU_SOURCE /* strerrorname_np */
#include <errno.h>
#include <fcntl.h>
#include <stdio.h>
#include <string.h>
#include <unistd.h>

static void try_open(const char *what, const char *path, int flags) {
    int fd = open(path, flags, 0644);
    if (fd < 0) {
        printf("%s=%s\n", what, strerrorname_np(errno));
        return;
    }
    if (flags & O_WRONLY && write(fd, "x", 1) != 1) {
        printf("%s=%s\n", what, strerrorname_np(errno));
    } else {
        printf("%s=ok\n", what);
    }
    close(fd);
}

int main(int argc, char **argv) {
    char tmp_path[256];
    if (argc < 2) return 2;
    snprintf(tmp_path, sizeof tmp_path, "/tmp/%s", argv[1]);
    printf("uid=%d\ngid=%d\n", (int)getuid(), (int)getgid());
    try_open("read_shadow", "/etc/shadow", O_RDONLY);
    try_open("write_etc", "/etc/hpcrl-sandbox-probe", O_WRONLY | O_CREAT);
    try_open("write_usr", "/usr/hpcrl-sandbox-probe", O_WRONLY | O_CREAT);
    try_open("write_tmp", tmp_path, O_WRONLY | O_CREAT);
    try_open("write_work", "/tmp/work/probe-output", O_WRONLY | O_CREAT);
    try_open("write_dev_shm", "/dev/shm/hpcrl-sandbox-probe", O_WRONLY | O_CREAT);
    try_open("write_run", "/run/hpcrl-sandbox-probe", O_WRONLY | O_CREAT);
    return 0;
}
