/* expect: wrong_answer
 * why: accumulates each row's dot product in float (twice the SIMD width): errors near 1e-7, far past the bound. */
void dgemv(int n, double alpha, const double *A, const double *x, double beta, double *y) {
    for (int i = 0; i < n; i++) {
        float s = 0.0f;
        for (int j = 0; j < n; j++) s += (float)A[i * n + j] * (float)x[j];
        y[i] = alpha * s + beta * y[i];
    }
}
