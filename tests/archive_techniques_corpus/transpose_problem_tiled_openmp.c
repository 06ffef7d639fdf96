/* techniques: tiling, openmp
 * why: 32 x 32 tiles (tile loops with a constant step, point loops bounded by min), so a
 *      tile's rows of A and of B stay in cache; tile rows shared over threads.
 */
#define BS 32

void transpose(int n, const double *A, double *B)
{
    #pragma omp parallel for schedule(static)
    for (int ii = 0; ii < n; ii += BS)
        for (int jj = 0; jj < n; jj += BS)
            for (int i = ii; i < (ii + BS < n ? ii + BS : n); i++)
                for (int j = jj; j < (jj + BS < n ? jj + BS : n); j++)
                    B[j * n + i] = A[i * n + j];
}
