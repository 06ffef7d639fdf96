/* expect: wrong_answer
 * why: a loop over the nonzeros (balanced whatever the row lengths) that starts y[r] at a row's first
 * nonzero: an empty row never gets its 0 and keeps the garbage. */
void spmv_csr(int n, const int *row_ptr, const int *col_idx, const double *val, const double *x, double *y) {
    int r = 0;
    for (int k = 0; k < row_ptr[n]; k++) {
        while (row_ptr[r + 1] <= k) r++;
        if (k == row_ptr[r]) y[r] = 0.0;
        y[r] += val[k] * x[col_idx[k]];
    }
}
