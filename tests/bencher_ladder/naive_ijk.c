/* rank: 1
 * why: the textbook i-j-k triple loop; the inner loop walks B down a column (stride n),
 *      so every multiply-add waits on a cache miss once B outgrows the cache.
 */
#include <stddef.h>

void dgemm(int n, const double *A, const double *B, double *C)
{
    for (int i = 0; i < n; i++)
        for (int j = 0; j < n; j++) {
            double s = 0.0;
            for (int k = 0; k < n; k++)
                s += A[(size_t)i * n + k] * B[(size_t)k * n + j];
            C[(size_t)i * n + j] = s;
        }
}
