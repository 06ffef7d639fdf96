/* expect: compile_error
 * why: C++ template syntax; the candidate is compiled as C.
 */
template <typename T>
static T twice(T x) { return x + x; }

void dgemm(int n, const double *A, const double *B, double *C)
{
    for (int i = 0; i < n * n; i++)
        C[i] = twice(A[i]) * B[i];
}
