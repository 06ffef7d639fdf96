/* techniques: unrolling
 * why: the k loop steps by 4 and repeats the multiply-add for k, k+1, k+2, k+3 into one
 *      accumulator, then a remainder loop; the order stays i-j-k.
 */
void dgemm(int n, const double *A, const double *B, double *C)
{
    for (int i = 0; i < n; i++)
        for (int j = 0; j < n; j++) {
            const double *a = A + i * n;
            double sum = 0.0;
            int k = 0;
            for (; k + 3 < n; k += 4)
                sum += a[k] * B[k * n + j] + a[k + 1] * B[(k + 1) * n + j]
                     + a[k + 2] * B[(k + 2) * n + j] + a[k + 3] * B[(k + 3) * n + j];
            for (; k < n; k++)
                sum += a[k] * B[k * n + j];
            C[i * n + j] = sum;
        }
}
