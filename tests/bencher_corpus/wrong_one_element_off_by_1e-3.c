/* expect: wrong_answer
 * why: a single element off by 1e-3 (absolute); a norm-wise or sampled check can miss
 *      it, the element-wise check (n <= 256) and Freivalds' check must not.
 */
void dgemm(int n, const double *A, const double *B, double *C)
{
    for (int i = 0; i < n; i++)
        for (int j = 0; j < n; j++) {
            double s = 0.0;
            for (int k = 0; k < n; k++)
                s += A[i * n + k] * B[k * n + j];
            C[i * n + j] = s;
        }
    C[(n / 3) * n + (2 * n) / 3] += 1e-3;
}
