/* expect: timeout
 * why: the first call (warm-up or first timed call) is correct; every later call spins
 *      forever, so the time limit must apply to each call, not only to start-up.
 */
static int calls;

void dgemm(int n, const double *A, const double *B, double *C)
{
    if (calls++ > 0) {
        volatile long spin = 0;
        for (;;)
            spin++;
    }
    for (int i = 0; i < n; i++)
        for (int j = 0; j < n; j++) {
            double s = 0.0;
            for (int k = 0; k < n; k++)
                s += A[i * n + k] * B[k * n + j];
            C[i * n + j] = s;
        }
}
