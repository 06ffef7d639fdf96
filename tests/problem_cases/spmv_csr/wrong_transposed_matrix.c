/* expect: wrong_answer
 * why: reads the arrays as compressed sparse columns (y = A^T x): the right nonzeros scattered to the wrong rows. */
void spmv_csr(int n, const int *row_ptr, const int *col_idx, const double *val, const double *x, double *y) {
    for (int i = 0; i < n; i++) y[i] = 0.0;
    for (int i = 0; i < n; i++)
        for (int k = row_ptr[i]; k < row_ptr[i + 1]; k++) y[col_idx[k]] += val[k] * x[i];
}
