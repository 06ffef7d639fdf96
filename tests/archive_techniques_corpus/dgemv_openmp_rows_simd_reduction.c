/* techniques: openmp, simd_pragma
 * why: the rows shared over threads, each row's dot product vectorised by `omp simd` with a
 *      reduction clause.
 */
void dgemv(int n, double alpha, const double *A, const double *x, double beta, double *y)
{
    #pragma omp parallel for schedule(static)
    for (int i = 0; i < n; i++) {
        const double *a = A + (long)i * n;
        double s = 0.0;
        #pragma omp simd reduction(+:s)
        for (int j = 0; j < n; j++)
            s += a[j] * x[j];
        y[i] = alpha * s + beta * y[i];
    }
}
