/* expect: wrong_answer
 * why: B = A: every value copied, and all but the diagonal in the wrong place. */
#include <string.h>

void transpose(int n, const double *A, double *B) { memcpy(B, A, (size_t)n * (size_t)n * sizeof(double)); }
