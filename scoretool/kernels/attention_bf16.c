/* Attention without a mask (BLIP's vision encoder: 577 tokens, heads of 64) with bf16 products and fp32
   sums, AVX-512 BF16 (see scoretool/int8_kernel.py's `attention`).

   For each (image, head): K and V are rounded to bf16 and packed for vdpbf16ps, which multiplies pairs
   of bf16 and adds both products to an fp32 lane. Scores: a lane per key, pairs along the head's 64
   dims (K as [16 keys][32 dim pairs] blocks, transposed); out = softmax(scores) V: a lane per dim,
   pairs along the keys (V as [key pair][64 dims][2]). The softmax runs in fp32 over the whole row
   (577 scores fit the cache), its exponentials rounded to bf16 for the products, the row divided by
   their fp32 sum at the end. On Zen 4 vdpbf16ps does 2.5x the multiply-adds of fp32 FMA. */
#include <stdint.h>
#include <stdlib.h>
#include <string.h>

#include "int8_rows.h"

#ifdef __AVX512BF16__
#define HEAD 64  /* dims per head: the only size this kernel takes */
#define QROWS 6  /* query rows at a time: 6 x 4 accumulators in registers */
#define KBLOCKS 4 /* blocks of 16 keys per pass over the query rows */

int kernels_attention_ready(void) { return 1; }

/* 16 fp32 -> 16 bf16 (round to nearest even) as a 256-bit vector */
static inline __m256i bf16_of(__m512 x) { return (__m256i)_mm512_cvtneps_pbh(x); }

/* K rows j0.. (up to 16 keys) of one head -> block[32 pairs][16 keys] of bf16 pairs; missing keys 0. */
static void pack_keys(const float *k, int64_t stride, int64_t keys, uint32_t *block) {
    uint32_t rows[16][HEAD / 2] __attribute__((aligned(64)));
    memset(rows, 0, sizeof rows);
    for (int64_t j = 0; j < keys; j++) {
        const float *r = k + j * stride;
        _mm512_store_si512(rows[j], (__m512i)_mm512_cvtne2ps_pbh(_mm512_loadu_ps(r + 16), _mm512_loadu_ps(r)));
        _mm512_store_si512(rows[j] + 16, (__m512i)_mm512_cvtne2ps_pbh(_mm512_loadu_ps(r + 48), _mm512_loadu_ps(r + 32)));
    }
    for (int p = 0; p < HEAD / 2; p++)
        for (int j = 0; j < 16; j++) block[p * 16 + j] = rows[j][p];
}

/* V rows j, j+1 of one head -> pairs[64 dims][2] of bf16 (row j+1 zero where it is past the end). */
static void pack_values(const float *v0, const float *v1, uint16_t *pairs) {
    const __m512i interleave = _mm512_set_epi16(31, 15, 30, 14, 29, 13, 28, 12, 27, 11, 26, 10, 25, 9, 24, 8, 23, 7,
                                                22, 6, 21, 5, 20, 4, 19, 3, 18, 2, 17, 1, 16, 0);
    for (int d = 0; d < HEAD; d += 16) {
        const __m512 odd = v1 ? _mm512_loadu_ps(v1 + d) : _mm512_setzero_ps();
        const __m512i both = (__m512i)_mm512_cvtne2ps_pbh(odd, _mm512_loadu_ps(v0 + d)); /* v0's 16, then v1's */
        _mm512_storeu_si512(pairs + d * 2, _mm512_permutexvar_epi16(interleave, both));
    }
}

/* Scores of QROWS query rows (q: bf16 pairs, [row][32]) against `blocks` (<= KBLOCKS) key blocks. */
static inline void scores(const uint32_t *q, const uint32_t *kp, int blocks, float *s, int64_t s_stride) {
    __m512 acc[QROWS][KBLOCKS];
    for (int r = 0; r < QROWS; r++)
        for (int b = 0; b < KBLOCKS; b++) acc[r][b] = _mm512_setzero_ps();
    for (int p = 0; p < HEAD / 2; p++) {
        __m512bh kv[KBLOCKS];
        for (int b = 0; b < KBLOCKS; b++)
            kv[b] = b < blocks ? (__m512bh)_mm512_load_si512(kp + (int64_t)b * 512 + p * 16) : (__m512bh)_mm512_setzero_si512();
        for (int r = 0; r < QROWS; r++) {
            const __m512bh qv = (__m512bh)_mm512_set1_epi32((int)q[r * 32 + p]);
            for (int b = 0; b < KBLOCKS; b++) acc[r][b] = _mm512_dpbf16_ps(acc[r][b], qv, kv[b]);
        }
    }
    for (int r = 0; r < QROWS; r++)
        for (int b = 0; b < blocks; b++) _mm512_store_ps(s + r * s_stride + b * 16, acc[r][b]);
}

/* qkv (batch, tokens, 3, heads, 64) fp32 contiguous, as BLIP's fused qkv Linear writes it; out (batch,
   tokens, heads, 64) fp32. scale multiplies the scores. Returns 0, or -1 if out of memory. */
