/* rank: 4
 * why: cache blocking plus a 4x8 register block in plain C: 32 accumulators that gcc keeps
 *      in ymm registers, so each element of A feeds 8 multiply-adds and each row segment of
 *      B feeds 4. The KC x 8 slice of B is first copied to a contiguous buffer, because
 *      reading it in place strides by n and (at n = 512) thrashes one L1 set.
 */
#include <string.h>

enum { MR = 4, NR = 8, KC = 128 };

static int min_int(int a, int b)
{
    return a < b ? a : b;
}

/* gcc's loop vectoriser would vectorise the k loop below (as a reduction, with shuffles)
 * instead of the 4x8 block; with it off, straight-line vectorisation turns each row of the
 * block into two ymm FMAs, which is 5x faster here. */
#pragma GCC push_options
#pragma GCC optimize("no-tree-loop-vectorize")
/* C[0:4, 0:8] += A[0:4, 0:kc] * Bs[0:kc, 0:8]; A and C have rows of n, Bs rows of 8. */
static void block_4x8(int n, int kc, const double *restrict A, const double *restrict Bs,
                      double *restrict C)
{
    double c[MR][NR];
    for (int r = 0; r < MR; r++)
        for (int q = 0; q < NR; q++)
            c[r][q] = C[(size_t)r * n + q];
    for (int k = 0; k < kc; k++) {
        const double *b = Bs + (size_t)k * NR;
        for (int r = 0; r < MR; r++) {
            const double a = A[(size_t)r * n + k];
            for (int q = 0; q < NR; q++)
                c[r][q] += a * b[q];
        }
    }
    for (int r = 0; r < MR; r++)
        for (int q = 0; q < NR; q++)
            C[(size_t)r * n + q] = c[r][q];
}

#pragma GCC pop_options

/* The same update for up to 4 rows and up to 8 columns (the edges of C). */
static void block_edge(int n, int rows, int cols, int kc, const double *A, const double *Bs,
                       double *C)
{
    for (int r = 0; r < rows; r++)
        for (int k = 0; k < kc; k++) {
            const double a = A[(size_t)r * n + k];
            for (int q = 0; q < cols; q++)
                C[(size_t)r * n + q] += a * Bs[(size_t)k * NR + q];
        }
}

void dgemm(int n, const double *A, const double *B, double *C)
{
    double slice[KC * NR];
    memset(C, 0, (size_t)n * n * sizeof(double));
    for (int k0 = 0; k0 < n; k0 += KC) {
        const int kc = min_int(KC, n - k0);
        for (int j = 0; j < n; j += NR) {
            const int cols = min_int(NR, n - j);
            for (int k = 0; k < kc; k++)
                memcpy(slice + (size_t)k * NR, B + (size_t)(k0 + k) * n + j,
                       (size_t)cols * sizeof(double));
            int i = 0;
            if (cols == NR)
                for (; i + MR <= n; i += MR)
                    block_4x8(n, kc, A + (size_t)i * n + k0, slice, C + (size_t)i * n + j);
            for (; i < n; i += MR)
                block_edge(n, min_int(MR, n - i), cols, kc, A + (size_t)i * n + k0, slice,
                           C + (size_t)i * n + j);
        }
    }
}
