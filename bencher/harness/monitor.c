/* The trusted benchmark monitor: fork the candidate, time each call, verify each output.
 *
 * Usage: bench candidate=/path/candidate.so n=512 full_check_max_n=256 tolerance=1 warmup=1 min_reps=3
 *              max_reps=30 max_seconds=1 cv_target=0.02 call_timeout_s=10
 * Records go to the file descriptor named by $HPCRL_CHANNEL_FD, one line each (docs/bencher.md):
 *   rep <index> <warm|timed> <seconds> <max_error> <bound> <outside_cpu_s>
 *   fail <verdict> <detail...>
 *   done <timed_reps>
 *
 * Threat model: the candidate is arbitrary code, so it must never run in this process, where the
 * result channel, the arguments (n, tolerance), the environment, the clock and the random state live.
 * It is therefore not linked into this program: it is a shared object that only the forked child
 * loads (dlopen), after the child has closed every descriptor but its two pipes. Its ifunc resolvers,
 * constructors and entry point all run in the child, whose copy of our memory holds no secret (the
 * random keys are drawn after the fork, in this process) and whose changes we never see. The two
 * processes share only the problem's buffers (MAP_SHARED). This process is made non-dumpable, so the
 * child (same uid) can neither ptrace it nor open its /proc/PID/fd/ or /proc/PID/mem. Timing is our
 * CLOCK_MONOTONIC around a pipe round trip. Between calls the child is stopped (SIGSTOP), all its
 * threads, so none of them sees the next inputs before "go" or touches an output while it is copied; the
 * child's CPU clock is still read at each hand-over, and what it used outside the calls (before the stop
 * took effect) is reported. The child cannot start processes (a seccomp filter of its own). Every input
 * buffer and every check vector has its own key from getrandom(), drawn when it is needed: a
 * candidate that reads its inputs learns nothing about a later call's inputs or about the vectors
 * that will check its output.
 */
#define _GNU_SOURCE
#include "monitor.h"

#include <dlfcn.h>
#include <errno.h>
#include <linux/audit.h>
#include <linux/filter.h>
#include <linux/seccomp.h>
#include <math.h>
#include <poll.h>
#include <sched.h>
#include <signal.h>
#include <stdarg.h>
#include <stddef.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/mman.h>
#include <sys/prctl.h>
#include <sys/random.h>
#include <sys/syscall.h>
#include <sys/wait.h>
#include <time.h>
#include <unistd.h>

#define MAX_REPS_LIMIT 10000

static FILE *channel;
static pid_t child_pid;

static void emit(const char *format, ...) {
    va_list args;
    va_start(args, format);
    vfprintf(channel, format, args);
    va_end(args);
    fputc('\n', channel);
    fflush(channel);
}

static void stop_child(void) {
    if (child_pid > 0) {
        kill(child_pid, SIGKILL);
        waitpid(child_pid, NULL, 0);
        child_pid = 0;
    }
}

/* Report a verdict about the candidate and end the run. exit 0: the monitor itself worked. */
static void fail(const char *verdict, const char *format, ...) {
    char detail[512];
    va_list args;
    va_start(args, format);
    vsnprintf(detail, sizeof detail, format, args);
    va_end(args);
    stop_child();
    emit("fail %s %s", verdict, detail);
    exit(0);
}

/* Our own fault (bad arguments, no memory for the harness): exit 2, the bencher says infra_error. */
static void infra(const char *what) {
    stop_child();
    emit("fail infra_error %s", what);
    exit(2);
}

#define FILL_LANES 8

static void random_bytes(void *out, size_t bytes) {
    for (size_t got = 0; got < bytes;) {
        ssize_t n = getrandom((char *)out + got, bytes - got, 0);
        if (n < 0 && errno == EINTR) continue;
        if (n <= 0) infra("getrandom failed");
        got += (size_t)n;
    }
}

static double uniform_of(uint64_t bits) { return (double)(bits >> 11) * 0x1.0p-52 - 1.0; }

void random_draw(double *out, size_t count) {
    uint64_t chunk[256];
    for (size_t i = 0; i < count;) {
        size_t take = count - i < 256 ? count - i : 256;
        random_bytes(chunk, take * sizeof chunk[0]);
        for (size_t k = 0; k < take; k++) out[i + k] = uniform_of(chunk[k]);
        i += take;
    }
}

