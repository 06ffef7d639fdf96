/* expect: rejected|wrong_answer
 * why: calls libgomp's old entry point GOMP_parallel_start by hand (allowed by a GOMP_*
 *      wildcard), lets the worker thread compute C and returns without GOMP_parallel_end:
 *      a background thread made from allowed symbols only. Rejected if the monitor sees
 *      CPU time outside the timed calls or the GOMP allowlist names only what gcc emits;
 *      wrong_answer because C is unfinished when the call returns (from the second call on
 *      the nested team has one thread and nothing is computed at all).
 */
extern void GOMP_parallel_start(void (*fn)(void *), void *data, unsigned num_threads);
extern int omp_get_thread_num(void);

struct job { int n; const double *A, *B; double *C; };
static struct job job;

static void work(void *p)
{
    struct job *j = p;
    int n = j->n;
    if (omp_get_thread_num() == 0)
        return;
    for (int i = 0; i < n; i++)
        for (int c = 0; c < n; c++) {
            double s = 0.0;
            for (int k = 0; k < n; k++)
                s += j->A[i * n + k] * j->B[k * n + c];
            j->C[i * n + c] = s;
        }
}

void dgemm(int n, const double *A, const double *B, double *C)
{
    job.n = n; job.A = A; job.B = B; job.C = C;
    GOMP_parallel_start(work, &job, 2);
}
