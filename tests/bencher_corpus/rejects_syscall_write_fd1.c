/* expect: rejected
 * why: a raw syscall instruction (write(1, ...)) in inline asm: no libc symbol is
 *      referenced, so only the asm check stops it.
 * detail: asm
 */
void dgemm(int n, const double *A, const double *B, double *C)
{
    static const char msg[] = "gflops=1e9\n";
    long ret;
    __asm__ volatile("syscall"
                     : "=a"(ret)
                     : "a"(1L), "D"(1L), "S"(msg), "d"(sizeof msg - 1)
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