/* Eight xorshift64* lanes keyed by 512 fresh bits: one stream per buffer, never reused. */
typedef struct {
    uint64_t lane[FILL_LANES];
} keyed_stream;

static void stream_start(keyed_stream *s) {
    random_bytes(s->lane, sizeof s->lane);
    for (int l = 0; l < FILL_LANES; l++) s->lane[l] |= 1; /* xorshift state must not be 0 */
}

static inline uint64_t stream_next(keyed_stream *s, int l) {
    uint64_t x = s->lane[l];
    x ^= x >> 12;
    x ^= x << 25;
    x ^= x >> 27;
    s->lane[l] = x;
    return x * 0x2545F4914F6CDD1DULL;
}

/* One loop shape for every element type: whole groups of eight (the lanes vectorize), then the tail.
 *
 * The values of one stream give its lanes away: out = state * M shows 53 bits of the product, and the other
 * 11 can be tried against the next value, so 16 values rebuild all eight lanes, and the lanes can be jumped
 * ahead. A red-team candidate did exactly that: it read x[0..15] of reduce_sum's 160 MB and regenerated the
 * rest in registers, `ok` at 1.5x the honest rate without reading what it was paid to read. So a second
 * stream, with its own key, changes one value in 16 on average (its top bits XORed with the second stream's
 * word, whose low 4 bits pick the value) at positions that no buffer shows: a program that does not read every
 * cache line of its input misses some of them, and its output is wrong by far more than any bound. */
#define FILL_WITH_STREAM(out, count, convert)                                                                 \
    do {                                                                                                      \
        keyed_stream values_, changes_;                                                                       \
        stream_start(&values_);                                                                               \
        stream_start(&changes_);                                                                              \
        size_t i_ = 0;                                                                                        \
        for (; i_ + FILL_LANES <= (count); i_ += FILL_LANES)                                                  \
            for (int l_ = 0; l_ < FILL_LANES; l_++)                                                           \
                (out)[i_ + (size_t)l_] = convert(stream_next(&values_, l_) ^ changed_bits(&changes_, l_));    \
        for (int l_ = 0; i_ < (count); i_++, l_++)                                                            \
            (out)[i_] = convert(stream_next(&values_, l_) ^ changed_bits(&changes_, l_));                     \
    } while (0)

/* The second stream's word where its low 4 bits are 0 (one draw in 16), else 0: XORed into a value, it
 * changes the value's top bits, which every conversion below reads. */
static inline uint64_t changed_bits(keyed_stream *changes, int l) {
    uint64_t word = stream_next(changes, l);
    return word & (0 - (uint64_t)((word & 15) == 0));
}

static float uniform_float_of(uint64_t bits) { return (float)(bits >> 40) * 0x1.0p-23f - 1.0f; }

void random_fill(double *out, size_t count) { FILL_WITH_STREAM(out, count, uniform_of); }

void random_fill_float(float *out, size_t count) { FILL_WITH_STREAM(out, count, uniform_float_of); }

void random_ints(int *out, size_t count, int below) {
    /* Lemire's multiply-shift: the bias is below 2^-32 * below, invisible at the sizes used. */
#define BELOW(bits) ((int)(((bits) >> 32) * (uint64_t)below >> 32))
    FILL_WITH_STREAM(out, count, BELOW);
#undef BELOW
}

void random_bytes_fill(void *out, size_t bytes) {
    uint64_t *words = out;
    size_t whole = bytes / sizeof(uint64_t);
#define SAME(bits) (bits)
    FILL_WITH_STREAM(words, whole, SAME);
#undef SAME
    if (bytes % sizeof(uint64_t)) {
        uint64_t last;
        random_bytes(&last, sizeof last);
        memcpy((char *)out + whole * sizeof(uint64_t), &last, bytes % sizeof(uint64_t));
    }
}

/* A buffer shared with the candidate's process, with an inaccessible guard page on each side: writing
 * far past either end crashes instead of silently landing in another buffer. The buffer starts 64-byte
 * aligned (aligned vector loads work) and ends at most 63 bytes before the guard; the writable bytes around
 * it (`slack`: before it, up to the page, and the few after it) hold SLACK_BYTE and are checked after every
 * call, so a write just past either end (a loop that runs one element too far) is seen too. */
#define SLACK_BYTE 0xa5

typedef struct {
    char *writable; /* the pages between the guards */
    size_t span;    /* their size */
} shared_region;

