/* expect: rejected
 * why: plain inline asm (a harmless nop); any asm is rejected because it reaches
 *      syscalls and instructions that no symbol check can see.
 * detail: asm
 */
void dgemm(int n, const double *A, const double *B, double *C)
{
    asm volatile("nop");
    for (int i = 0; i < n; i++)
        for (int j = 0; j < n; j++) {
            double s = 0.0;
            for (int k = 0; k < n; k++)
                s += A[i * n + k] * B[k * n + j];
            C[i * n + j] = s;
        }
}
