/* techniques: loop_order
 * why: i-k-j through row pointers, with the product in a temporary first: the destination
 *      c[j] moves with the innermost loop, the reduction index k is outside it.
 */
void dgemm(int n, const double *A, const double *B, double *C)
{
    for (int i = 0; i < n; i++) {
        double *c = C + (long)i * n;
        for (int j = 0; j < n; j++)
            c[j] = 0.0;
        for (int k = 0; k < n; k++) {
            const double *b = B + (long)k * n;
            for (int j = 0; j < n; j++) {
                double t = A[i * n + k] * b[j];
                c[j] += t;
            }
        }
    }
}