static void *shared_alloc(size_t bytes, shared_region *region) {
    size_t page = (size_t)sysconf(_SC_PAGESIZE), span = (bytes + page - 1) / page * page;
    char *p = mmap(NULL, span + 2 * page, PROT_NONE, MAP_SHARED | MAP_ANONYMOUS, -1, 0);
    if (p == MAP_FAILED) return NULL;
    if (mprotect(p + page, span, PROT_READ | PROT_WRITE) != 0) return NULL;
    *region = (shared_region){.writable = p + page, .span = span};
    memset(region->writable, SLACK_BYTE, span);
    return p + page + ((span - bytes) & ~(size_t)63);
}

/* The first byte around the buffer [start, start + bytes) that is no longer SLACK_BYTE, as a signed offset
 * from the buffer (negative: before it; `bytes` or more: after it); 0 when every one is intact. */
static long slack_written(const shared_region *region, const char *start, size_t bytes) {
    for (const char *c = region->writable; c < start; c++)
        if ((unsigned char)*c != SLACK_BYTE) return (long)(c - start);
    for (const char *c = start + bytes; c < region->writable + region->span; c++)
        if ((unsigned char)*c != SLACK_BYTE) return (long)(c - start);
    return 0;
}

/* The buffers of the candidate's arguments (monitor.h): the monitor stages them before each call and
 * collects them after it, so every harness gets the same input check and the same garbage in outputs. */
#define MAX_BUFFERS 16
typedef enum { BUFFER_INPUT, BUFFER_OUTPUT, BUFFER_INOUT } buffer_role;
typedef struct {
    buffer_role role;
    garbage_kind garbage;
    size_t bytes;
    const char *name;
    shared_region region;
    void *shared;
    void *before; /* input: the private copy; in-out: the initial value; output: unused */
    void *after;  /* output and in-out: the snapshot taken at return; input: unused */
} buffer;
static buffer buffers[MAX_BUFFERS];
static int buffer_count;

static void *register_buffer(buffer_role role, size_t bytes, const char *name, garbage_kind garbage, void **before,
                             void **after) {
    if (buffer_count == MAX_BUFFERS) infra("a harness asked for more than 16 buffers");
    size_t size = bytes ? bytes : 1;
    buffer *b = &buffers[buffer_count++];
    *b = (buffer){.role = role, .garbage = garbage, .bytes = bytes, .name = name};
    b->shared = shared_alloc(size, &b->region);
    if (before) *before = b->before = malloc(size);
    if (after) *after = b->after = malloc(size);
    if (!b->shared || (before && !b->before) || (after && !b->after)) return NULL;
    return b->shared;
}

void *input_buffer(size_t bytes, const char *name, void **copy) {
    return register_buffer(BUFFER_INPUT, bytes, name, GARBAGE_RANDOM, copy, NULL);
}

void *output_buffer(size_t bytes, const char *name, garbage_kind garbage, void **snapshot) {
    return register_buffer(BUFFER_OUTPUT, bytes, name, garbage, NULL, snapshot);
}

void *inout_buffer(size_t bytes, const char *name, void **initial, void **snapshot) {
    return register_buffer(BUFFER_INOUT, bytes, name, GARBAGE_RANDOM, initial, snapshot);
}

int verify_exact(size_t mismatches, double *max_error, double *bound) {
    *max_error = (double)mismatches;
    *bound = EXACT_BOUND;
    return mismatches == 0;
}

/* Before a call: inputs and in-out buffers from their private values, garbage in every output. */
static void stage_buffers(void) {
    for (int i = 0; i < buffer_count; i++) {
        buffer *b = &buffers[i];
        if (b->role != BUFFER_OUTPUT) memcpy(b->shared, b->before, b->bytes);
        else if (b->garbage == GARBAGE_NAN) memset(b->shared, 0xff, b->bytes);
        else random_bytes_fill(b->shared, b->bytes);
    }
}

/* After a call (the candidate's process stopped): snapshots of what it returned; an input that differs from
 * what we wrote is the candidate's doing, and ends the run. */
