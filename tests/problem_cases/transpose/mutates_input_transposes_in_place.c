/* expect: wrong_answer
 * detail: modified its input A
 * why: B is right, but it is made by transposing A in place (swaps along the diagonal) and copying it out: A is
 * left transposed. */
#include <string.h>

void transpose(int n, const double *A, double *B) {
    double *a = (double *)A;
    for (int i = 0; i < n; i++)
        for (int j = i + 1; j < n; j++) {
            double t = a[i * n + j];
            a[i * n + j] = a[j * n + i];
            a[j * n + i] = t;
        }
    memcpy(B, a, (size_t)n * (size_t)n * sizeof(double));
}
