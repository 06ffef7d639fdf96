/* expect: rejected
 * why: a helper left non-static is a second global symbol; it could interpose on a
 *      harness or libc function of the same name.
 * detail: row_kernel
 */
void row_kernel(int n, int i, const double *A, const double *B, double *C)
{
    for (int j = 0; j < n; j++) {
        double s = 0.0;
        for (int k = 0; k < n; k++)
            s += A[i * n + k] * B[k * n + j];
        C[i * n + j] = s;
    }
}

void dgemm(int n, const double *A, const double *B, double *C)
{
    for (int i = 0; i < n; i++)
        row_kernel(n, i, A, B, C);
}
