/* techniques: none
 * near miss for: prefetch
 * why: near miss for prefetch: a helper called prefetch_row "warms" a row by reading it
 *      into a volatile sink; no prefetch instruction or builtin is used (the name
 *      __builtin_prefetch appears only in this comment).
 */
static volatile double sink;

static void prefetch_row(const double *row, int n)
{
    double s = 0.0;
    for (int j = 0; j < n; j += 8)
        s += row[j];
    sink = s;
}

void dgemm(int n, const double *A, const double *B, double *C)
{
    for (int i = 0; i < n; i++) {
        prefetch_row(A + i * n, n);
        for (int j = 0; j < n; j++) {
            double sum = 0.0;
            for (int k = 0; k < n; k++)
                sum += A[i * n + k] * B[k * n + j];
            C[i * n + j] = sum;
        }
    }
}
