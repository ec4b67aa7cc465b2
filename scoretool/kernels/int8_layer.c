/* One MusicGen decoder layer for one decoding step, on int8 weights (see scoretool/music/decoder.py,
   which calls it through scoretool/int8_kernel.py's `Int8Layer`): the same computation as the
   layer's torch ops (pre-norm self-attention over the KV cache, cross-attention over the text,
   GELU feed-forward, each added to the residual stream) in one call instead of ~30 small ops.

   Each row's numbers depend on that row alone (layer norms and quantization per row, attention per
   row and head), so a row's result is the same whatever else shares the call. */
#include <math.h>
#include <stdlib.h>
#include <string.h>

#include "int8_rows.h"

typedef struct {
    const float *weight, *bias;
    float eps;
} layer_norm;

typedef struct {
    layer_norm ln1, ln2, ln3;
    packed_linear qkv, o, cq, co, fc1, fc2;
} decoder_layer;

/* Keys and values, (rows, heads, length, head_dim) each, in fp32 or bf16. */
typedef struct {
    void *k, *v;
    int64_t length; /* positions allocated per row and head */
    int bf16;
} kv_block;

static inline __mmask16 lanes(int64_t left) { return left >= 16 ? (__mmask16)0xFFFF : (__mmask16)((1u << left) - 1); }

static inline __m512 load_kv(const kv_block *kv, const void *base, int64_t offset, __mmask16 keep) {
    if (!kv->bf16) return _mm512_maskz_loadu_ps(keep, (const float *)base + offset);
    const __m256i h = _mm256_maskz_loadu_epi16(keep, (const uint16_t *)base + offset);
    return _mm512_castsi512_ps(_mm512_slli_epi32(_mm512_cvtepu16_epi32(h), 16));
}

/* fp32 -> bf16, rounding to nearest even (as torch's casts; no NaNs come here). */
static inline uint16_t to_bf16(float f) {
    uint32_t u;
    memcpy(&u, &f, 4);
    return (uint16_t)((u + 0x7FFF + ((u >> 16) & 1)) >> 16);
}

static void norm_rows(const float *x, int64_t rows, int64_t d, const layer_norm *n, float *y) {
    for (int64_t r = 0; r < rows; r++) {
        const float *xr = x + r * d;
        float *yr = y + r * d;
        __m512 sum = _mm512_setzero_ps();
        for (int64_t k = 0; k < d; k += 16) sum = _mm512_add_ps(sum, _mm512_maskz_loadu_ps(lanes(d - k), xr + k));
        const __m512 mean = _mm512_set1_ps(_mm512_reduce_add_ps(sum) / (float)d);
        __m512 sq = _mm512_setzero_ps();
        for (int64_t k = 0; k < d; k += 16) {
            const __mmask16 keep = lanes(d - k);
            const __m512 c = _mm512_maskz_sub_ps(keep, _mm512_maskz_loadu_ps(keep, xr + k), mean);
            sq = _mm512_fmadd_ps(c, c, sq);
        }
        const __m512 inv = _mm512_set1_ps(1.0f / sqrtf(_mm512_reduce_add_ps(sq) / (float)d + n->eps));
        for (int64_t k = 0; k < d; k += 16) {
            const __mmask16 keep = lanes(d - k);
            const __m512 c = _mm512_mul_ps(_mm512_sub_ps(_mm512_maskz_loadu_ps(keep, xr + k), mean), inv);
            const __m512 v = _mm512_fmadd_ps(c, _mm512_maskz_loadu_ps(keep, n->weight + k), _mm512_maskz_loadu_ps(keep, n->bias + k));
            _mm512_mask_storeu_ps(yr + k, keep, v);
        }
    }
}

/* out[r, h*hd..] = softmax(q . k_t * scaling over t < length, where mask[r, t] if mask) @ v, for every
   row r and head h; q and out are (rows, heads * hd) with a row stride of q_stride and heads * hd. A
   row whose every position is masked gets zeros (as torch's SDPA). Returns 0, or -1 if out of memory. */
