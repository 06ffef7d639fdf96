/* techniques: openmp, unrolling
 * near miss for: register_blocking
 * why: rows shared over threads with dynamic scheduling (rows differ in length); the
 *      nonzero loop steps by 4 into four partial sums. The partial sums share no operand:
 *      split sums of one reduction, not register blocking.
 */
void spmv_csr(int n, const int *row_ptr, const int *col_idx, const double *val, const double *x, double *y)
{
    #pragma omp parallel for schedule(dynamic, 64)
    for (int i = 0; i < n; i++) {
        const int end = row_ptr[i + 1];
        double s0 = 0.0, s1 = 0.0, s2 = 0.0, s3 = 0.0;
        int k = row_ptr[i];
        for (; k + 3 < end; k += 4) {
            s0 += val[k] * x[col_idx[k]];
            s1 += val[k + 1] * x[col_idx[k + 1]];
            s2 += val[k + 2] * x[col_idx[k + 2]];
            s3 += val[k + 3] * x[col_idx[k + 3]];
        }
        for (; k < end; k++)
            s0 += val[k] * x[col_idx[k]];
        y[i] = (s0 + s1) + (s2 + s3);
    }
}
