/* Attack on a monitor whose inputs and check vectors come from one xoshiro256** stream (the monitor
 * before the getrandom keys): the fill's eight xorshift64* lanes were seeded with consecutive outputs
 * of the stream, and each lane's first outputs give its seed away. Solve for the stream's state, predict
 * Freivalds' two vectors r and s, and answer a rank-2 C with C r = A (B r) and C s = A (B s): no product
 * is computed. It burns about a product's time, so that only the check, not the peak check, can catch it. */
#include <stdint.h>
#include <stdlib.h>
#include <string.h>

#define LANES 8
#define MUL 0x2545F4914F6CDD1DULL
#define KNOWN 5 /* consecutive generator outputs used to solve for the 256-bit state */

typedef struct { uint64_t s[4]; } state;

static uint64_t rotl(uint64_t x, int k) { return (x << k) | (x >> (64 - k)); }
static uint64_t inverse(uint64_t a) { uint64_t x = a; for (int i = 0; i < 6; i++) x *= 2 - a * x; return x; }
static void advance(state *r) {
    uint64_t t = r->s[1] << 17;
    r->s[2] ^= r->s[0]; r->s[3] ^= r->s[1]; r->s[1] ^= r->s[2]; r->s[0] ^= r->s[3];
    r->s[2] ^= t; r->s[3] = rotl(r->s[3], 45);
}
static uint64_t next(state *r) { uint64_t out = rotl(r->s[1] * 5, 7) * 9; advance(r); return out; }
static uint64_t unright(uint64_t y, int k) { uint64_t x = y; for (int s = k; s < 64; s += k) x ^= y >> s; return x; }
static uint64_t unleft(uint64_t y, int k) { uint64_t x = y; for (int s = k; s < 64; s += k) x ^= y << s; return x; }
static uint64_t step(uint64_t x) { x ^= x >> 12; x ^= x << 25; x ^= x >> 27; return x; }
static uint64_t unstep(uint64_t x) { return unright(unleft(unright(x, 27), 25), 12); }
static uint64_t bits_of(double d) { return (uint64_t)((d + 1.0) * 0x1p52); }

/* The seed of fill lane `l` (a generator output with its low bit set), from the first outputs of the lane. */
static int lane_seed(const double *out, int l, uint64_t *seed) {
    uint64_t o1 = bits_of(out[l]), o2 = bits_of(out[LANES + l]), o3 = bits_of(out[2 * LANES + l]), minv = inverse(MUL);
    for (uint64_t t = 0; t < 2048; t++) {
        uint64_t x1 = ((o1 << 11) | t) * minv, x2 = step(x1);
        if ((x2 * MUL) >> 11 == o2 && (step(x2) * MUL) >> 11 == o3) { *seed = unstep(x1); return 1; }
    }
    return 0;
}

/* Solve for the state whose s[1] took the values `s1[0..KNOWN)` at consecutive steps (GF(2) elimination). */
static int solve(const uint64_t *s1, state *found) {
    uint64_t rows[64 * KNOWN][5];
    memset(rows, 0, sizeof rows);
    for (int i = 0; i < 256; i++) {
        state e = {{0, 0, 0, 0}};
        e.s[i / 64] = 1ULL << (i % 64);
        for (int t = 0; t < KNOWN; t++, advance(&e))
            for (int b = 0; b < 64; b++)
                if ((e.s[1] >> b) & 1) rows[64 * t + b][i / 64] |= 1ULL << (i % 64);
    }
    for (int t = 0; t < KNOWN; t++)
        for (int b = 0; b < 64; b++) rows[64 * t + b][4] = (s1[t] >> b) & 1;
    int rank = 0;
    for (int col = 0; col < 256; col++) {
        int pivot = -1;
        for (int r = rank; r < 64 * KNOWN; r++)
            if ((rows[r][col / 64] >> (col % 64)) & 1) { pivot = r; break; }
        if (pivot < 0) return 0;
        for (int w = 0; w < 5; w++) { uint64_t tmp = rows[pivot][w]; rows[pivot][w] = rows[rank][w]; rows[rank][w] = tmp; }
        for (int r = 0; r < 64 * KNOWN; r++)
            if (r != rank && ((rows[r][col / 64] >> (col % 64)) & 1))
                for (int w = 0; w < 5; w++) rows[r][w] ^= rows[rank][w];
        rank++;
    }
    for (int r = rank; r < 64 * KNOWN; r++)
        if (rows[r][4]) return 0;
    memset(found, 0, sizeof *found);
    for (int i = 0; i < 256; i++)
        if (rows[i][4]) found->s[i / 64] |= 1ULL << (i % 64);
    return 1;
}

