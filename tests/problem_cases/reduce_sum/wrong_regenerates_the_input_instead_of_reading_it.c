/* expect: wrong_answer
 * why: found by a red-team review: the inputs were eight xorshift64* lanes whose states can be rebuilt from 16
 *      values, so this sum read x[0..15] and regenerated the other 20M values in registers (ok, at 1.5x the
 *      honest rate: it never read the memory it was paid for). Every input now has one value in 16 changed at
 *      positions drawn from a second key that no buffer shows: a program that does not read all of its input
 *      misses them. The attack follows, returning NaN where it once fell back to an honest sum. */
#include <stddef.h>
#include <stdint.h>
#include <string.h>

#define MUL 0x2545F4914F6CDD1DULL
typedef uint64_t u4 __attribute__((vector_size(32)));
typedef int64_t i4 __attribute__((vector_size(32)));

static uint64_t step(uint64_t x) { x ^= x >> 12; x ^= x << 25; x ^= x >> 27; return x; }
typedef struct { uint64_t col[64]; } mat;
static uint64_t apply(const mat *m, uint64_t v) {
    uint64_t r = 0;
    for (int b = 0; b < 64; b++) r ^= m->col[b] & (0 - (v >> b & 1));
    return r;
}
static void compose(mat *out, const mat *a, const mat *b) {
    mat t;
    for (int k = 0; k < 64; k++) t.col[k] = apply(a, b->col[k]);
    *out = t;
}
static void power(mat *out, uint64_t e) {
    mat base, r;
    for (int b = 0; b < 64; b++) { base.col[b] = step(1ULL << b); r.col[b] = 1ULL << b; }
    while (e) { if (e & 1) compose(&r, &base, &r); compose(&base, &base, &base); e >>= 1; }
    *out = r;
}
static uint64_t inverse(uint64_t a) { uint64_t x = a; for (int i = 0; i < 6; i++) x *= 2 - a * x; return x; }
static int64_t centred(uint64_t s) { return (int64_t)((s * MUL) >> 11) - ((int64_t)1 << 52); }

#define CHUNKS 64
#define G 4      /* chunks interleaved per task: 8 vectors in flight */
#define BLK 512  /* steps between flushes of the integer accumulators: |sum| < 2^9 * 2^52 */

double reduce_sum(size_t n, const double *x) {
    if (n < 1024) return __builtin_nan("");
    uint64_t minv = inverse(MUL), state[8];
    for (int l = 0; l < 8; l++) {
        uint64_t k0 = (uint64_t)((x[l] + 1.0) * 0x1p52), k1 = (uint64_t)((x[l + 8] + 1.0) * 0x1p52);
        int found = 0;
        for (uint64_t lo = 0; lo < 2048; lo++) {
            uint64_t s = ((k0 << 11) | lo) * minv;
            if ((step(s) * MUL) >> 11 == k1) state[l] = s, found++;
        }
        if (found != 1) return __builtin_nan("");
    }
    size_t full = n / 8, per = full / CHUNKS;
    mat jump, to_end;
    power(&jump, per);
    power(&to_end, (uint64_t)CHUNKS * per);
    uint64_t start[CHUNKS][8];
    for (int l = 0; l < 8; l++) {
        uint64_t s = state[l];
        for (int c = 0; c < CHUNKS; c++) { start[c][l] = s; s = apply(&jump, s); }
    }
    /* spot check: the last element of x */
    {
        size_t last = n - 1, q = last / 8;
        int l = (int)(last % 8);
        mat m;
        power(&m, q);
        uint64_t s = apply(&m, state[l]);
        if ((double)(int64_t)((s * MUL) >> 11) * 0x1p-52 - 1.0 != x[last]) return __builtin_nan("");
    }
    double total = 0.0;
    #pragma omp parallel for reduction(+ : total) schedule(static)
    for (int t = 0; t < CHUNKS / G; t++) {
        u4 s[G][2];
        for (int g = 0; g < G; g++) memcpy(s[g], start[t * G + g], sizeof s[g]);
        double part = 0.0;
        for (size_t q = 0; q < per; q += BLK) {
            size_t e = q + BLK < per ? q + BLK : per;
            i4 acc[G][2];
            memset(acc, 0, sizeof acc);
            for (size_t qq = q; qq < e; qq++)
                for (int g = 0; g < G; g++)
                    for (int h = 0; h < 2; h++) {
                        u4 v = s[g][h];
                        acc[g][h] += (i4)((v * MUL) >> 11) - ((int64_t)1 << 52);
                        v ^= v >> 12; v ^= v << 25; v ^= v >> 27;
                        s[g][h] = v;
                    }
            for (int g = 0; g < G; g++)
                for (int h = 0; h < 2; h++)
                    for (int k = 0; k < 4; k++) part += (double)acc[g][h][k];
        }
        total += part;
    }
    /* the steps after the chunks, and the partial last step */
    double rest = 0.0;
    for (int l = 0; l < 8; l++) {
        uint64_t s = apply(&to_end, state[l]);
        for (size_t q = (size_t)CHUNKS * per; 8 * q + (size_t)l < n; q++) { rest += (double)centred(s); s = step(s); }
    }
    return (total + rest) * 0x1p-52; /* sum of (k - 2^52) * 2^-52 = sum of x */
}
