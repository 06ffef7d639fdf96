/* expect: wrong_answer
 * why: the k loop stops one short (an off-by-one that looks like a small error): every
 *      element misses one product term of size up to 1.
 */
void dgemm(int n, const double *A, const double *B, double *C)
{
    for (int i = 0; i < n; i++)
        for (int j = 0; j < n; j++) {
            double s = 0.0;
            for (int k = 0; k < n - 1; k++)
                s += A[i * n + k] * B[k * n + j];
            C[i * n + j] = s;
        }
}
