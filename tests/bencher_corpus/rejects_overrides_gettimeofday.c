/* expect: rejected
 * why: defines gettimeofday returning a constant.
 * detail: gettimeofday
 */
#include <stddef.h>

struct fake_timeval { long tv_sec; long tv_usec; };

int gettimeofday(struct fake_timeval *tv, void *tz)
{
    (void)tz;
    if (tv != NULL) {
        tv->tv_sec = 0;
        tv->tv_usec = 0;
    }
    return 0;
}

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
