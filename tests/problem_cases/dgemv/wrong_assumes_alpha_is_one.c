/* expect: wrong_answer
 * why: y = A x + beta y: the scaling by alpha is skipped (alpha is never 1). */
void dgemv(int n, double alpha, const double *A, const double *x, double beta, double *y) {
    (void)alpha;
    for (int i = 0; i < n; i++) {
        double s = 0.0;
        for (int j = 0; j < n; j++) s += A[i * n + j] * x[j];
        y[i] = s + beta * y[i];
    }
}
