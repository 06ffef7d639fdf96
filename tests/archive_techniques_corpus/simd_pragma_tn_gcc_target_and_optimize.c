/* techniques: loop_order
 * near miss for: simd_pragma
 * why: near miss for simd_pragma: `#pragma GCC target("avx2,fma")` and
 *      `#pragma GCC optimize("O3")` change code generation but are not loop pragmas; the
 *      kernel is plain i-k-j.
 */
#include <string.h>

#pragma GCC push_options
#pragma GCC target("avx2,fma")
#pragma GCC optimize("O3")
void dgemm(int n, const double *A, const double *B, double *C)
{
    memset(C, 0, sizeof(double) * (size_t)n * (size_t)n);
    for (int i = 0; i < n; i++)
        for (int k = 0; k < n; k++)
            for (int j = 0; j < n; j++)
                C[i * n + j] += A[i * n + k] * B[k * n + j];
}
#pragma GCC pop_options
