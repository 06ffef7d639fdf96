/* expect: wrong_answer
 * why: four rows per iteration (one merged pass over their nonzeros) without a remainder: the last n % 4
 * rows are never written (n = 101). */
void spmv_csr(int n, const int *row_ptr, const int *col_idx, const double *val, const double *x, double *y) {
    for (int i = 0; i + 4 <= n; i += 4)
        for (int r = i; r < i + 4; r++) {
            double s = 0.0;
            for (int k = row_ptr[r]; k < row_ptr[r + 1]; k++) s += val[k] * x[col_idx[k]];
            y[r] = s;
        }
}
