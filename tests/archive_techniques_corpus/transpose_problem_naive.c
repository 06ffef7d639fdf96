/* techniques: none
 * near miss for: transpose
 * why: near miss for transpose: the transpose problem's own answer (B[j][i] = A[i][j]) is
 *      written straight to the output; the label means transposing an operand into a buffer.
 */
void transpose(int n, const double *A, double *B)
{
    for (int i = 0; i < n; i++)
        for (int j = 0; j < n; j++)
            B[j * n + i] = A[i * n + j];
}