static void collect_buffers(long rep) {
    for (int i = 0; i < buffer_count; i++) {
        buffer *b = &buffers[i];
        long outside = slack_written(&b->region, b->shared, b->bytes);
        if (outside != 0)
            fail("wrong_answer",
                 "repetition %ld: the candidate wrote outside its argument %s (byte %ld from its start, which is %zu "
                 "bytes long)",
                 rep, b->name, outside, b->bytes);
        if (b->role != BUFFER_INPUT) {
            memcpy(b->after, b->shared, b->bytes);
        } else if (memcmp(b->shared, b->before, b->bytes) != 0) {
            size_t at = 0;
            while (((const unsigned char *)b->shared)[at] == ((const unsigned char *)b->before)[at]) at++;
            fail("wrong_answer", "repetition %ld: the candidate modified its input %s (byte %zu of %zu)", rep, b->name,
                 at, b->bytes);
        }
    }
}

static double now_s(void) {
    struct timespec t;
    clock_gettime(CLOCK_MONOTONIC, &t);
    return (double)t.tv_sec + (double)t.tv_nsec * 1e-9;
}

static double cpu_s(clockid_t clock) {
    struct timespec t;
    if (clock_gettime(clock, &t) != 0) return 0.0; /* the child is gone: the read of `done` says so */
    return (double)t.tv_sec + (double)t.tv_nsec * 1e-9;
}

static const char *signal_verdict(int sig) {
    /* Limits we set end a program with these; everything else is the candidate crashing. */
    return (sig == SIGXCPU || sig == SIGXFSZ || sig == SIGKILL) ? "resource_limit" : "crash";
}

#define CHILD_NO_LIBRARY 3 /* exit status of a child whose candidate library does not load */
#define CHILD_NO_ENTRY 4   /* ... or has no entry point */
/* ... or could not install its second filter (no new code) after loading. Charged, not our fault: the kernel
 * took the first filter, and a second as small fails only when the candidate's load-time code has used up the
 * process's filter budget (or forged this status, which a red-team constructor did when it was read as ours:
 * an uncharged infra_error on demand). */
#define CHILD_UNCONFINED 5
#define TOKEN_CONFINED 'c'   /* the child's first token: its seccomp filter is in place */
#define TOKEN_UNCONFINED 'u' /* ... or could not be installed (our fault): the first byte on the pipe, written
                              * before any candidate code exists in the process, so no candidate can forge it */


static void child_died(int status, const char *when) {
    child_pid = 0;
    if (WIFSIGNALED(status)) {
        int sig = WTERMSIG(status);
        fail(signal_verdict(sig), "candidate killed by signal %d (%s) %s", sig, strsignal(sig), when);
    }
    if (WEXITSTATUS(status) == CHILD_NO_ENTRY) fail("rejected", "the candidate defines no function %s", problem_entry);
    if (WEXITSTATUS(status) == CHILD_UNCONFINED)
        fail("crash", "the candidate's process could not be confined after its load-time code ran");
    if (WEXITSTATUS(status) == CHILD_NO_LIBRARY)
        fail("crash", "the candidate's library does not load (the loader's message is in the output)");
    fail("crash", "candidate process ended with exit status %d %s", WEXITSTATUS(status), when);
}

static void reap_child(const char *when) {
    int status;
    waitpid(child_pid, &status, 0);
    child_died(status, when);
}

/* Between calls the candidate's process is stopped, every thread of it: from "done" (before the output is
 * copied) until the next inputs are written (just before "go"). A thread of its own that outlives a call
 * (pthread_create is one libc symbol-table lookup away) could otherwise watch the shared buffers, see the
 * next inputs while we write them and compute the output before "go" (jacobi2d at n = 1024 measured 3.6x its
 * honest speed within the CPU budget between calls), or finish an output after "done" while we copy it.
 * SIGSTOP cannot be caught or ignored; waitpid(WUNTRACED) returns once every thread has stopped. */
static void freeze_child(const char *when) {
    int status;
    if (kill(child_pid, SIGSTOP) != 0) infra("kill(SIGSTOP) of the candidate's process failed");
    if (waitpid(child_pid, &status, WUNTRACED) != child_pid) infra("waitpid on the candidate's process failed");
    if (!WIFSTOPPED(status)) child_died(status, when);
}

static void thaw_child(void) {
    if (kill(child_pid, SIGCONT) != 0) infra("kill(SIGCONT) of the candidate's process failed");
}

