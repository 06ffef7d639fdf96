/* expect: rejected
 * why: no asm keyword and no symbol: raw x86-64 machine code for write(1, msg, len) sits
 *      in a const array placed in .text.unlikely (an executable section gcc itself uses
 *      for cold code, so an object-level section check cannot tell it apart), then is
 *      called through a function pointer. Only a source check that rejects section
 *      attributes stops it; if it runs, it is a full syscall escape. See the report.
 * detail: section
 */
static const unsigned char sys_write[] __attribute__((section(".text.unlikely"))) = {
    0xb8, 0x01, 0x00, 0x00, 0x00, /* mov eax, 1 (write); rdi, rsi, rdx are the arguments */
    0x0f, 0x05,                   /* syscall */
    0xc3,                         /* ret */
};

void dgemm(int n, const double *A, const double *B, double *C)
{
    static const char msg[] = "raw syscall from data\n";
    long (*raw)(long, const void *, long) = (long (*)(long, const void *, long))(const void *)sys_write;
    raw(1, msg, sizeof msg - 1);
    for (int i = 0; i < n; i++)
        for (int j = 0; j < n; j++) {
            double s = 0.0;
            for (int k = 0; k < n; k++)
                s += A[i * n + k] * B[k * n + j];
            C[i * n + j] = s;
        }
}
