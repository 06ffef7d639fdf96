/* expect: rejected
 * why: like the .init_array trick but in .preinit_array, which runs even earlier in an
 *      executable and is missing from the policy's list (.init_array/.fini_array/.ctors):
 *      the object check must allowlist sections rather than denylist them.
 */
static volatile int early_flag;

static void early(void)
{
    early_flag = 1;
}

static void (*const hook)(void) __attribute__((section(".preinit_array"), used)) = early;

void dgemm(int n, const double *A, const double *B, double *C)
{
    (void)early_flag;
    for (int i = 0; i < n; i++)
        for (int j = 0; j < n; j++) {
            double s = 0.0;
            for (int k = 0; k < n; k++)
                s += A[i * n + k] * B[k * n + j];
            C[i * n + j] = s;
        }
}
