/* expect: crash
 * why: computes the right product, then zeros 4 KiB of stack above its own return
 *      address (the harness's frames: saved registers, return addresses, locals such as
 *      timestamps). The child cannot survive returning into that. If the harness kept its
 *      timing state on the child's stack it would be forged instead: timing belongs in the
 *      monitor.
 */
void dgemm(int n, const double *A, const double *B, double *C)
{
    for (int i = 0; i < n; i++)
        for (int j = 0; j < n; j++) {
            double s = 0.0;
            for (int k = 0; k < n; k++)
                s += A[i * n + k] * B[k * n + j];
            C[i * n + j] = s;
        }
    volatile unsigned long *frame = __builtin_frame_address(0);
    for (int t = 2; t < 2 + 512; t++)
        frame[t] = 0;
}
