/* expect: wrong_answer
 * why: declares dgemm with float pointers. Nothing checks the prototype when the object is
 *      compiled alone, so it links; the harness passes doubles, the candidate reads them as
 *      pairs of floats and writes only the first half of C's bytes, leaving NaN behind.
 */
void dgemm(int n, const float *A, const float *B, float *C)
{
    for (int i = 0; i < n; i++)
        for (int j = 0; j < n; j++) {
            float s = 0.0f;
            for (int k = 0; k < n; k++)
                s += A[i * n + k] * B[k * n + j];
            C[i * n + j] = s;
        }
}
