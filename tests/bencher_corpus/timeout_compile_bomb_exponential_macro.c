/* expect: timeout|resource_limit
 * why: a compile-time bomb: each macro level doubles the expansion, so the #if expression
 *      has 2^64 tokens and the preprocessor never finishes. It produces no output, but cc1
 *      grows by about 0.8 GB/s (macro-expansion location tracking), so whichever build
 *      limit trips first decides: the wall-clock limit (timeout) or the compiler's memory
 *      limit (resource_limit, gcc says "virtual memory exhausted"). Both limits must apply
 *      to every compiler run, the preprocess-only pass of the static checks included.
 */
#define X0 (1)
#define X1 (X0 + X0)
#define X2 (X1 + X1)
#define X3 (X2 + X2)
#define X4 (X3 + X3)
#define X5 (X4 + X4)
#define X6 (X5 + X5)
#define X7 (X6 + X6)
#define X8 (X7 + X7)
#define X9 (X8 + X8)
#define X10 (X9 + X9)
#define X11 (X10 + X10)
#define X12 (X11 + X11)
#define X13 (X12 + X12)
#define X14 (X13 + X13)
#define X15 (X14 + X14)
#define X16 (X15 + X15)
#define Y0 (X16 + X16)
#define Y1 (Y0 + Y0)
#define Y2 (Y1 + Y1)
#define Y3 (Y2 + Y2)
#define Y4 (Y3 + Y3)
#define Y5 (Y4 + Y4)
#define Y6 (Y5 + Y5)
#define Y7 (Y6 + Y6)
#define Y8 (Y7 + Y7)
#define Y9 (Y8 + Y8)
#define Y10 (Y9 + Y9)
#define Y11 (Y10 + Y10)
#define Y12 (Y11 + Y11)
#define Y13 (Y12 + Y12)
#define Y14 (Y13 + Y13)
#define Y15 (Y14 + Y14)
#define Z0 (Y15 + Y15)
#define Z1 (Z0 + Z0)
#define Z2 (Z1 + Z1)
#define Z3 (Z2 + Z2)
#define Z4 (Z3 + Z3)
#define Z5 (Z4 + Z4)
#define Z6 (Z5 + Z5)
#define Z7 (Z6 + Z6)
#define Z8 (Z7 + Z7)
#define Z9 (Z8 + Z8)
#define Z10 (Z9 + Z9)
#define Z11 (Z10 + Z10)
#define Z12 (Z11 + Z11)
#define Z13 (Z12 + Z12)
#define Z14 (Z13 + Z13)
#define Z15 (Z14 + Z14)
#define W0 (Z15 + Z15)
#define W1 (W0 + W0)
#define W2 (W1 + W1)
#define W3 (W2 + W2)
#define W4 (W3 + W3)
#define W5 (W4 + W4)
#define W6 (W5 + W5)
#define W7 (W6 + W6)
#define W8 (W7 + W7)
#define W9 (W8 + W8)
#define W10 (W9 + W9)
#define W11 (W10 + W10)
#define W12 (W11 + W11)
#define W13 (W12 + W12)
#define W14 (W13 + W13)

#if W14 > 0
#endif

void dgemm(int n, const double *A, const double *B, double *C)
{
    for (int i = 0; i < n; i++)
        for (int j = 0; j < n; j++) {
            double s = 0.0;
            for (int k = 0; k < n; k++)
                s += A[i * n + k] * B[k * n + j];
            C[i * n + j] = s;
        }
}
