/* expect: timeout
 * why: an infinite loop with a volatile counter (no side-effect-free loop gcc may drop).
 */
void dgemm(int n, const double *A, const double *B, double *C)
{
    (void)A; (void)B; (void)C;
    volatile long spin = n;
    for (;;)
        spin++;
}