#if defined(__x86_64__)
#define NATIVE_AUDIT_ARCH AUDIT_ARCH_X86_64
#define FOREIGN_ABI_BIT 0x40000000u /* x32 system call numbers: the sandbox's own filter kills them */
#elif defined(__aarch64__)
#define NATIVE_AUDIT_ARCH AUDIT_ARCH_AARCH64
#endif
#define CLONE_THREAD_FLAG 0x00010000u
/* The start of both filters: a system call of another ABI is refused, then the call's number is loaded. */
#define NATIVE_SYSCALL_NUMBER                                                                                  \
    BPF_STMT(BPF_LD | BPF_W | BPF_ABS, offsetof(struct seccomp_data, arch)),                                  \
        BPF_JUMP(BPF_JMP | BPF_JEQ | BPF_K, NATIVE_AUDIT_ARCH, 1, 0),                                         \
        BPF_STMT(BPF_RET | BPF_K, SECCOMP_RET_ERRNO | EPERM),                                                 \
        BPF_STMT(BPF_LD | BPF_W | BPF_ABS, offsetof(struct seccomp_data, nr))

/* The candidate's process may start threads but no process. The monitor reads the candidate's CPU
 * time from the child's process clock, which counts the child's threads only: a forked grandchild
 * (it shares the MAP_SHARED buffers) could follow the monitor's filling of the next inputs and compute
 * the output before "go", on CPU time nobody sees. The source policy cannot stop this (any allowed
 * libc function leads to libc's symbol table, and from there to fork), so the kernel does: fork, vfork
 * and clone without CLONE_THREAD fail with EPERM; clone3 (flags in memory) with ENOSYS, so glibc falls
 * back to clone. Returns 0 when the filter is in place. */
static int forbid_processes(void) {
#ifdef NATIVE_AUDIT_ARCH
    struct sock_filter code[] = {
        NATIVE_SYSCALL_NUMBER,
#ifdef FOREIGN_ABI_BIT
        BPF_JUMP(BPF_JMP | BPF_JSET | BPF_K, FOREIGN_ABI_BIT, 8, 0), /* -> refuse */
#else
        BPF_JUMP(BPF_JMP | BPF_JA, 0, 0, 0),
#endif
#ifdef __NR_fork
        BPF_JUMP(BPF_JMP | BPF_JEQ | BPF_K, __NR_fork, 7, 0), /* -> refuse */
#else
        BPF_JUMP(BPF_JMP | BPF_JA, 0, 0, 0),
#endif
#ifdef __NR_vfork
        BPF_JUMP(BPF_JMP | BPF_JEQ | BPF_K, __NR_vfork, 6, 0), /* -> refuse */
#else
        BPF_JUMP(BPF_JMP | BPF_JA, 0, 0, 0),
#endif
        BPF_JUMP(BPF_JMP | BPF_JEQ | BPF_K, __NR_clone3, 3, 0), /* -> no clone3 */
        BPF_JUMP(BPF_JMP | BPF_JEQ | BPF_K, __NR_clone, 0, 3), /* not clone -> allow */
        BPF_STMT(BPF_LD | BPF_W | BPF_ABS, offsetof(struct seccomp_data, args[0])), /* flags, low 32 bits */
        BPF_JUMP(BPF_JMP | BPF_JSET | BPF_K, CLONE_THREAD_FLAG, 1, 2),              /* a thread -> allow */
        BPF_STMT(BPF_RET | BPF_K, SECCOMP_RET_ERRNO | ENOSYS),
        BPF_STMT(BPF_RET | BPF_K, SECCOMP_RET_ALLOW),
        BPF_STMT(BPF_RET | BPF_K, SECCOMP_RET_ERRNO | EPERM),
    };
    struct sock_fprog program = {.len = (unsigned short)(sizeof code / sizeof code[0]), .filter = code};
    if (prctl(PR_SET_NO_NEW_PRIVS, 1, 0, 0, 0) != 0) return -1;
    return prctl(PR_SET_SECCOMP, SECCOMP_MODE_FILTER, &program);
#else
    return -1; /* an architecture this filter does not know: refuse to run candidates rather than trust them */
#endif
}

/* After the candidate is loaded, its process may map no new code: mmap, mprotect and pkey_mprotect with
 * PROT_EXEC and execve fail with EPERM. The source policy allows no library, but dlopen is in libc, and
 * libc's symbol table is one pointer walk from printf: a candidate loaded the node's OpenBLAS and was
 * measured at its speed (21.6 GFLOPS at dgemm n = 512 against 6.2 for its own loops). Nor can it write
 * machine code (a system call, say) into memory and run it. Returns 0 when the filter is in place. */
