/* techniques: tiling
 * why: three levels of BS x BS blocks (BS from a #define) with min() bounds; inside a
 *      block the order is still i-j-k with k innermost, so tiling only.
 */
#define BS 48

static int min_int(int a, int b) { return a < b ? a : b; }

void dgemm(int n, const double *A, const double *B, double *C)
{
    for (int i = 0; i < n * n; i++)
        C[i] = 0.0;
    for (int ii = 0; ii < n; ii += BS)
        for (int jj = 0; jj < n; jj += BS)
            for (int kk = 0; kk < n; kk += BS)
                for (int i = ii; i < min_int(ii + BS, n); i++)
                    for (int j = jj; j < min_int(jj + BS, n); j++) {
                        double sum = C[i * n + j];
                        for (int k = kk; k < min_int(kk + BS, n); k++)
                            sum += A[i * n + k] * B[k * n + j];
                        C[i * n + j] = sum;
                    }
}
