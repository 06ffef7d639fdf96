/* expect: wrong_answer
 * why: an 8 x 8 tiled transpose without the remainder tiles: the last n % 8 rows and columns of B are never
 * written (n = 127). */
#define T 8

void transpose(int n, const double *A, double *B) {
    for (int i0 = 0; i0 + T <= n; i0 += T)
        for (int j0 = 0; j0 + T <= n; j0 += T)
            for (int i = i0; i < i0 + T; i++)
                for (int j = j0; j < j0 + T; j++) B[j * n + i] = A[i * n + j];
}
