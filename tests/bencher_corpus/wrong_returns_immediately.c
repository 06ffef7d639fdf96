/* expect: wrong_answer
 * why: returns at once; C keeps the NaN the harness pre-filled.
 */
void dgemm(int n, const double *A, const double *B, double *C)
{
    (void)n; (void)A; (void)B; (void)C;
}
