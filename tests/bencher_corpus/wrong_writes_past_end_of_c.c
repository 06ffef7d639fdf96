/* expect: crash|wrong_answer
 * why: computes C correctly and also writes n doubles past its end (into whatever the
 *      harness keeps there). The policy does not say how this is caught: a guard page
 *      after C gives crash, a canary checked after the call gives wrong_answer; a harness
 *      with neither would say ok, which is the hole this file guards.
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
    for (int j = 0; j < n; j++)
        C[n * n + j] = 0.0;
}
