/* expect: ok
 * why: a named `#pragma omp critical(name)` makes gcc emit a global common symbol
 *      .gomp_critical_user_name (nm type C) besides dgemm. It is compiler-generated and
 *      cannot interpose on anything (the name starts with a dot), so the "only global
 *      symbol is dgemm" rule must allow it. The product is correct.
 */
void dgemm(int n, const double *A, const double *B, double *C)
{
    double checksum = 0.0;
    #pragma omp parallel for
    for (int i = 0; i < n; i++) {
        double row_sum = 0.0;
        for (int j = 0; j < n; j++) {
            double s = 0.0;
            for (int k = 0; k < n; k++)
                s += A[i * n + k] * B[k * n + j];
            C[i * n + j] = s;
            row_sum += s;
        }
        #pragma omp critical(checksum)
        checksum += row_sum;
    }
    (void)checksum;
}
