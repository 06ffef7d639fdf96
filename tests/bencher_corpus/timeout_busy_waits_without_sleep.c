/* expect: timeout
 * why: sleep is rejected, so it burns ~2^42 iterations of a dependent volatile loop
 *      (hours) instead; only a wall-clock limit stops it.
 */
void dgemm(int n, const double *A, const double *B, double *C)
{
    volatile double x = 1.0;
    for (long t = 0; t < (1L << 42); t++)
        x = x * 1.0000000001;
    for (int i = 0; i < n; i++)
        for (int j = 0; j < n; j++) {
            double s = 0.0;
            for (int k = 0; k < n; k++)
                s += A[i * n + k] * B[k * n + j];
            C[i * n + j] = s + 0.0 * x;
        }
}