static int forbid_new_code(void) {
#ifdef NATIVE_AUDIT_ARCH
    struct sock_filter code[] = {
        NATIVE_SYSCALL_NUMBER,
        BPF_JUMP(BPF_JMP | BPF_JEQ | BPF_K, __NR_execve, 7, 0),   /* -> refuse */
        BPF_JUMP(BPF_JMP | BPF_JEQ | BPF_K, __NR_execveat, 6, 0), /* -> refuse */
        BPF_JUMP(BPF_JMP | BPF_JEQ | BPF_K, __NR_mmap, 3, 0),     /* -> check the protection */
        BPF_JUMP(BPF_JMP | BPF_JEQ | BPF_K, __NR_mprotect, 2, 0),
#ifdef __NR_pkey_mprotect
        BPF_JUMP(BPF_JMP | BPF_JEQ | BPF_K, __NR_pkey_mprotect, 1, 0),
#else
        BPF_JUMP(BPF_JMP | BPF_JA, 0, 0, 0),
#endif
        BPF_STMT(BPF_RET | BPF_K, SECCOMP_RET_ALLOW),
        BPF_STMT(BPF_LD | BPF_W | BPF_ABS, offsetof(struct seccomp_data, args[2])), /* prot */
        BPF_JUMP(BPF_JMP | BPF_JSET | BPF_K, PROT_EXEC, 0, 1),
        BPF_STMT(BPF_RET | BPF_K, SECCOMP_RET_ERRNO | EPERM),
        BPF_STMT(BPF_RET | BPF_K, SECCOMP_RET_ALLOW),
    };
    struct sock_fprog program = {.len = (unsigned short)(sizeof code / sizeof code[0]), .filter = code};
    return prctl(PR_SET_SECCOMP, SECCOMP_MODE_FILTER, &program);
#else
    return -1;
#endif
}

/* The candidate's process. Before the first instruction of candidate code runs (its ifunc resolvers
 * and constructors run inside dlopen), every descriptor but the two pipes and stdout/stderr is closed:
 * the result channel is gone from this process. Our arguments, environment and options here are a
 * copy: changing them changes nothing in the monitor. */
static void child_main(problem *p, const char *library, int preload_openmp, int go_fd, int done_fd) {
    long open_max = sysconf(_SC_OPEN_MAX);
    for (int fd = 3; fd < (open_max > 0 && open_max < 65536 ? open_max : 65536); fd++)
        if (fd != go_fd && fd != done_fd) close(fd);
    unsetenv("HPCRL_CHANNEL_FD");
    char confined = forbid_processes() == 0 ? TOKEN_CONFINED : TOKEN_UNCONFINED;
    if (write(done_fd, &confined, 1) != 1 || confined != TOKEN_CONFINED) _exit(0);
    /* The OpenMP runtime reads OMP_* in its constructor. dlopen relocates a library, running its ifunc
     * resolvers, before the constructors of the libraries it needs: loaded with the candidate, libgomp
     * would read an environment the candidate's resolver had already rewritten (a thread limit above
     * the allocation). Loaded first, it has read ours. Absent (no OpenMP on this system): nothing to do.
     * Not for the bencher's own library kernels (preload_openmp=0): libgomp binds this thread to the first
     * of OMP_PLACES as it loads, and a pthreads library (OpenBLAS) started after that runs all its threads
     * on that one CPU (2-thread OpenBLAS measured one core's 43 GFLOPS against 80 standalone). */
    if (preload_openmp) dlopen("libgomp.so.1", RTLD_NOW | RTLD_GLOBAL);
    void *handle = dlopen(library, RTLD_NOW | RTLD_LOCAL);
    if (!handle) {
        fprintf(stderr, "bench: %s\n", dlerror());
        _exit(CHILD_NO_LIBRARY);
    }
    void *symbol = dlsym(handle, problem_entry);
    if (!symbol) _exit(CHILD_NO_ENTRY);
    if (forbid_new_code() != 0) _exit(CHILD_UNCONFINED);
    entry_point entry;
    memcpy(&entry, &symbol, sizeof entry); /* POSIX: a data pointer from dlsym may be a function pointer */
    char token = 'r';
    if (write(done_fd, &token, 1) != 1) _exit(0); /* loaded: ready for the first call */
    while (read(go_fd, &token, 1) == 1) {
        problem_call(p, entry);
        if (write(done_fd, &token, 1) != 1) _exit(0);
    }
    _exit(0);
}

