/* expect: wrong_answer
 * why: a vectorised loop without its remainder: the last n % 8 columns are never written (n = 100). */
void dgemm(int n, const double *A, const double *B, double *C) {
    int jn = n - n % 8;
    for (int i = 0; i < n; i++)
        for (int j = 0; j < jn; j++) {
            double s = 0.0;
            for (int k = 0; k < n; k++) s += A[i * n + k] * B[k * n + j];
            C[i * n + j] = s;
        }
}
