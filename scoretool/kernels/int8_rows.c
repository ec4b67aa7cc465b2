/* y = x @ W.T for few rows of fp32 x and int8 W, with AVX-512 VNNI (see scoretool/int8_kernel.py).

   Each row of x is quantized on its own: u8 = round((x - lo) * 255 / span) with lo, span its own
   minimum and range, so its result never depends on the other rows. The u8 x s8 products are summed
   exactly in int32 (vpdpbusd), then y = span/255 * scale[n] * acc + lo * rowsum[n] (+ bias[n]), where
   rowsum[n] is the sum of row n of the dequantized weight.

   The weight is packed in tiles of 64 output channels: tile t holds, for every group of 4 inputs, the
   64 channels' 4 bytes (w[t][k/4][64][4]), so a tile streams from memory in order. Output channels are
   padded to a multiple of 64 and inputs to a multiple of 4 with zero weights. Tiles are split between
   the OpenMP threads (torch's own libgomp: the same thread pool as torch's kernels). */
#include <immintrin.h>
#include <math.h>
#include <stdint.h>
#include <stdlib.h>
#include <string.h>

#define ROWS 6          /* rows per pass over a tile: 6 x 4 accumulators stay in registers */
#define PREFETCH 1024   /* bytes ahead of the tile being read (measured: 1024 is best of 1-8 KB) */

static void quantize_rows(const float *x, int64_t m_count, int64_t k_in, int64_t k_pad, uint8_t *q, float *lo,
                          float *step) {
    for (int64_t m = 0; m < m_count; m++) {
        const float *r = x + m * k_in;
        float mn = r[0], mx = r[0];
        for (int64_t k = 1; k < k_in; k++) {
            mn = r[k] < mn ? r[k] : mn;
            mx = r[k] > mx ? r[k] : mx;
        }
        float span = mx - mn;
        if (span < 1e-30f) span = 1e-30f;
        const float inv = 255.0f / span;
        uint8_t *qr = q + m * k_pad;
        for (int64_t k = 0; k < k_in; k++) qr[k] = (uint8_t)nearbyintf((r[k] - mn) * inv);
        memset(qr + k_in, 0, (size_t)(k_pad - k_in));
        lo[m] = mn;
        step[m] = span / 255.0f;
    }
}

/* x (m_count, k_in) fp32 contiguous; w packed (n_pad / 64 tiles of k_pad * 64 bytes); scale, rowsum
   (and bias, or NULL) of n_pad floats; y (m_count, n_out) fp32. Returns 0, or -1 if out of memory. */
int int8_rows_linear(const float *x, int64_t m_count, int64_t k_in, int64_t k_pad, const int8_t *w, int64_t n_out,
                     int64_t n_pad, const float *scale, const float *rowsum, const float *bias, float *y) {
    uint8_t *q = malloc((size_t)(m_count * k_pad));
    float *lo = malloc((size_t)m_count * sizeof(float)), *step = malloc((size_t)m_count * sizeof(float));
    if (!q || !lo || !step) {
        free(q), free(lo), free(step);
        return -1;
    }
    quantize_rows(x, m_count, k_in, k_pad, q, lo, step);
    const int64_t groups = k_pad / 4, tiles = n_pad / 64;
#pragma omp parallel for schedule(static)
    for (int64_t t = 0; t < tiles; t++) {
        const int8_t *tile = w + t * groups * 256;
        for (int64_t m0 = 0; m0 < m_count; m0 += ROWS) {
            const int rows = (m_count - m0) < ROWS ? (int)(m_count - m0) : ROWS;
            __m512i acc[ROWS][4];
            for (int r = 0; r < ROWS; r++)
                for (int b = 0; b < 4; b++) acc[r][b] = _mm512_setzero_si512();
            const uint8_t *qm = q + m0 * k_pad;
            for (int64_t g = 0; g < groups; g++) {
                const int8_t *wg = tile + g * 256;
                for (int p = 0; p < 256; p += 64) _mm_prefetch((const char *)(wg + PREFETCH + p), _MM_HINT_T0);
                const __m512i w0 = _mm512_loadu_si512(wg), w1 = _mm512_loadu_si512(wg + 64);
                const __m512i w2 = _mm512_loadu_si512(wg + 128), w3 = _mm512_loadu_si512(wg + 192);
                for (int r = 0; r < rows; r++) {
                    int32_t a;
                    memcpy(&a, qm + r * k_pad + g * 4, 4);
                    const __m512i av = _mm512_set1_epi32(a);
                    acc[r][0] = _mm512_dpbusd_epi32(acc[r][0], av, w0);
                    acc[r][1] = _mm512_dpbusd_epi32(acc[r][1], av, w1);
                    acc[r][2] = _mm512_dpbusd_epi32(acc[r][2], av, w2);
                    acc[r][3] = _mm512_dpbusd_epi32(acc[r][3], av, w3);
                }
            }
            for (int r = 0; r < rows; r++) {
                const int64_t m = m0 + r;
                const __m512 st = _mm512_set1_ps(step[m]), l = _mm512_set1_ps(lo[m]);
                for (int b = 0; b < 4; b++) {
                    const int64_t n = t * 64 + b * 16;
                    if (n >= n_out) break;
                    __m512 v = _mm512_mul_ps(_mm512_cvtepi32_ps(acc[r][b]), _mm512_mul_ps(st, _mm512_loadu_ps(scale + n)));
                    v = _mm512_fmadd_ps(l, _mm512_loadu_ps(rowsum + n), v);
                    if (bias) v = _mm512_add_ps(v, _mm512_loadu_ps(bias + n));
                    const int64_t left = n_out - n;
                    const __mmask16 keep = left >= 16 ? (__mmask16)0xFFFF : (__mmask16)((1u << left) - 1);
                    _mm512_mask_storeu_ps(y + m * n_out + n, keep, v);
                }
            }
        }
    }
    free(q), free(lo), free(step);
    return 0;
}