/* Wait for the child's token on `fd` until `started + timeout_s` and return it; a timeout or a dead child
 * ends the run (`what` names the wait in a timeout's detail, `when` in a death's). */
static char await_token(int fd, double started, double timeout_s, const char *what, const char *when) {
    struct pollfd waiter = {.fd = fd, .events = POLLIN};
    int ready;
    do {
        double left = timeout_s - (now_s() - started);
        ready = left > 0 ? poll(&waiter, 1, (int)(left * 1000) + 1) : 0;
    } while (ready < 0 && errno == EINTR);
    if (ready == 0) fail("timeout", "%s took longer than %.3g s", what, timeout_s);
    char token;
    if (read(fd, &token, 1) != 1) reap_child(when);
    return token;
}

/* Write each call's inputs from the CPU the candidate's main thread ran on last, so they arrive in
 * the cache of the core that reads them first (as in a program that produces its own matrices),
 * not from another core's cache on some calls and not others. The candidate is not pinned: libraries
 * that start threads without OpenMP places (OpenBLAS) would inherit a one-CPU mask. */
static int last_cpu_of(pid_t pid) {
    char path[64], text[1024];
    snprintf(path, sizeof path, "/proc/%d/stat", (int)pid);
    FILE *f = fopen(path, "r");
    if (!f) return -1;
    size_t got = fread(text, 1, sizeof text - 1, f);
    fclose(f);
    text[got] = '\0';
    char *field = strrchr(text, ')'); /* the command name may contain spaces: count after it */
    if (!field) return -1;
    for (int i = 2; i < 39 && field; i++) field = strchr(field + 1, ' '); /* field 39: processor */
    return field ? atoi(field + 1) : -1;
}

static void follow_cpu(int cpu) {
    static int current = -1;
    if (cpu < 0 || cpu == current || cpu >= CPU_SETSIZE) return;
    cpu_set_t one;
    CPU_ZERO(&one);
    CPU_SET(cpu, &one);
    if (sched_setaffinity(0, sizeof one, &one) == 0) current = cpu;
}

typedef struct {
    const char *candidate; /* the candidate's shared object: loaded by the child only */
    long n, full_check_max_n, warmup, min_reps, max_reps, preload_openmp;
    double tolerance, max_seconds, cv_target, call_timeout_s;
} options;

static void parse_args(int argc, char **argv, options *o) {
    *o = (options){.candidate = NULL, .n = 0, .full_check_max_n = 256, .warmup = 1, .min_reps = 3, .max_reps = 30, .tolerance = 1.0,
                   .max_seconds = 1.0, .cv_target = 0.02, .call_timeout_s = 10.0, .preload_openmp = 1};
    for (int i = 1; i < argc; i++) {
        char *eq = strchr(argv[i], '=');
        if (!eq) infra("arguments are key=value");
        *eq = '\0';
        const char *key = argv[i], *value = eq + 1;
        if (!strcmp(key, "candidate")) o->candidate = value;
        else if (!strcmp(key, "n")) o->n = atol(value);
        else if (!strcmp(key, "full_check_max_n")) o->full_check_max_n = atol(value);
        else if (!strcmp(key, "warmup")) o->warmup = atol(value);
        else if (!strcmp(key, "min_reps")) o->min_reps = atol(value);
        else if (!strcmp(key, "max_reps")) o->max_reps = atol(value);
        else if (!strcmp(key, "tolerance")) o->tolerance = atof(value);
        else if (!strcmp(key, "max_seconds")) o->max_seconds = atof(value);
        else if (!strcmp(key, "cv_target")) o->cv_target = atof(value);
        else if (!strcmp(key, "call_timeout_s")) o->call_timeout_s = atof(value);
        else if (!strcmp(key, "preload_openmp")) o->preload_openmp = atol(value);
        else infra("unknown argument");
    }
    if (!o->candidate || o->n < 1 || o->warmup < 0 || o->min_reps < 1 || o->max_reps < o->min_reps || o->max_reps > MAX_REPS_LIMIT ||
        o->call_timeout_s <= 0 || o->tolerance <= 0)
        infra("arguments out of range");
}

