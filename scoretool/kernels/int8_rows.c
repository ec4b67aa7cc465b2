/* y = x @ W.T for few rows of fp32 x and int8 W, with AVX-512 VNNI (see scoretool/int8_kernel.py).

   Each row of x is quantized on its own: u8 = round((x - lo) * 255 / span) with lo, span its own
   minimum and range, so its result never depends on the other rows. The u8 x s8 products are summed
   exactly in int32 (vpdpbusd), then y = span/255 * scale[n] * acc + lo * rowsum[n] (+ bias[n]), where
   rowsum[n] is the sum of row n of the dequantized weight.

   The weight is packed in tiles of 64 output channels: tile t holds, for every group of 4 inputs, the
   64 channels' 4 bytes (w[t][k/4][64][4]), so a tile streams from memory in order. Output channels are
   padded to a multiple of 64 and inputs to a multiple of 64 with zero weights. Tiles are split between
   the OpenMP threads (torch's own libgomp: the same thread pool as torch's kernels). */
#include <math.h>
#include <stdlib.h>
#include <string.h>

#include "int8_rows.h"

#define ROWS 6          /* rows per pass over a tile: 6 x 4 accumulators stay in registers */
#define PREFETCH 1024   /* bytes ahead of the tile being read (measured: 1024 is best of 1-8 KB) */

/* Vectorized, with the same result as the scalar
       mn = min(r), mx = max(r); q[k] = nearbyintf((r[k] - mn) * (255 / (mx - mn)))
   (min and max are exact; cvtps rounds to nearest even, as nearbyintf does in the default mode). */
static void quantize_rows(const float *x, int64_t m_count, int64_t k_in, int64_t k_pad, uint8_t *q, float *lo,
                          float *step) {
    const int64_t whole = k_in / 16 * 16;
    const __mmask16 tail = (__mmask16)((1u << (k_in - whole)) - 1);
    for (int64_t m = 0; m < m_count; m++) {
        const float *r = x + m * k_in;
        __m512 vmn = _mm512_set1_ps(r[0]), vmx = vmn;
        for (int64_t k = 0; k < whole; k += 16) {
            const __m512 v = _mm512_loadu_ps(r + k);
            vmn = _mm512_min_ps(vmn, v), vmx = _mm512_max_ps(vmx, v);
        }
        if (tail) {
            vmn = _mm512_min_ps(vmn, _mm512_mask_loadu_ps(vmn, tail, r + whole));
            vmx = _mm512_max_ps(vmx, _mm512_mask_loadu_ps(vmx, tail, r + whole));
        }
        const float mn = _mm512_reduce_min_ps(vmn);
        float span = _mm512_reduce_max_ps(vmx) - mn;
        if (span < 1e-30f) span = 1e-30f;
        const __m512 inv = _mm512_set1_ps(255.0f / span), low = _mm512_set1_ps(mn);
        uint8_t *qr = q + m * k_pad;
        for (int64_t k = 0; k < whole; k += 16) {
            const __m512 v = _mm512_mul_ps(_mm512_sub_ps(_mm512_loadu_ps(r + k), low), inv);
            _mm_storeu_si128((__m128i *)(qr + k), _mm512_cvtusepi32_epi8(_mm512_cvtps_epi32(v)));
        }
        if (tail) {
            const __m512 v = _mm512_mul_ps(_mm512_sub_ps(_mm512_maskz_loadu_ps(tail, r + whole), low), inv);
            _mm512_mask_cvtusepi32_storeu_epi8(qr + whole, tail, _mm512_cvtps_epi32(v));
        }
        memset(qr + k_in, 0, (size_t)(k_pad - k_in));
        lo[m] = mn;
        step[m] = span / 255.0f;
    }
}

