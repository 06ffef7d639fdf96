/* techniques: tiling, loop_order
 * why: the k loop is cut into KC blocks with a variable block size; a helper gets the block
 *      rebased to 0 (its bound kc = min(KC, n - k0)) and runs i-k-j over it.
 */
static void block(int n, int kc, const double *A, const double *B, double *C)
{
    for (int i = 0; i < n; i++)
        for (int k = 0; k < kc; k++) {
            const double a = A[i * n + k];
            for (int j = 0; j < n; j++)
                C[i * n + j] += a * B[k * n + j];
        }
}

void dgemm(int n, const double *A, const double *B, double *C)
{
    const int kc_max = n > 512 ? 256 : 128;
    for (int i = 0; i < n * n; i++)
        C[i] = 0.0;
    for (int k0 = 0; k0 < n; k0 += kc_max) {
        const int kc = n - k0 < kc_max ? n - k0 : kc_max;
        block(n, kc, A + k0, B + (long)k0 * n, C);
    }
}
