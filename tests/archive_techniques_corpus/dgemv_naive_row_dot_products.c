/* techniques: none
 * why: dgemv's plain form: one dot product of a row of A with x per element of y, into a
 *      scalar; no reordering, no blocking.
 */
void dgemv(int n, double alpha, const double *A, const double *x, double beta, double *y)
{
    for (int i = 0; i < n; i++) {
        double s = 0.0;
        for (int j = 0; j < n; j++)
            s += A[i * n + j] * x[j];
        y[i] = alpha * s + beta * y[i];
    }
}