__m512 exp_ps(__m512 x) {
    /* e^x = 2^n * e^r, n = round(x / ln 2), |r| <= ln(2) / 2 (Cody-Waite), e^r by its Taylor series */
    x = _mm512_max_ps(_mm512_min_ps(x, _mm512_set1_ps(88.7f)), _mm512_set1_ps(-104.0f));
    const __m512 n = _mm512_roundscale_ps(_mm512_mul_ps(x, _mm512_set1_ps(1.44269504f)), _MM_FROUND_TO_NEAREST_INT);
    __m512 r = _mm512_fnmadd_ps(n, _mm512_set1_ps(0.693359375f), x);
    r = _mm512_fnmadd_ps(n, _mm512_set1_ps(-2.12194440e-4f), r);
    __m512 e = _mm512_set1_ps(1.0f / 5040);
    e = _mm512_fmadd_ps(e, r, _mm512_set1_ps(1.0f / 720));
    e = _mm512_fmadd_ps(e, r, _mm512_set1_ps(1.0f / 120));
    e = _mm512_fmadd_ps(e, r, _mm512_set1_ps(1.0f / 24));
    e = _mm512_fmadd_ps(e, r, _mm512_set1_ps(1.0f / 6));
    e = _mm512_fmadd_ps(e, r, _mm512_set1_ps(0.5f));
    e = _mm512_fmadd_ps(e, r, _mm512_set1_ps(1.0f));
    e = _mm512_fmadd_ps(e, r, _mm512_set1_ps(1.0f));
    return _mm512_scalef_ps(e, n);
}

/* GELU as torch computes it on the CPU: x / 2 * (1 + erf(x / sqrt 2)), erf by Abramowitz and Stegun's
   7.1.26 (absolute error under 1.5e-7), as ATen's vectorized erf. */
static inline __m512 gelu_ps(__m512 x) {
    const __m512 z = _mm512_mul_ps(x, _mm512_set1_ps(0.70710678f));
    const __m512 a = _mm512_abs_ps(z);
    const __m512 t = _mm512_div_ps(_mm512_set1_ps(1.0f), _mm512_fmadd_ps(a, _mm512_set1_ps(0.3275911f), _mm512_set1_ps(1.0f)));
    __m512 p = _mm512_set1_ps(1.061405429f);
    p = _mm512_fmadd_ps(p, t, _mm512_set1_ps(-1.453152027f));
    p = _mm512_fmadd_ps(p, t, _mm512_set1_ps(1.421413741f));
    p = _mm512_fmadd_ps(p, t, _mm512_set1_ps(-0.284496736f));
    p = _mm512_fmadd_ps(p, t, _mm512_set1_ps(0.254829592f));
    p = _mm512_mul_ps(p, t);
    const __m512 erf_abs = _mm512_fnmadd_ps(p, exp_ps(_mm512_mul_ps(_mm512_sub_ps(_mm512_setzero_ps(), a), a)), _mm512_set1_ps(1.0f));
    const __m512 erf = _mm512_mask_sub_ps(erf_abs, _mm512_cmp_ps_mask(z, _mm512_setzero_ps(), _CMP_LT_OQ), _mm512_setzero_ps(), erf_abs);
    return _mm512_mul_ps(_mm512_mul_ps(x, _mm512_set1_ps(0.5f)), _mm512_add_ps(erf, _mm512_set1_ps(1.0f)));
}

/* What a tile's call writes: where, and what it adds to the sums' values. */
typedef struct {
    const float *lo, *step, *scale, *rowsum, *bias, *residual;
    float *y;
    int64_t n_out;
    int gelu;
} epilogue;

/* y[m, n0..n0+63] from the int32 sums of row m against one tile's 64 channels (both paths share it,
   so they give the same bits). */
