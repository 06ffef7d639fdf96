/* The naive reference of `dgemv`: one scalar dot product per row, then the scaling, no threads, no
 * vectorisation hints. Speedups are measured against it on each node. */
void dgemv(int n, double alpha, const double *A, const double *x, double beta, double *y) {
    for (int i = 0; i < n; i++) {
        double s = 0.0;
        for (int j = 0; j < n; j++) s += A[i * n + j] * x[j];
        y[i] = alpha * s + beta * y[i];
    }
}
