/* techniques: none
 * why: CSR sparse matrix-vector product as written in every textbook: per row, a scalar sum
 *      over the row's nonzeros, x gathered through col_idx. The inner range comes from
 *      row_ptr[i], but the row loop steps by one: no tiles.
 */
void spmv_csr(int n, const int *row_ptr, const int *col_idx, const double *val, const double *x, double *y)
{
    for (int i = 0; i < n; i++) {
        double s = 0.0;
        for (int k = row_ptr[i]; k < row_ptr[i + 1]; k++)
            s += val[k] * x[col_idx[k]];
        y[i] = s;
    }
}
