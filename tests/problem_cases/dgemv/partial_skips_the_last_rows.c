/* expect: wrong_answer
 * why: four rows per pass (x loaded once for four rows) without a remainder: the last n % 4 elements of y
 * keep their old value instead of alpha A x + beta y (n = 127). */
void dgemv(int n, double alpha, const double *A, const double *x, double beta, double *y) {
    for (int i = 0; i + 4 <= n; i += 4) {
        double s0 = 0.0, s1 = 0.0, s2 = 0.0, s3 = 0.0;
        for (int j = 0; j < n; j++) {
            s0 += A[(i + 0) * n + j] * x[j];
            s1 += A[(i + 1) * n + j] * x[j];
            s2 += A[(i + 2) * n + j] * x[j];
            s3 += A[(i + 3) * n + j] * x[j];
        }
        y[i + 0] = alpha * s0 + beta * y[i + 0];
        y[i + 1] = alpha * s1 + beta * y[i + 1];
        y[i + 2] = alpha * s2 + beta * y[i + 2];
        y[i + 3] = alpha * s3 + beta * y[i + 3];
    }
}
