/* expect: wrong_answer
 * why: computes A^T B: right shape, right magnitude, wrong result everywhere. */
void dgemm(int n, const double *A, const double *B, double *C) {
    for (int i = 0; i < n; i++)
        for (int j = 0; j < n; j++) {
            double s = 0.0;
            for (int k = 0; k < n; k++) s += A[k * n + i] * B[k * n + j];
            C[i * n + j] = s;
        }
}
