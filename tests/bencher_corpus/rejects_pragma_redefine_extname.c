/* expect: rejected
 * why: #pragma redefine_extname renames a declared helper to clock_gettime at the
 *      assembler level; the pragma is not allowed (and the object would reference
 *      clock_gettime).
 */
#pragma redefine_extname my_clock clock_gettime
struct ts { long s, ns; };
extern int my_clock(int id, struct ts *t);
static struct ts stamp;
static void __attribute__((used)) touch_clock(void) { my_clock(1, &stamp); }

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
