/* expect: wrong_answer
 * why: nnz = 16 n, so it takes every row to hold exactly 16 nonzeros and never reads row_ptr: row lengths vary. */
void spmv_csr(int n, const int *row_ptr, const int *col_idx, const double *val, const double *x, double *y) {
    (void)row_ptr;
    for (int i = 0; i < n; i++) {
        double s = 0.0;
        for (int k = 16 * i; k < 16 * i + 16; k++) s += val[k] * x[col_idx[k]];
        y[i] = s;
    }
}
