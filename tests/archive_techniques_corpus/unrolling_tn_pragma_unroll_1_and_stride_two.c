/* techniques: none
 * near miss for: unrolling
 * why: near misses for unrolling: `#pragma GCC unroll 1` forbids unrolling, and a loop with
 *      step 2 that touches only element j (even columns first, then odd ones) repeats
 *      nothing per iteration.
 */
void dgemm(int n, const double *A, const double *B, double *C)
{
    for (int parity = 0; parity < 2; parity++)
        for (int i = 0; i < n; i++)
            for (int j = parity; j < n; j += 2) {
                double sum = 0.0;
                #pragma GCC unroll 1
                for (int k = 0; k < n; k++)
                    sum += A[i * n + k] * B[k * n + j];
                C[i * n + j] = sum;
            }
}