static inline void store_row(const __m512i acc[4], const epilogue *e, int64_t m, int64_t n0) {
    const __m512 st = _mm512_set1_ps(e->step[m]), l = _mm512_set1_ps(e->lo[m]);
    for (int b = 0; b < 4; b++) {
        const int64_t n = n0 + b * 16;
        if (n >= e->n_out) break;
        __m512 v = _mm512_mul_ps(_mm512_cvtepi32_ps(acc[b]), _mm512_mul_ps(st, _mm512_loadu_ps(e->scale + n)));
        v = _mm512_fmadd_ps(l, _mm512_loadu_ps(e->rowsum + n), v);
        if (e->bias) v = _mm512_add_ps(v, _mm512_loadu_ps(e->bias + n));
        if (e->gelu) v = gelu_ps(v);
        const int64_t left = e->n_out - n;
        const __mmask16 keep = left >= 16 ? (__mmask16)0xFFFF : (__mmask16)((1u << left) - 1);
        if (e->residual) v = _mm512_add_ps(_mm512_maskz_loadu_ps(keep, e->residual + m * e->n_out + n), v);
        _mm512_mask_storeu_ps(e->y + m * e->n_out + n, keep, v);
    }
}

/* One tile with AVX-512 VNNI: ROWS rows at a time, 4 x ROWS accumulators in registers. */
static void tile_vnni(const uint8_t *q, int64_t m_count, int64_t k_pad, const int8_t *tile, int64_t n0,
                      const epilogue *e) {
    const int64_t groups = k_pad / 4;
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
        for (int r = 0; r < rows; r++) store_row(acc[r], e, m0 + r, n0);
    }
}

#ifdef __AMX_INT8__
/* AMX: tiles 0-3 hold the 16 x 16 int32 sums of 16 rows against the tile's 4 groups of 16 channels,
   tile 4 16 rows x 64 inputs of u8 activations, tiles 5 and 6 the weights: 16 groups of 4 inputs x
   16 channels x 4 bytes, which the packed layout already is (at a stride of 256 bytes). */
#include <sys/syscall.h>
#include <unistd.h>
#define ARCH_REQ_XCOMP_PERM 0x1023
#define XFEATURE_XTILEDATA 18
#define AMX_PREFETCH 4096 /* bytes ahead: the next 64 inputs of the tile */

struct tile_config {
    uint8_t palette, start_row, reserved[14];
    uint16_t colsb[16];
    uint8_t rows[16];
};

/* Whether this process may use AMX's tile registers (Linux asks each process to request them). */
int int8_rows_amx_ready(void) { return syscall(SYS_arch_prctl, ARCH_REQ_XCOMP_PERM, XFEATURE_XTILEDATA) == 0; }

static void amx_configure(void) {
    struct tile_config config;
    memset(&config, 0, sizeof config);
    config.palette = 1;
    for (int t = 0; t < 7; t++) config.rows[t] = 16, config.colsb[t] = 64;
    _tile_loadconfig(&config);
}

/* q holds m_count rows padded with zero rows to a multiple of 16. */
static void tile_amx(const uint8_t *q, int64_t m_count, int64_t k_pad, const int8_t *tile, int64_t n0,
                     const epilogue *e) {
    int32_t sums[16 * 64] __attribute__((aligned(64)));
    for (int64_t m0 = 0; m0 < m_count; m0 += 16) {
        _tile_zero(0);
        _tile_zero(1);
        _tile_zero(2);
        _tile_zero(3);
        for (int64_t c = 0; c < k_pad; c += 64) {
            const int8_t *wc = tile + c * 64; /* 16 groups of 256 bytes */
            for (int p = 0; p < 4096; p += 64) _mm_prefetch((const char *)(wc + AMX_PREFETCH + p), _MM_HINT_T0);
            _tile_loadd(4, q + m0 * k_pad + c, k_pad);
            _tile_loadd(5, wc, 256);
            _tile_dpbusd(0, 4, 5);
            _tile_loadd(6, wc + 64, 256);
            _tile_dpbusd(1, 4, 6);
            _tile_loadd(5, wc + 128, 256);
            _tile_dpbusd(2, 4, 5);
            _tile_loadd(6, wc + 192, 256);
            _tile_dpbusd(3, 4, 6);
        }
        _tile_stored(0, sums, 256);
        _tile_stored(1, sums + 16, 256);
        _tile_stored(2, sums + 32, 256);
        _tile_stored(3, sums + 48, 256);
        const int rows = (m_count - m0) < 16 ? (int)(m_count - m0) : 16;
        for (int r = 0; r < rows; r++) {
            const __m512i acc[4] = {_mm512_load_si512(sums + r * 64), _mm512_load_si512(sums + r * 64 + 16),
                                    _mm512_load_si512(sums + r * 64 + 32), _mm512_load_si512(sums + r * 64 + 48)};
            store_row(acc, e, m0 + r, n0);
        }
    }
}
#else
int int8_rows_amx_ready(void) { return 0; }
#endif

