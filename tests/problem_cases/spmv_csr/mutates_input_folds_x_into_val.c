/* expect: wrong_answer
 * detail: modified its input val
 * why: y is right, but the products val[k] * x[col] are stored back into val as scratch for the row sums. */
void spmv_csr(int n, const int *row_ptr, const int *col_idx, const double *val, const double *x, double *y) {
    double *products = (double *)val;
    for (int k = 0; k < row_ptr[n]; k++) products[k] *= x[col_idx[k]];
    for (int i = 0; i < n; i++) {
        double s = 0.0;
        for (int k = row_ptr[i]; k < row_ptr[i + 1]; k++) s += products[k];
        y[i] = s;
    }
}