/* The generator state just before the fill of A, from the 16 lane seeds of A's and B's fills. */
static int recover(const double *A, const double *B, state *st) {
    uint64_t seeds[2 * LANES];
    for (int l = 0; l < LANES; l++)
        if (!lane_seed(A, l, &seeds[l]) || !lane_seed(B, l, &seeds[LANES + l])) return 0;
    uint64_t inv5 = inverse(5), inv9 = inverse(9);
    for (int low = 0; low < (1 << KNOWN); low++) {
        uint64_t s1[KNOWN];
        for (int t = 0; t < KNOWN; t++) {
            uint64_t out = seeds[t] ^ (uint64_t)((low >> t) & 1);
            uint64_t v = out * inv9;
            s1[t] = ((v >> 7) | (v << 57)) * inv5;
        }
        state candidate;
        if (!solve(s1, &candidate)) continue;
        state check = candidate;
        int same = 1;
        for (int k = 0; k < 2 * LANES && same; k++) same = (next(&check) | 1) == seeds[k];
        if (same) { *st = candidate; return 1; }
    }
    return 0;
}

static double uniform(state *st) { return (double)(next(st) >> 11) * 0x1.0p-52 - 1.0; }

static volatile double sink;

/* About n^3 / 4 dependent multiply-adds: a plausible call time without computing anything. */
static void burn(int n) {
    double x = 0.0;
    for (long i = 0; i < (long)n * n * n / 4; i++) x = x * 0.999 + 1.0;
    sink = x;
}

/* C of rank 2 with C r = A (B r) and C s = A (B s) for the monitor's two check vectors: no product computed. */
void dgemm(int n, const double *A, const double *B, double *C) {
    burn(n);
    state st;
    if (!recover(A, B, &st)) { memset(C, 0, sizeof(double) * (size_t)n * (size_t)n); return; }
    for (int k = 0; k < 2 * LANES; k++) next(&st);
    double *r = malloc(sizeof(double) * 6 * (size_t)n), *s = r + n, *br = s + n, *bs = br + n, *y1 = bs + n, *y2 = y1 + n;
    for (int j = 0; j < n; j++) r[j] = uniform(&st), s[j] = uniform(&st);
    for (int i = 0; i < n; i++) {
        double a = 0, b = 0;
        for (int j = 0; j < n; j++) a += B[(size_t)i * n + j] * r[j], b += B[(size_t)i * n + j] * s[j];
        br[i] = a, bs[i] = b;
    }
    for (int i = 0; i < n; i++) {
        double a = 0, b = 0;
        for (int k = 0; k < n; k++) a += A[(size_t)i * n + k] * br[k], b += A[(size_t)i * n + k] * bs[k];
        y1[i] = a, y2[i] = b;
    }
    double rr = 0, rs = 0, ss = 0;
    for (int j = 0; j < n; j++) rr += r[j] * r[j], rs += r[j] * s[j], ss += s[j] * s[j];
    double det = rr * ss - rs * rs;
    double ua = ss / det, ub = -rs / det, va = -rs / det, vb = rr / det; /* u.r = 1, u.s = 0, v.r = 0, v.s = 1 */
    for (int i = 0; i < n; i++)
        for (int j = 0; j < n; j++)
            C[(size_t)i * n + j] = y1[i] * (ua * r[j] + ub * s[j]) + y2[i] * (va * r[j] + vb * s[j]);
    free(r);
}