/* x (m_count, k_in) fp32 contiguous; y (m_count, n_out) fp32. AMX (where int8_rows_amx_ready() said
   yes) from AMX_MIN_ROWS rows: below that, VNNI streams the weights faster (measured). Many rows (BLIP's
   vision encoder: thousands) go in chunks of CHUNK_ROWS, every tile for one chunk before the next, so
   the chunk's quantized rows stay in the core's cache while the weight is read again (from L3) for
   each chunk; a few rows are one chunk, each tile read once. */
#define AMX_MIN_ROWS 5
#define CHUNK_ROWS 96 /* a multiple of 16 (AMX) and of ROWS; 96 x 3072 bytes fit a 1 MB L2 */
int linear_into(const packed_linear *p, const float *x, int64_t m_count, float *y, const float *residual, int gelu,
                int amx) {
    const int64_t m_pad = (m_count + 15) / 16 * 16; /* AMX reads 16 rows at a time */
    uint8_t *q = calloc((size_t)(m_pad * p->k_pad), 1);
    float *lo = malloc((size_t)m_count * sizeof(float)), *step = malloc((size_t)m_count * sizeof(float));
    if (!q || !lo || !step) {
        free(q), free(lo), free(step);
        return -1;
    }
    const int64_t tiles = p->n_pad / 64, k_pad = p->k_pad, chunks = (m_count + CHUNK_ROWS - 1) / CHUNK_ROWS;
    amx = amx && m_count >= AMX_MIN_ROWS;
#pragma omp parallel
    {
#pragma omp for schedule(static)
        for (int64_t m = 0; m < m_count; m++) quantize_rows(x + m * p->k_in, 1, p->k_in, k_pad, q + m * k_pad, lo + m, step + m);
#ifdef __AMX_INT8__
        if (amx) amx_configure(); /* per thread, every call: other libraries (oneDNN) load their own */
#endif
#pragma omp for collapse(2) schedule(static)
        for (int64_t c = 0; c < chunks; c++)
            for (int64_t t = 0; t < tiles; t++) {
                const int8_t *tile = p->w + t * k_pad * 64;
                const int64_t m0 = c * CHUNK_ROWS, rows = m_count - m0 < CHUNK_ROWS ? m_count - m0 : CHUNK_ROWS;
                const epilogue chunk = {lo + m0, step + m0, p->scale, p->rowsum, p->bias,
                                        residual ? residual + m0 * p->n_out : NULL, y + m0 * p->n_out, p->n_out, gelu};
#ifdef __AMX_INT8__
                if (amx) {
                    tile_amx(q + m0 * k_pad, rows, k_pad, tile, t * 64, &chunk);
                    continue;
                }
#endif
                tile_vnni(q + m0 * k_pad, rows, k_pad, tile, t * 64, &chunk);
            }
#ifdef __AMX_INT8__
        if (amx) _tile_release();
#endif
    }
    free(q), free(lo), free(step);
    return 0;
}

/* linear_into for Python (scoretool/int8_kernel.py): w packed (n_pad / 64 tiles of k_pad * 64 bytes);
   scale, rowsum (and bias, or NULL) of n_pad floats. */
int int8_rows_linear(const float *x, int64_t m_count, int64_t k_in, int64_t k_pad, const int8_t *w, int64_t n_out,
                     int64_t n_pad, const float *scale, const float *rowsum, const float *bias, float *y, int gelu,
                     int amx) {
    const packed_linear p = {w, scale, rowsum, bias, k_in, k_pad, n_out, n_pad};
    return linear_into(&p, x, m_count, y, NULL, gelu, amx);
}
