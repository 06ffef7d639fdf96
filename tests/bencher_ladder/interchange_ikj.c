/* rank: 2
 * why: loop interchange to i-k-j: the inner loop streams one row of B and one row of C
 *      with unit stride, so gcc vectorises it; no blocking, so B is re-read from memory
 *      for every row of C once it outgrows the cache.
 */
#include <string.h>

void dgemm(int n, const double *A, const double *B, double *C)
{
    for (int i = 0; i < n; i++) {
        double *restrict c = C + (size_t)i * n;
        memset(c, 0, (size_t)n * sizeof(double));
        for (int k = 0; k < n; k++) {
            const double a = A[(size_t)i * n + k];
            const double *restrict b = B + (size_t)k * n;
            for (int j = 0; j < n; j++)
                c[j] += a * b[j];
        }
    }
}
