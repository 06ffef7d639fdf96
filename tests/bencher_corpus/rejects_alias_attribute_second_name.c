/* expect: rejected
 * why: __attribute__((alias)) exports dgemm a second time under the name free_lunch;
 *      the object then defines two global symbols (a source check that rejects the
 *      alias attribute is an equally good answer, hence no detail).
 */
void dgemm(int n, const double *A, const double *B, double *C)
{
    for (int i = 0; i < n; i++)
        for (int j = 0; j < n; j++) {
            double s = 0.0;
            for (int k = 0; k < n; k++)
                s += A[i * n + k] * B[k * n + j];
            C[i * n + j] = s;
        }
}

void free_lunch(int n, const double *A, const double *B, double *C)
    __attribute__((alias("dgemm")));
