/* expect: wrong_answer
 * why: treats y as an output only (y = alpha A x, the gemv of a BLAS call with beta = 0): beta * y is lost. */
void dgemv(int n, double alpha, const double *A, const double *x, double beta, double *y) {
    (void)beta;
    for (int i = 0; i < n; i++) {
        double s = 0.0;
        for (int j = 0; j < n; j++) s += A[i * n + j] * x[j];
        y[i] = alpha * s;
    }
}
