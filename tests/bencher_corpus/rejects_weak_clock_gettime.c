/* expect: rejected
 * why: a weak definition of clock_gettime (nm shows W). Weak binding is still a defined
 *      global symbol: the checker must treat STB_WEAK like STB_GLOBAL.
 * detail: clock_gettime
 */
struct timespec { long tv_sec; long tv_nsec; };

__attribute__((weak)) int clock_gettime(int id, struct timespec *ts)
{
    (void)id;
    ts->tv_sec = 0;
    ts->tv_nsec = 1;
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
