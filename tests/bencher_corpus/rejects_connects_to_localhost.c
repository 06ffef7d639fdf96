/* expect: rejected
 * why: opens a TCP connection to 127.0.0.1 (for example to talk to the bus or the
 *      monitor); socket and connect are not allowed symbols.
 * detail: socket
 */
#include <string.h>

struct sockaddr_in4 { unsigned short family, port; unsigned int addr; unsigned char zero[8]; };
extern int socket(int domain, int type, int protocol);
extern int connect(int fd, const void *addr, unsigned int len);

void dgemm(int n, const double *A, const double *B, double *C)
{
    int fd = socket(2, 1, 0);        /* AF_INET, SOCK_STREAM */
    struct sockaddr_in4 addr;
    memset(&addr, 0, sizeof addr);
    addr.family = 2;                                  /* AF_INET */
    addr.port = (unsigned short)(5555 >> 8 | (5555 & 0xff) << 8);
    addr.addr = 0x0100007f;                           /* 127.0.0.1, network order */
    if (fd >= 0)
        connect(fd, &addr, sizeof addr);
    for (int i = 0; i < n; i++)
        for (int j = 0; j < n; j++) {
            double s = 0.0;
            for (int k = 0; k < n; k++)
                s += A[i * n + k] * B[k * n + j];
            C[i * n + j] = s;
        }
}
