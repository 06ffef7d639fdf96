/* expect: wrong_answer
 * detail: modified its input x
 * why: y is right, but alpha is folded into x in place to save a multiply per row, and x is left scaled. */
void dgemv(int n, double alpha, const double *A, const double *x, double beta, double *y) {
    double *ax = (double *)x;
    for (int j = 0; j < n; j++) ax[j] *= alpha;
    for (int i = 0; i < n; i++) {
        double s = 0.0;
        for (int j = 0; j < n; j++) s += A[i * n + j] * ax[j];
        y[i] = s + beta * y[i];
    }
}
