/* The naive reference of `spmv_csr`: one scalar dot product per row over its stored nonzeros, no threads,
 * no vectorisation hints. Speedups are measured against it on each node. */
void spmv_csr(int n, const int *row_ptr, const int *col_idx, const double *val, const double *x, double *y) {
    for (int i = 0; i < n; i++) {
        double s = 0.0;
        for (int k = row_ptr[i]; k < row_ptr[i + 1]; k++) s += val[k] * x[col_idx[k]];
        y[i] = s;
    }
}
