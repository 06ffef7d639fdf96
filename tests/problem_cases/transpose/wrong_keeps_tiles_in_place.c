/* expect: wrong_answer
 * why: a blocked transpose that transposes each 16 x 16 tile but writes it to its own position instead of the
 * mirrored one: only the diagonal tiles come out right (and the clipped edge tiles leave part of B unwritten). */
#define T 16

void transpose(int n, const double *A, double *B) {
    for (int i0 = 0; i0 < n; i0 += T)
        for (int j0 = 0; j0 < n; j0 += T)
            for (int i = 0; i < T && i0 + i < n; i++)
                for (int j = 0; j < T && j0 + j < n; j++)
                    if (i0 + j < n && j0 + i < n) B[(i0 + j) * n + j0 + i] = A[(i0 + i) * n + j0 + j];
}
