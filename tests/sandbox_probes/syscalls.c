/* Calls syscalls the seccomp filter refuses; prints `name=ok` or `name=<errno name>` for each.
 * usage: syscalls [NAME...]   (default: every one below) */
#define _GNU_SOURCE
#include <errno.h>
#include <linux/perf_event.h>
#include <sched.h>
#include <signal.h>
#include <stdio.h>
#include <string.h>
#include <sys/ipc.h>
#include <sys/ptrace.h>
#include <sys/shm.h>
#include <sys/socket.h>
#include <sys/syscall.h>
#include <sys/uio.h>
#include <sys/wait.h>
#include <unistd.h>

static long forked(long rc) {
    if (rc == 0) _exit(0);
    if (rc > 0) waitpid((pid_t)rc, NULL, 0);
    return rc;
}

static long call(const char *name) {
    struct perf_event_attr attr = {.type = PERF_TYPE_SOFTWARE, .size = sizeof attr, .config = PERF_COUNT_SW_CPU_CLOCK};
    char buffer[8], source[8] = "secret";
    struct iovec local = {buffer, sizeof buffer}, remote = {source, sizeof source};
    int pair[2];

    if (!strcmp(name, "socket_inet")) return socket(AF_INET, SOCK_STREAM, 0);
    if (!strcmp(name, "socket_unix")) return socket(AF_UNIX, SOCK_STREAM, 0);
    if (!strcmp(name, "ptrace")) return ptrace(PTRACE_TRACEME, 0, 0, 0);
    if (!strcmp(name, "process_vm_readv")) return process_vm_readv(getpid(), &local, 1, &remote, 1, 0);
    if (!strcmp(name, "unshare_user")) return unshare(CLONE_NEWUSER);
    if (!strcmp(name, "unshare_mount")) return unshare(CLONE_NEWNS);
    if (!strcmp(name, "perf_event_open")) return syscall(SYS_perf_event_open, &attr, 0, -1, -1, 0);
    if (!strcmp(name, "userfaultfd")) return syscall(SYS_userfaultfd, 0);
    if (!strcmp(name, "io_uring_setup")) return syscall(SYS_io_uring_setup, 1, buffer);
    if (!strcmp(name, "bpf")) return syscall(SYS_bpf, 0, NULL, 0);
    if (!strcmp(name, "keyctl")) return syscall(SYS_keyctl, 0, 0, 0, 0, 0);
    if (!strcmp(name, "shmget")) return shmget(IPC_PRIVATE, 1 << 20, IPC_CREAT | 0600);
    /* clone with a namespace flag: the way around a refused unshare() */
    if (!strcmp(name, "clone_newuser")) return forked(syscall(SYS_clone, CLONE_NEWUSER | SIGCHLD, 0, 0, 0, 0));
    /* what must keep working */
    if (!strcmp(name, "fork")) return forked(fork());
    if (!strcmp(name, "socketpair")) return socketpair(AF_UNIX, SOCK_STREAM, 0, pair);
    errno = EINVAL;
    return -1;
}

int main(int argc, char **argv) {
    static const char *all[] = {"socket_inet", "socket_unix", "ptrace", "process_vm_readv", "unshare_user",
                                "unshare_mount", "perf_event_open", "userfaultfd", "io_uring_setup", "bpf",
                                "keyctl", "shmget", "clone_newuser", "fork", "socketpair"};
    int count = argc > 1 ? argc - 1 : (int)(sizeof all / sizeof all[0]);
    for (int i = 0; i < count; i++) {
        const char *name = argc > 1 ? argv[i + 1] : all[i];
        long rc = call(name);
        printf("%s=%s\n", name, rc < 0 ? strerrorname_np(errno) : "ok");
    }
    return 0;
}
