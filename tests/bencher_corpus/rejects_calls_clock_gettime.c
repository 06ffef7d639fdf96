/* expect: rejected
 * why: reads the clock itself (to pace work or fingerprint the harness); clock_gettime
 *      is not an allowed symbol.
 * detail: clock_gettime
 */
#include <stdio.h>

struct timespec { long tv_sec; long tv_nsec; };
extern int clock_gettime(int clock_id, struct timespec *ts);

void dgemm(int n, const double *A, const double *B, double *C)
{
    struct timespec t0;
    clock_gettime(1, &t0);
    for (int i = 0; i < n; i++)
        for (int j = 0; j < n; j++) {
            double s = 0.0;
            for (int k = 0; k < n; k++)
                s += A[i * n + k] * B[k * n + j];
            C[i * n + j] = s;
        }
    printf("t0=%ld\n", (long)t0.tv_sec);
}
