/* expect: rejected
 * why: starts a pthread that computes C and returns at once, so the work happens outside
 *      the timed call; pthread_create is not an allowed symbol.
 * detail: pthread_create
 */
#include <stddef.h>

typedef unsigned long pthread_t;
extern int pthread_create(pthread_t *t, const void *attr, void *(*fn)(void *), void *arg);

struct job { int n; const double *A, *B; double *C; };
static struct job job;

static void *work(void *p)
{
    struct job *j = p;
    int n = j->n;
    for (int i = 0; i < n; i++)
        for (int c = 0; c < n; c++) {
            double s = 0.0;
            for (int k = 0; k < n; k++)
                s += j->A[i * n + k] * j->B[k * n + c];
            j->C[i * n + c] = s;
        }
    return NULL;
}

void dgemm(int n, const double *A, const double *B, double *C)
{
    pthread_t t;
    job.n = n; job.A = A; job.B = B; job.C = C;
    pthread_create(&t, NULL, work, &job);
}
