/* expect: ok
 * why: an honest fast version: 32 x 32 tiles shared out by OpenMP, edge tiles clipped to the matrix. */
#define T 32

void transpose(int n, const double *A, double *B) {
    int tiles = (n + T - 1) / T;
#pragma omp parallel for collapse(2) schedule(static)
    for (int ti = 0; ti < tiles; ti++)
        for (int tj = 0; tj < tiles; tj++) {
            int i1 = ti * T + T < n ? ti * T + T : n, j1 = tj * T + T < n ? tj * T + T : n;
            for (int j = tj * T; j < j1; j++)
#pragma omp simd
                for (int i = ti * T; i < i1; i++) B[(long)j * n + i] = A[(long)i * n + j];
        }
}
