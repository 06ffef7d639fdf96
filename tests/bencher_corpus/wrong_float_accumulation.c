/* expect: wrong_answer
 * why: accumulates in single precision (twice the SIMD width, half the bandwidth): the
 *      error is ~1e-6 relative, far above what double precision gives.
 */
void dgemm(int n, const double *A, const double *B, double *C)
{
    for (int i = 0; i < n; i++)
        for (int j = 0; j < n; j++) {
            float s = 0.0f;
            for (int k = 0; k < n; k++)
                s += (float)A[i * n + k] * (float)B[k * n + j];
            C[i * n + j] = s;
        }
}
