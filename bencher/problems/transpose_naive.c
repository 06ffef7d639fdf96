/* The naive reference of `transpose`: the textbook double loop, reading A by rows and writing B by columns,
 * no blocking, no threads. Speedups are measured against it on each node. */
void transpose(int n, const double *A, double *B) {
    for (int i = 0; i < n; i++)
        for (int j = 0; j < n; j++) B[j * n + i] = A[i * n + j];
}
