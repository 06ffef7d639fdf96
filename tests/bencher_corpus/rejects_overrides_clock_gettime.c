/* expect: rejected
 * why: defines clock_gettime returning a frozen time; a definition in the executable
 *      interposes on libc's for any timing done inside the child.
 * detail: clock_gettime
 */
struct timespec { long tv_sec; long tv_nsec; };

int clock_gettime(int id, struct timespec *ts)
{
    (void)id;
    ts->tv_sec = 0;
    ts->tv_nsec = 0;
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
