/* techniques: simd_intrinsics, loop_order
 * why: GCC vector extensions instead of intrinsics: a typedef with vector_size(32) and
 *      plain `*`/`+=` on four doubles at a time, in i-k-j order. (n a multiple of 4.)
 */
#include <string.h>

typedef double v4d __attribute__((vector_size(32), aligned(8), may_alias));

void dgemm(int n, const double *A, const double *B, double *C)
{
    memset(C, 0, sizeof(double) * (size_t)n * (size_t)n);
    for (int i = 0; i < n; i++)
        for (int k = 0; k < n; k++) {
            const double a = A[i * n + k];
            for (int j = 0; j < n; j += 4)
                *(v4d *)&C[i * n + j] += a * *(const v4d *)&B[k * n + j];
        }
}
