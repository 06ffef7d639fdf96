/* expect: compile_error
 * why: a plain syntax error (missing semicolon); gcc exits non-zero.
 */
void dgemm(int n, const double *A, const double *B, double *C)
{
    for (int i = 0; i < n * n; i++)
        C[i] = A[i] * B[i]
}
