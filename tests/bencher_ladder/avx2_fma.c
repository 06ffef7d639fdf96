/* rank: 5
 * why: the BLIS/GotoBLAS structure with AVX2 intrinsics: B packed into KC x 8 panels and A
 *      into 6 x KC panels (zero-padded at the edges), and a 6x8 micro-kernel that keeps 12
 *      ymm accumulators and issues two _mm256_fmadd_pd per broadcast of A.
 */
#include <immintrin.h>
#include <stdlib.h>
#include <string.h>

enum { MR = 6, NR = 8, KC = 256, MC = 96, NC = 1024 };

static double *packed_a, *packed_b;

static int min_int(int a, int b)
{
    return a < b ? a : b;
}

/* Bp[panel][k][0:8] = B[k0 + k][j0 + panel * 8 + 0:8], zero past column n. */
static void pack_b(int n, int kc, int nc, const double *B, double *Bp)
{
    for (int jp = 0; jp < nc; jp += NR) {
        const int cols = min_int(NR, nc - jp);
        for (int k = 0; k < kc; k++) {
            const double *b = B + (size_t)k * n + jp;
            int q = 0;
            for (; q < cols; q++)
                Bp[q] = b[q];
            for (; q < NR; q++)
                Bp[q] = 0.0;
            Bp += NR;
        }
    }
}

/* Ap[panel][k][0:6] = A[i0 + panel * 6 + 0:6][k0 + k], zero past row n. */
static void pack_a(int n, int mc, int kc, const double *A, double *Ap)
{
    for (int ip = 0; ip < mc; ip += MR) {
        const int rows = min_int(MR, mc - ip);
        for (int k = 0; k < kc; k++) {
            int r = 0;
            for (; r < rows; r++)
                Ap[r] = A[(size_t)(ip + r) * n + k];
            for (; r < MR; r++)
                Ap[r] = 0.0;
            Ap += MR;
        }
    }
}

/* C[0:rows, 0:cols] (+)= Ap * Bp over kc; `first` overwrites instead of adding. */
static void kernel_6x8(int n, int kc, const double *restrict Ap, const double *restrict Bp,
                       double *restrict C, int rows, int cols, int first)
{
    __m256d c00 = _mm256_setzero_pd(), c01 = _mm256_setzero_pd();
    __m256d c10 = _mm256_setzero_pd(), c11 = _mm256_setzero_pd();
    __m256d c20 = _mm256_setzero_pd(), c21 = _mm256_setzero_pd();
    __m256d c30 = _mm256_setzero_pd(), c31 = _mm256_setzero_pd();
    __m256d c40 = _mm256_setzero_pd(), c41 = _mm256_setzero_pd();
    __m256d c50 = _mm256_setzero_pd(), c51 = _mm256_setzero_pd();
    for (int k = 0; k < kc; k++) {
        const __m256d b0 = _mm256_load_pd(Bp);
        const __m256d b1 = _mm256_load_pd(Bp + 4);
        __m256d a;
        a = _mm256_broadcast_sd(Ap + 0);
        c00 = _mm256_fmadd_pd(a, b0, c00);
        c01 = _mm256_fmadd_pd(a, b1, c01);
        a = _mm256_broadcast_sd(Ap + 1);
        c10 = _mm256_fmadd_pd(a, b0, c10);
        c11 = _mm256_fmadd_pd(a, b1, c11);
        a = _mm256_broadcast_sd(Ap + 2);
        c20 = _mm256_fmadd_pd(a, b0, c20);
        c21 = _mm256_fmadd_pd(a, b1, c21);
        a = _mm256_broadcast_sd(Ap + 3);
        c30 = _mm256_fmadd_pd(a, b0, c30);
        c31 = _mm256_fmadd_pd(a, b1, c31);
        a = _mm256_broadcast_sd(Ap + 4);
        c40 = _mm256_fmadd_pd(a, b0, c40);
        c41 = _mm256_fmadd_pd(a, b1, c41);
        a = _mm256_broadcast_sd(Ap + 5);
        c50 = _mm256_fmadd_pd(a, b0, c50);
        c51 = _mm256_fmadd_pd(a, b1, c51);
        Ap += MR;
        Bp += NR;
    }
    double tile[MR][NR] __attribute__((aligned(32)));
    _mm256_store_pd(tile[0], c00); _mm256_store_pd(tile[0] + 4, c01);
    _mm256_store_pd(tile[1], c10); _mm256_store_pd(tile[1] + 4, c11);
    _mm256_store_pd(tile[2], c20); _mm256_store_pd(tile[2] + 4, c21);
    _mm256_store_pd(tile[3], c30); _mm256_store_pd(tile[3] + 4, c31);
    _mm256_store_pd(tile[4], c40); _mm256_store_pd(tile[4] + 4, c41);
    _mm256_store_pd(tile[5], c50); _mm256_store_pd(tile[5] + 4, c51);
    for (int r = 0; r < rows; r++) {
        double *c = C + (size_t)r * n;
        if (first)
            for (int q = 0; q < cols; q++)
                c[q] = tile[r][q];
        else
            for (int q = 0; q < cols; q++)
                c[q] += tile[r][q];
    }
}

static int ensure_buffers(void)
{
    if (!packed_a)
        packed_a = aligned_alloc(64, sizeof(double) * MC * KC);
    if (!packed_b)
        packed_b = aligned_alloc(64, sizeof(double) * KC * (NC + NR));
    return packed_a && packed_b;
}

void dgemm(int n, const double *A, const double *B, double *C)
{
    if (!ensure_buffers())
        __builtin_trap();
    for (int j0 = 0; j0 < n; j0 += NC) {
        const int nc = min_int(NC, n - j0);
        for (int k0 = 0; k0 < n; k0 += KC) {
            const int kc = min_int(KC, n - k0);
            pack_b(n, kc, nc, B + (size_t)k0 * n + j0, packed_b);
            for (int i0 = 0; i0 < n; i0 += MC) {
                const int mc = min_int(MC, n - i0);
                pack_a(n, mc, kc, A + (size_t)i0 * n + k0, packed_a);
                for (int jr = 0; jr < nc; jr += NR)
                    for (int ir = 0; ir < mc; ir += MR)
                        kernel_6x8(n, kc, packed_a + (size_t)ir * kc, packed_b + (size_t)jr * kc,
                                   C + (size_t)(i0 + ir) * n + j0 + jr, min_int(MR, mc - ir),
                                   min_int(NR, nc - jr), k0 == 0);
            }
        }
    }
}
