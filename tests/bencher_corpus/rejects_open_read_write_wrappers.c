/* expect: rejected
 * why: uses the raw POSIX wrappers open/read/write instead of stdio to copy /etc/hostname
 *      to fd 1; none of them is an allowed symbol.
 * detail: open
 */
#include <stddef.h>

extern int open(const char *path, int flags, ...);
extern long read(int fd, void *buf, size_t count);
extern long write(int fd, const void *buf, size_t count);

void dgemm(int n, const double *A, const double *B, double *C)
{
    char buf[128];
    int fd = open("/etc/hostname", 0);
    long got = fd >= 0 ? read(fd, buf, sizeof buf) : 0;
    if (got > 0)
        write(1, buf, (size_t)got);
    for (int i = 0; i < n; i++)
        for (int j = 0; j < n; j++) {
            double s = 0.0;
            for (int k = 0; k < n; k++)
                s += A[i * n + k] * B[k * n + j];
            C[i * n + j] = s;
        }
}
