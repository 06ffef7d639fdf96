/* The shape of our harness: fork a child, let it compute with OpenMP threads, get the answer back over a pipe.
 * Prints `ok threads=N` and exits 0 when the child's sum is right. */
#include <omp.h>
#include <stdio.h>
#include <sys/wait.h>
#include <unistd.h>

static double parallel_sum(long n) {
    double sum = 0.0;
#pragma omp parallel for reduction(+ : sum)
    for (long i = 1; i <= n; i++) sum += (double)i;
    return sum;
}

int main(void) {
    const long n = 1000000;
    int pipe_fds[2];
    double answer = 0.0;
    int status = 0;
    pid_t child;
    if (pipe(pipe_fds) != 0) return 1;
    child = fork();
    if (child < 0) return 1;
    if (child == 0) {
        double sum = parallel_sum(n);
        close(pipe_fds[0]);
        _exit(write(pipe_fds[1], &sum, sizeof sum) == sizeof sum ? 0 : 1);
    }
    close(pipe_fds[1]);
    if (read(pipe_fds[0], &answer, sizeof answer) != sizeof answer) return 1;
    waitpid(child, &status, 0);
    if (!WIFEXITED(status) || WEXITSTATUS(status) != 0) return 1;
    if (answer != (double)n * (n + 1) / 2 || parallel_sum(n) != answer) return 1;
    printf("ok threads=%d\n", omp_get_max_threads());
    return 0;
}
