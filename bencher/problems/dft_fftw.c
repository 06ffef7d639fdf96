/* The vendor baseline of `dft`: FFTW 3's complex-to-complex transform behind the candidate entry point.
 * Built only as a trusted kernel (linked with -lfftw3); candidates can never link a library.
 * FFTW wants interleaved complex arrays, the entry point has split ones: the plan (FFTW_ESTIMATE, one thread)
 * and its two interleaved buffers are made at the first call for a size and kept, so the timed calls measure
 * the copy in, fftw_execute and the copy out, O(n) around FFTW's O(n log n). */
#include <fftw3.h>

void dft(int n, const double *re, const double *im, double *re_out, double *im_out) {
    static fftw_plan plan;
    static fftw_complex *in, *out;
    static int planned_n;
    if (planned_n != n) {
        if (plan) fftw_destroy_plan(plan);
        fftw_free(in);
        fftw_free(out);
        in = fftw_alloc_complex((size_t)n);
        out = fftw_alloc_complex((size_t)n);
        plan = fftw_plan_dft_1d(n, in, out, FFTW_FORWARD, FFTW_ESTIMATE);
        planned_n = n;
    }
    for (int j = 0; j < n; j++) in[j][0] = re[j], in[j][1] = im[j];
    fftw_execute(plan);
    for (int k = 0; k < n; k++) re_out[k] = out[k][0], im_out[k] = out[k][1];
}
