/* expect: wrong_answer
 * why: the product is right, but B is transposed in place as scratch space and left that way. */
void dgemm(int n, const double *A, const double *B, double *C) {
    double *b = (double *)B;
    for (int i = 0; i < n; i++)
        for (int j = i + 1; j < n; j++) {
            double t = b[i * n + j];
            b[i * n + j] = b[j * n + i];
            b[j * n + i] = t;
        }
    for (int i = 0; i < n; i++)
        for (int j = 0; j < n; j++) {
            double s = 0.0;
            for (int k = 0; k < n; k++) s += A[i * n + k] * b[j * n + k];
            C[i * n + j] = s;
        }
}
