/* rank: 3
 * why: cache blocking: i-k-j order inside TILE_I x TILE_K x TILE_J tiles, so a TILE_K x
 *      TILE_J tile of B (256 KiB) stays in L2 while TILE_I rows of C reuse it; four rows of
 *      the tile are folded into each pass over a row of C, so C is loaded and stored a
 *      quarter as often as in plain i-k-j. No register block: C still streams through L1.
 */
#include <string.h>

enum { TILE_I = 64, TILE_K = 128, TILE_J = 256 };

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
                    const double *a = A + (size_t)i * n;
                    int k = k0;
                    for (; k + 4 <= k1; k += 4) {
                        const double a0 = a[k], a1 = a[k + 1], a2 = a[k + 2], a3 = a[k + 3];
                        const double *restrict b0 = B + (size_t)k * n;
                        const double *restrict b1 = b0 + n;
                        const double *restrict b2 = b1 + n;
                        const double *restrict b3 = b2 + n;
                        for (int j = j0; j < j1; j++)
                            c[j] += a0 * b0[j] + a1 * b1[j] + a2 * b2[j] + a3 * b3[j];
                    }
                    for (; k < k1; k++) {
                        const double a0 = a[k];
                        const double *restrict b0 = B + (size_t)k * n;
                        for (int j = j0; j < j1; j++)
                            c[j] += a0 * b0[j];
                    }
                }
            }
        }
    }
}
