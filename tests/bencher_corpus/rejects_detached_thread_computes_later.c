/* expect: rejected
 * why: a detached thread keeps a private copy of the inputs and finishes the product after
 *      dgemm has returned; pthread_create/pthread_detach are not allowed symbols.
 * detail: pthread
 */
#include <stdlib.h>
#include <string.h>

typedef unsigned long pthread_t;
extern int pthread_create(pthread_t *t, const void *attr, void *(*fn)(void *), void *arg);
extern int pthread_detach(pthread_t t);

struct job { int n; double *A, *B; double *C; };

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
    free(j->A);
    free(j->B);
    free(j);
    return NULL;
}

void dgemm(int n, const double *A, const double *B, double *C)
{
    size_t bytes = (size_t)n * n * sizeof(double);
    struct job *j = malloc(sizeof *j);
    j->n = n;
    j->A = malloc(bytes);
    j->B = malloc(bytes);
    j->C = C;
    memcpy(j->A, A, bytes);
    memcpy(j->B, B, bytes);
    pthread_t t;
    pthread_create(&t, NULL, work, j);
    pthread_detach(t);
}