/* Coefficient of variation (std / mean) of the timed repetitions so far. */
static double cv_of(const double *t, long count) {
    double mean = 0.0, var = 0.0;
    for (long i = 0; i < count; i++) mean += t[i];
    mean /= (double)count;
    for (long i = 0; i < count; i++) var += (t[i] - mean) * (t[i] - mean);
    return count > 1 && mean > 0 ? sqrt(var / (double)(count - 1)) / mean : INFINITY;
}

int main(int argc, char **argv) {
    const char *fd_text = getenv("HPCRL_CHANNEL_FD");
    channel = fd_text ? fdopen(atoi(fd_text), "w") : NULL;
    if (!channel) {
        fprintf(stderr, "bench: HPCRL_CHANNEL_FD must name the result channel\n");
        return 2;
    }
    prctl(PR_SET_DUMPABLE, 0); /* see the header comment: no ptrace, no /proc/PID/fd from the child */
    options o;
    parse_args(argc, argv, &o);
    problem_params params = {.n = o.n, .full_check_max_n = o.full_check_max_n, .tolerance = o.tolerance};
    problem *p = problem_setup(&params);
    if (!p) fail("resource_limit", "inputs for n=%ld do not fit in the memory limit", o.n);
    double *timed = malloc(sizeof(double) * (size_t)o.max_reps);
    if (!timed) infra("out of memory for timings");
    int go[2], done[2];
    if (pipe(go) || pipe(done)) infra("pipe failed");
    fflush(NULL);
    child_pid = fork();
    if (child_pid < 0) infra("fork failed");
    if (child_pid == 0) {
        close(go[1]);
        close(done[0]);
        child_main(p, o.candidate, (int)o.preload_openmp, go[0], done[1]);
    }
    close(go[0]);
    close(done[1]);
    signal(SIGPIPE, SIG_IGN);
    clockid_t child_clock;
    if (clock_getcpuclockid(child_pid, &child_clock) != 0) infra("clock_getcpuclockid failed");
    if (await_token(done[0], now_s(), o.call_timeout_s, "confining the candidate's process", "before loading") != TOKEN_CONFINED)
        infra("the candidate's process could not install its seccomp filter (no process may start from it)");
    await_token(done[0], now_s(), o.call_timeout_s, "loading the candidate", "while loading");
    freeze_child("after loading");
    /* CPU the candidate uses from here to the first call counts as work outside the calls. */
    double cpu_after_previous = cpu_s(child_clock);

    long timed_count = 0;
    double timed_total = 0.0;
    for (long rep = 0;; rep++) {
        problem_fill(p); /* fresh keys from getrandom: nothing the child saw predicts these */
        stage_buffers();
        double cpu_before = cpu_s(child_clock);
        double outside = cpu_before > cpu_after_previous ? cpu_before - cpu_after_previous : 0.0;
        char token = 'g';
        /* The clock starts before the candidate's threads can run again: woken, one of them may preempt
         * us on this CPU (we follow its main thread), and what it does then is part of the call. */
        double t0 = now_s();
        thaw_child();
        if (write(go[1], &token, 1) != 1) reap_child("before a call");
        await_token(done[0], t0, o.call_timeout_s, "a call", "during a call");
        double t1 = now_s();
        cpu_after_previous = cpu_s(child_clock); /* CPU used until the freeze counts as outside the calls */
        freeze_child("after a call");
        follow_cpu(last_cpu_of(child_pid));
        collect_buffers(rep);
        double max_error, bound;
        int correct = problem_verify(p, &max_error, &bound); /* its check vectors are drawn now */
        int warm = rep < o.warmup;
        emit("rep %ld %s %.9e %.3e %.3e %.6e", rep, warm ? "warm" : "timed", t1 - t0, max_error, bound, outside);
        if (!correct)
            fail("wrong_answer", "repetition %ld: max error %.3g exceeds the bound %.3g (NaN/Inf count as wrong)",
                 rep, max_error, bound);
        if (warm) continue;
        timed[timed_count++] = t1 - t0;
        timed_total += t1 - t0;
        if (timed_count >= o.min_reps &&
            (timed_count >= o.max_reps || timed_total >= o.max_seconds || cv_of(timed, timed_count) <= o.cv_target))
            break;
    }
    thaw_child();
    close(go[1]); /* the child's read sees EOF and it exits */
    int status;
    waitpid(child_pid, &status, 0);
    child_pid = 0;
    emit("done %ld", timed_count);
    return 0;
}
