/* expect: wrong_answer
 * why: computes even columns and copies each into the next odd column, betting that a
 *      sampled check only looks at some elements. Freivalds' check sees every column.
 */
void dgemm(int n, const double *A, const double *B, double *C)
{
    for (int i = 0; i < n; i++)
        for (int j = 0; j < n; j += 2) {
            double s = 0.0;
            for (int k = 0; k < n; k++)
                s += A[i * n + k] * B[k * n + j];
            C[i * n + j] = s;
            if (j + 1 < n)
                C[i * n + j + 1] = s;
        }
}
