/* The few-row int8 kernel's pieces that kernels/int8_layer.c builds a decoder layer from. */
#ifndef INT8_ROWS_H
#define INT8_ROWS_H
#include <immintrin.h>
#include <stdint.h>

/* An int8 weight as scoretool/int8_kernel.py's RowsWeight packs it (see int8_rows.c). */
typedef struct {
    const int8_t *w;
    const float *scale, *rowsum, *bias; /* n_pad floats each; bias may be NULL */
    int64_t k_in, k_pad, n_out, n_pad;
} packed_linear;

/* y = x @ W.T (+ bias), then GELU where `gelu`, then + residual[m, n] where `residual` is not NULL
   (it may be y itself). Returns 0, or -1 if out of memory. */
int linear_into(const packed_linear *p, const float *x, int64_t m_count, float *y, const float *residual, int gelu,
                int amx);

/* e^x for every lane, to about 1 ulp (AVX-512 F). */
__m512 exp_ps(__m512 x);
#endif
