/* expect: ok|compile_error
 * why: returns int instead of void but computes the right product. Compiled alone this is
 *      valid C and the caller ignores the return register, so it runs fine (ok); if the
 *      bencher force-includes the official prototype (-include), gcc reports conflicting
 *      types (compile_error). Which one is the policy's choice; see the report.
 */
int dgemm(int n, const double *A, const double *B, double *C)
{
    for (int i = 0; i < n; i++)
        for (int j = 0; j < n; j++) {
            double s = 0.0;
            for (int k = 0; k < n; k++)
                s += A[i * n + k] * B[k * n + j];
            C[i * n + j] = s;
        }
    return 1234;
}
