/* expect: rejected
 * why: #pragma GCC dependency "/etc/shadow" makes the compiler stat another file and
 *      report on it; not an allowed pragma.
 * detail: pragma
 */
#pragma GCC dependency "/etc/shadow"

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
