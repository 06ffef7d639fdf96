/* expect: rejected
 * why: `#pragma weak clock_gettime = fake_clock` makes a weak global clock_gettime that
 *      aliases a static-looking helper. Caught twice: the pragma is not on the allowlist
 *      and the object defines clock_gettime.
 */
struct timespec { long tv_sec; long tv_nsec; };

int fake_clock(int id, struct timespec *ts);
#pragma weak clock_gettime = fake_clock

int fake_clock(int id, struct timespec *ts)
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
