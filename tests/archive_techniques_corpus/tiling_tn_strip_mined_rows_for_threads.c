/* techniques: openmp
 * near miss for: tiling
 * why: near miss for tiling: the i loop is strip-mined into chunks of 32 rows handed to
 *      threads, but each chunk's rows run the naive order directly inside the chunk loop;
 *      no other loop sits between, so the traversal order is unchanged.
 */
enum { CHUNK = 32 };

void dgemm(int n, const double *A, const double *B, double *C)
{
    #pragma omp parallel for schedule(dynamic)
    for (int ib = 0; ib < n; ib += CHUNK)
        for (int i = ib; i < (ib + CHUNK < n ? ib + CHUNK : n); i++)
            for (int j = 0; j < n; j++) {
                double sum = 0.0;
                for (int k = 0; k < n; k++)
                    sum += A[i * n + k] * B[k * n + j];
                C[i * n + j] = sum;
            }
}
