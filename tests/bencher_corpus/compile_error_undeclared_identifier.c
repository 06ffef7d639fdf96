/* expect: compile_error
 * why: uses an identifier that is never declared.
 */
void dgemm(int n, const double *A, const double *B, double *C)
{
    for (int i = 0; i < n * n; i++)
        C[i] = A[i] * B[i] * scale_factor;
}
