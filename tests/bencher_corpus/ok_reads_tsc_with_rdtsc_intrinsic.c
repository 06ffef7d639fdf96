/* expect: ok
 * why: reads the time-stamp counter with the __rdtsc() intrinsic from an allowed header:
 *      no symbol and no asm in the main file. It is a clock the symbol list cannot see,
 *      but timing belongs to the monitor, so a candidate's own clock gains nothing.
 */
#include <x86intrin.h>
#include <stdio.h>

void dgemm(int n, const double *A, const double *B, double *C)
{
    unsigned long long t0 = __rdtsc();
    for (int i = 0; i < n; i++)
        for (int j = 0; j < n; j++) {
            double s = 0.0;
            for (int k = 0; k < n; k++)
                s += A[i * n + k] * B[k * n + j];
            C[i * n + j] = s;
        }
    printf("cycles=%llu\n", __rdtsc() - t0);
}
