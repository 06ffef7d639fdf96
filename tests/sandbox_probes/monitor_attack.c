/* A stand-in for the benchmark monitor and its candidate. The program (the "monitor") makes itself non-dumpable,
 * notes its own scheduling state, forks a child (the "candidate") that runs the named attacks against TARGET,
 * then reports whether its state changed, and checks that it can still do what the monitor does: re-pin itself
 * and SIGKILL a child. Prints `key=value` lines.
 * usage: monitor_attack TARGET ATTACK...   TARGET: "parent" (the child's getppid()) or a pid such as 1 */
#define _GNU_SOURCE /* sched_setaffinity, strerrorname_np */
#include <dirent.h>
#include <errno.h>
#include <fcntl.h>
#include <pthread.h>
#include <sched.h>
#include <signal.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/prctl.h>
#include <sys/resource.h>
#include <sys/syscall.h>
#include <sys/wait.h>
#include <unistd.h>

/* struct sched_attr of <linux/sched/types.h>, which clashes with glibc's <sched.h> */
struct sched_attr_v0 {
    unsigned int size, sched_policy;
    unsigned long long sched_flags;
    int sched_nice;
    unsigned int sched_priority;
    unsigned long long sched_runtime, sched_deadline, sched_period;
};

typedef struct {
    cpu_set_t affinity;
    int nice, policy, ioprio;
    struct rlimit nofile;
} state;

static void snapshot(state *s) {
    CPU_ZERO(&s->affinity);
    sched_getaffinity(0, sizeof s->affinity, &s->affinity);
    errno = 0;
    s->nice = getpriority(PRIO_PROCESS, 0);
    s->policy = sched_getscheduler(0);
    s->ioprio = (int)syscall(SYS_ioprio_get, 1 /* IOPRIO_WHO_PROCESS */, 0);
    getrlimit(RLIMIT_NOFILE, &s->nofile);
}

/* A one-CPU mask: the highest CPU we may run on (a change the parent can see if it had more than one). */
static cpu_set_t one_cpu(void) {
    cpu_set_t all, one;
    CPU_ZERO(&one);
    sched_getaffinity(0, sizeof all, &all);
    for (int cpu = CPU_SETSIZE - 1; cpu >= 0; cpu--)
        if (CPU_ISSET(cpu, &all)) {
            CPU_SET(cpu, &one);
            break;
        }
    return one;
}

static void *idle_thread(void *arg) {
    (void)arg;
    pause();
    return NULL;
}

static long attack(const char *name, pid_t t) {
    cpu_set_t one = one_cpu();
    struct sched_param zero = {0};
    struct sched_attr_v0 attr = {.size = sizeof attr, .sched_policy = SCHED_IDLE};
    struct rlimit few = {16, 16};
    char path[64];
    if (!strcmp(name, "kill_term")) return kill(t, SIGTERM);
    if (!strcmp(name, "kill_stop")) return kill(t, SIGSTOP);
    if (!strcmp(name, "kill_kill")) return kill(t, SIGKILL);
    if (!strcmp(name, "tgkill")) return syscall(SYS_tgkill, t, t, SIGKILL);
    if (!strcmp(name, "sigqueue")) return sigqueue(t, SIGKILL, (union sigval){0});
    if (!strcmp(name, "kill_group")) return kill(0, SIGTERM); /* SIGTERM is blocked in this process */
    if (!strcmp(name, "kill_all")) return kill(-1, SIGTERM);
    if (!strcmp(name, "affinity")) return sched_setaffinity(t, sizeof one, &one);
    /* the same pid with bits above 32 set: the kernel reads an int, a filter that compares 64 bits sees another */
    if (!strcmp(name, "affinity_high")) return syscall(SYS_sched_setaffinity, (1L << 32) | t, sizeof one, &one);
    if (!strcmp(name, "nice")) return setpriority(PRIO_PROCESS, (id_t)t, 19);
    if (!strcmp(name, "nice_group")) return setpriority(PRIO_PGRP, 0, 19);
    if (!strcmp(name, "nice_user")) return setpriority(PRIO_USER, 0, 19);
    if (!strcmp(name, "idle")) return sched_setscheduler(t, SCHED_IDLE, &zero);
    if (!strcmp(name, "setattr")) return syscall(SYS_sched_setattr, t, &attr, 0);
    if (!strcmp(name, "prlimit")) return prlimit(t, RLIMIT_NOFILE, &few, NULL);
    if (!strcmp(name, "ioprio")) return syscall(SYS_ioprio_set, 1 /* IOPRIO_WHO_PROCESS */, t, 3 << 13 /* idle */);
    if (!strcmp(name, "pidfd")) return syscall(SYS_pidfd_open, t, 0);
    if (!strcmp(name, "mem")) {
        snprintf(path, sizeof path, "/proc/%d/mem", (int)t);
        return open(path, O_RDWR);
    }
    /* what a candidate may do to itself and its own threads (libgomp pins each thread by its tid) */
    if (!strcmp(name, "own_affinity")) return sched_setaffinity(0, sizeof one, &one);
    if (!strcmp(name, "own_thread_affinity")) {
        pthread_t thread;
        if (pthread_create(&thread, NULL, idle_thread, NULL) != 0) return -1;
        int rc = pthread_setaffinity_np(thread, sizeof one, &one);
        pthread_cancel(thread);
        pthread_join(thread, NULL);
        errno = rc;
        return rc ? -1 : 0;
    }
    if (!strcmp(name, "own_nice")) return setpriority(PRIO_PROCESS, 0, 5);
    if (!strcmp(name, "own_batch")) return sched_setscheduler(0, SCHED_BATCH, &zero);
    /* a real-time policy would let its threads starve the monitor (and the node): RLIMIT_RTPRIO must be 0 */
    if (!strcmp(name, "own_fifo")) return sched_setscheduler(0, SCHED_FIFO, &(struct sched_param){.sched_priority = 1});
    errno = EINVAL;
    return -1;
}