int attention_bf16(const float *qkv, int64_t batch, int64_t tokens, int64_t heads, float scale, float *out) {
    const int64_t width = heads * HEAD, stride = 3 * width;
    const int64_t kblocks = (tokens + 15) / 16, kpad = kblocks * 16;
    int failed = 0;
#pragma omp parallel reduction(| : failed)
    {
        uint32_t *kp = aligned_alloc(64, (size_t)(kpad * HEAD * 2)); /* [block][32 pairs][16 keys] */
        uint16_t *vp = aligned_alloc(64, (size_t)(kpad * HEAD * 2)); /* [key pair][64][2] */
        float *s = aligned_alloc(64, (size_t)(QROWS * kpad * 4));
        uint16_t *pr = aligned_alloc(64, (size_t)(QROWS * kpad * 2)); /* bf16 exponentials, [row][kpad] */
        uint32_t q[QROWS * 32] __attribute__((aligned(64)));
        float sums[QROWS];
        if (!kp || !vp || !s || !pr) failed = 1;
#pragma omp for schedule(static)
        for (int64_t bh = 0; bh < batch * heads; bh++) {
            if (failed) continue;
            const float *base = qkv + (bh / heads) * tokens * stride + (bh % heads) * HEAD;
            const float *k = base + width, *v = base + 2 * width;
            for (int64_t b = 0; b < kblocks; b++) {
                const int64_t keys = tokens - b * 16 < 16 ? tokens - b * 16 : 16;
                pack_keys(k + b * 16 * stride, stride, keys, kp + b * 512);
            }
            for (int64_t j = 0; j < kpad; j += 2)
                if (j < tokens) pack_values(v + j * stride, j + 1 < tokens ? v + (j + 1) * stride : NULL, vp + j * HEAD);
                else memset(vp + j * HEAD, 0, HEAD * 4);
            float *o_base = out + (bh / heads) * tokens * width + (bh % heads) * HEAD;
            for (int64_t i0 = 0; i0 < tokens; i0 += QROWS) {
                const int rows = tokens - i0 < QROWS ? (int)(tokens - i0) : QROWS;
                memset(q, 0, sizeof q);
                for (int r = 0; r < rows; r++) {
                    const float *qr = base + (i0 + r) * stride;
                    const __m512 sc = _mm512_set1_ps(scale);
                    _mm512_store_si512(q + r * 32, (__m512i)_mm512_cvtne2ps_pbh(_mm512_mul_ps(_mm512_loadu_ps(qr + 16), sc),
                                                                                _mm512_mul_ps(_mm512_loadu_ps(qr), sc)));
                    _mm512_store_si512(q + r * 32 + 16, (__m512i)_mm512_cvtne2ps_pbh(_mm512_mul_ps(_mm512_loadu_ps(qr + 48), sc),
                                                                                     _mm512_mul_ps(_mm512_loadu_ps(qr + 32), sc)));
                }
                for (int64_t b = 0; b < kblocks; b += KBLOCKS)
                    scores(q, kp + b * 512, kblocks - b < KBLOCKS ? (int)(kblocks - b) : KBLOCKS, s + b * 16, kpad);
                for (int r = 0; r < rows; r++) { /* softmax's exponentials in fp32, kept as bf16 */
                    float *sr = s + r * kpad;
                    for (int64_t j = tokens; j < kpad; j++) sr[j] = -1e30f;
                    __m512 mx = _mm512_set1_ps(-1e30f);
                    for (int64_t j = 0; j < kpad; j += 16) mx = _mm512_max_ps(mx, _mm512_load_ps(sr + j));
                    const __m512 top = _mm512_set1_ps(_mm512_reduce_max_ps(mx));
                    __m512 sum = _mm512_setzero_ps();
                    for (int64_t j = 0; j < kpad; j += 16) {
                        const __m512 e = exp_ps(_mm512_sub_ps(_mm512_load_ps(sr + j), top));
                        sum = _mm512_add_ps(sum, e);
                        _mm256_store_si256((__m256i *)(pr + r * kpad + j), bf16_of(e));
                    }
                    sums[r] = _mm512_reduce_add_ps(sum);
                }
                __m512 acc[QROWS][HEAD / 16];
                for (int r = 0; r < QROWS; r++)
                    for (int d = 0; d < HEAD / 16; d++) acc[r][d] = _mm512_setzero_ps();
                for (int64_t j = 0; j < kpad; j += 2) {
                    const uint16_t *vj = vp + j * HEAD;
                    const __m512bh v0 = (__m512bh)_mm512_load_si512(vj), v1 = (__m512bh)_mm512_load_si512(vj + 32);
                    const __m512bh v2 = (__m512bh)_mm512_load_si512(vj + 64), v3 = (__m512bh)_mm512_load_si512(vj + 96);
                    for (int r = 0; r < rows; r++) {
                        uint32_t pair;
                        memcpy(&pair, pr + r * kpad + j, 4);
                        const __m512bh pv = (__m512bh)_mm512_set1_epi32((int)pair);
                        acc[r][0] = _mm512_dpbf16_ps(acc[r][0], pv, v0);
                        acc[r][1] = _mm512_dpbf16_ps(acc[r][1], pv, v1);
                        acc[r][2] = _mm512_dpbf16_ps(acc[r][2], pv, v2);
                        acc[r][3] = _mm512_dpbf16_ps(acc[r][3], pv, v3);
                    }
                }
                for (int r = 0; r < rows; r++) {
                    const __m512 inv = _mm512_set1_ps(1.0f / sums[r]);
                    for (int d = 0; d < HEAD / 16; d++)
                        _mm512_storeu_ps(o_base + (i0 + r) * width + d * 16, _mm512_mul_ps(acc[r][d], inv));
                }
            }
        }
        free(kp), free(vp), free(s), free(pr);
    }
    return failed ? -1 : 0;
}
#else
int kernels_attention_ready(void) { return 0; }
int attention_bf16(const float *qkv, int64_t batch, int64_t tokens, int64_t heads, float scale, float *out) {
    (void)qkv, (void)batch, (void)tokens, (void)heads, (void)scale, (void)out;
    return -1;
}
#endif
