/* expect: ok
 * why: a `static` function named main is a local symbol (or is inlined away); only the
 *      global `main` is forbidden. The product is correct.
 */
static int main(int n, const double *A, const double *B, double *C)
{
    for (int i = 0; i < n; i++)
        for (int j = 0; j < n; j++) {
            double s = 0.0;
            for (int k = 0; k < n; k++)
                s += A[i * n + k] * B[k * n + j];
            C[i * n + j] = s;
        }
    return 0;
}

void dgemm(int n, const double *A, const double *B, double *C)
{
    main(n, A, B, C);
}
