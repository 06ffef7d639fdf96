/* rank: 3
 * why: cache blocking: i-k-j order inside TILE_I x TILE_K x TILE_J tiles, so a tile of B
 *      (TILE_K x TILE_J, 128 KiB) stays in L2 while it is reused for TILE_I rows of C.
 */
#include <string.h>

enum { TILE_I = 64, TILE_K = 128, TILE_J = 128 };

static int min_int(int a, int b)
{
    return a < b ? a : b;
}

void dgemm(int n, const double *A, const double *B, double *C)
{
    memset(C, 0, (size_t)n * n * sizeof(double));
    for (int i0 = 0; i0 < n; i0 += TILE_I) {
        const int i1 = min_int(i0 + TILE_I, n);
        for (int k0 = 0; k0 < n; k0 += TILE_K) {
            const int k1 = min_int(k0 + TILE_K, n);
            for (int j0 = 0; j0 < n; j0 += TILE_J) {
                const int j1 = min_int(j0 + TILE_J, n);
                for (int i = i0; i < i1; i++) {
                    double *restrict c = C + (size_t)i * n;
                    for (int k = k0; k < k1; k++) {
                        const double a = A[(size_t)i * n + k];
                        const double *restrict b = B + (size_t)k * n;
                        for (int j = j0; j < j1; j++)
                            c[j] += a * b[j];
                    }
                }
            }
        }
    }
}
