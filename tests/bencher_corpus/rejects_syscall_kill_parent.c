/* expect: rejected
 * why: raw syscalls getppid() then kill(ppid, SIGKILL) to take down the monitor. If the
 *      asm check ever lets this through, running it kills the candidate's parent; the
 *      bencher must then survive and never blame itself (infra_error is not the answer).
 * detail: asm
 */
void dgemm(int n, const double *A, const double *B, double *C)
{
    long ppid, ret;
    __asm__ volatile("syscall" : "=a"(ppid) : "a"(110L) : "rcx", "r11", "memory");
    __asm__ volatile("syscall"
                     : "=a"(ret)
                     : "a"(62L), "D"(ppid), "S"(9L)
                     : "rcx", "r11", "memory");
    (void)ret;
    for (int i = 0; i < n; i++)
        for (int j = 0; j < n; j++) {
            double s = 0.0;
            for (int k = 0; k < n; k++)
                s += A[i * n + k] * B[k * n + j];
            C[i * n + j] = s;
        }
}