static int attend(const float *q, int64_t q_stride, const kv_block *kv, int64_t length, const uint8_t *mask,
                   int64_t rows, int64_t heads, int64_t hd, float scaling, float *out) {
    int failed = 0;
#pragma omp parallel
    {
        float *scores = malloc((size_t)length * sizeof(float));
        if (!scores) {
#pragma omp atomic write
            failed = 1;
        }
#pragma omp for schedule(static)
        for (int64_t rh = 0; rh < rows * heads; rh++) {
            if (!scores) continue;
            const int64_t r = rh / heads, h = rh % heads;
            const float *qv = q + r * q_stride + h * hd;
            const int64_t base = rh * kv->length * hd;
            const uint8_t *m = mask ? mask + r * length : NULL;
            float best = -INFINITY;
            for (int64_t t = 0; t < length; t++) {
                if (m && !m[t]) continue;
                __m512 dot = _mm512_setzero_ps();
                for (int64_t j = 0; j < hd; j += 16) {
                    const __mmask16 keep = lanes(hd - j);
                    dot = _mm512_fmadd_ps(_mm512_maskz_loadu_ps(keep, qv + j), load_kv(kv, kv->k, base + t * hd + j, keep), dot);
                }
                scores[t] = _mm512_reduce_add_ps(dot) * scaling;
                best = scores[t] > best ? scores[t] : best;
            }
            float *o = out + r * heads * hd + h * hd;
            memset(o, 0, (size_t)hd * sizeof(float));
            if (best == -INFINITY) continue; /* every position masked */
            for (int64_t t = 0; t < length; t += 16) { /* the weights, unnormalized */
                const __mmask16 keep = lanes(length - t);
                __mmask16 live = keep;
                if (m) live &= _mm512_cmpneq_epi32_mask(_mm512_cvtepu8_epi32(_mm_maskz_loadu_epi8(keep, m + t)), _mm512_setzero_si512());
                const __m512 e = exp_ps(_mm512_sub_ps(_mm512_maskz_loadu_ps(live, scores + t), _mm512_set1_ps(best)));
                _mm512_mask_storeu_ps(scores + t, keep, _mm512_maskz_mov_ps(live, e));
            }
            float total = 0.0f;
            for (int64_t j = 0; j < hd; j += 16) {
                const __mmask16 keep = lanes(hd - j);
                __m512 acc = _mm512_setzero_ps();
                for (int64_t t = 0; t < length; t++)
                    if (scores[t] != 0.0f) acc = _mm512_fmadd_ps(_mm512_set1_ps(scores[t]), load_kv(kv, kv->v, base + t * hd + j, keep), acc);
                _mm512_mask_storeu_ps(o + j, keep, acc);
            }
            for (int64_t t = 0; t < length; t++) total += scores[t];
            const __m512 inv = _mm512_set1_ps(1.0f / total);
            for (int64_t j = 0; j < hd; j += 16) {
                const __mmask16 keep = lanes(hd - j);
                _mm512_mask_storeu_ps(o + j, keep, _mm512_mul_ps(_mm512_maskz_loadu_ps(keep, o + j), inv));
            }
        }
        free(scores);
    }
    return failed ? -1 : 0;
}

/* This step's keys and values (qkv[r, D:2D] and [2D:3D]) into the cache at position `pos`. */
static void store_kv(const float *qkv, int64_t rows, int64_t heads, int64_t hd, const kv_block *kv, int64_t pos) {
    const int64_t d = heads * hd;
    for (int64_t r = 0; r < rows; r++)
        for (int64_t h = 0; h < heads; h++) {
            const int64_t at = ((r * heads + h) * kv->length + pos) * hd;
            const float *k = qkv + r * 3 * d + d + h * hd, *v = k + d;
            for (int64_t j = 0; j < hd; j++) {
                if (kv->bf16) {
                    ((uint16_t *)kv->k)[at + j] = to_bf16(k[j]);
                    ((uint16_t *)kv->v)[at + j] = to_bf16(v[j]);
                } else {
                    ((float *)kv->k)[at + j] = k[j];
                    ((float *)kv->v)[at + j] = v[j];
                }
            }
        }
}

/* x (rows, heads * hd) fp32, in place: x after the layer at position `pos` (the cache holds positions
   0..pos-1; this step's keys and values go in at pos). `cross`: the text's keys and values
   (text_length of them), `cross_mask` (rows, text_length) which of them each row sees. Returns 0, or
   -1 if out of memory. */
int int8_decoder_layer(float *x, int64_t rows, int64_t heads, int64_t hd, const decoder_layer *layer, const kv_block *self,
                       int64_t pos, const kv_block *cross, int64_t text_length, const uint8_t *cross_mask, float scaling,
                       int amx) {
    const int64_t d = heads * hd, ffn = layer->fc1.n_out;
    float *h = malloc((size_t)(rows * d) * sizeof(float)), *a = malloc((size_t)(rows * d) * sizeof(float));
    float *wide = malloc((size_t)(rows * (ffn > 3 * d ? ffn : 3 * d)) * sizeof(float));
    int failed = !h || !a || !wide;
    if (!failed) {
        norm_rows(x, rows, d, &layer->ln1, h);
        failed |= linear_into(&layer->qkv, h, rows, wide, NULL, 0, amx);
        store_kv(wide, rows, heads, hd, self, pos);
        failed |= attend(wide, 3 * d, self, pos + 1, NULL, rows, heads, hd, scaling, a);
        failed |= linear_into(&layer->o, a, rows, x, x, 0, amx);
        norm_rows(x, rows, d, &layer->ln2, h);
        failed |= linear_into(&layer->cq, h, rows, wide, NULL, 0, amx);
        failed |= attend(wide, d, cross, text_length, cross_mask, rows, heads, hd, scaling, a);
        failed |= linear_into(&layer->co, a, rows, x, x, 0, amx);
        norm_rows(x, rows, d, &layer->ln3, h);
        failed |= linear_into(&layer->fc1, h, rows, wide, NULL, 1, amx);
        failed |= linear_into(&layer->fc2, wide, rows, x, x, 0, amx);
    }
    free(h), free(a), free(wide);
    return failed ? -1 : 0;
}
