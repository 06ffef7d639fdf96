/* expect: wrong_answer
 * why: reads A column-major (y = alpha A^T x + beta y): right shape and magnitude, wrong everywhere. */
void dgemv(int n, double alpha, const double *A, const double *x, double beta, double *y) {
    for (int i = 0; i < n; i++) {
        double s = 0.0;
        for (int j = 0; j < n; j++) s += A[j * n + i] * x[j];
        y[i] = alpha * s + beta * y[i];
    }
}