/* Our pid, and every other process this PID namespace holds (the program should be alone in it). */
static void list_others(void) {
    const char *separator = "";
    DIR *proc = opendir("/proc");
    struct dirent *entry;
    printf("pid=%d\nothers=", (int)getpid());
    while (proc && (entry = readdir(proc)))
        if (entry->d_name[0] >= '1' && entry->d_name[0] <= '9' && atoi(entry->d_name) != getpid()) {
            printf("%s%s", separator, entry->d_name);
            separator = ",";
        }
    if (proc) closedir(proc);
    printf("\n");
}

int main(int argc, char **argv) {
    if (argc < 2) return 2;
    prctl(PR_SET_DUMPABLE, 0); /* as the monitor does: no /proc/PID/mem, no ptrace from the same uid */
    list_others();
    fflush(stdout);
    state before, after;
    snapshot(&before);
    pid_t child = fork();
    if (child == 0) {
        sigset_t term;
        sigemptyset(&term);
        sigaddset(&term, SIGTERM);
        sigprocmask(SIG_BLOCK, &term, NULL);
        pid_t target = strcmp(argv[1], "parent") == 0 ? getppid() : (pid_t)atoi(argv[1]);
        for (int i = 2; i < argc; i++) {
            long rc = attack(argv[i], target);
            printf("%s=%s\n", argv[i], rc < 0 ? strerrorname_np(errno) : "ok");
            fflush(stdout);
        }
        _exit(0);
    }
    waitpid(child, NULL, 0);
    snapshot(&after);
    printf("parent_affinity=%s\n", CPU_EQUAL(&before.affinity, &after.affinity) ? "unchanged" : "changed");
    printf("parent_nice=%s\n", before.nice == after.nice ? "unchanged" : "changed");
    printf("parent_policy=%s\n", before.policy == after.policy ? "unchanged" : "changed");
    printf("parent_ioprio=%s\n", before.ioprio == after.ioprio ? "unchanged" : "changed");
    printf("parent_nofile=%s\n", before.nofile.rlim_cur == after.nofile.rlim_cur ? "unchanged" : "changed");
    /* what the monitor itself needs: re-pin itself (by 0, never by its own pid) and SIGKILL its child */
    cpu_set_t one = one_cpu();
    printf("self_affinity=%s\n", sched_setaffinity(0, sizeof one, &one) == 0 ? "ok" : strerrorname_np(errno));
    pid_t sleeper = fork();
    if (sleeper == 0) {
        pause();
        _exit(0);
    }
    int status = 0;
    int killed = kill(sleeper, SIGKILL) == 0 && waitpid(sleeper, &status, 0) == sleeper && WIFSIGNALED(status);
    printf("kill_child=%s\n", killed ? "ok" : "failed");
    return 0;
}
