/* expect: compile_error
 * why: two definitions of dgemm in one translation unit.
 */
void dgemm(int n, const double *A, const double *B, double *C)
{
    (void)n; (void)A; (void)B; (void)C;
}

void dgemm(int n, const double *A, const double *B, double *C)
{
    (void)n; (void)A; (void)B; (void)C;
}
