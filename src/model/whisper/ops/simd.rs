//! Loops written so the compiler vectorises them, compiled twice: for the baseline target and
//! with AVX2 + FMA, chosen by run-time detection.

pub(super) fn gelu(src: &[f32], out: &mut [f32]) {
    #[cfg(target_arch = "x86_64")]
    if std::arch::is_x86_feature_detected!("avx2") && std::arch::is_x86_feature_detected!("fma") {
        // SAFETY: the CPU supports the features the function is compiled for.
        return unsafe { gelu_avx2(src, out) };
    }
    gelu_body(src, out)
}

pub(super) fn softmax(src: &[f32], out: &mut [f32]) {
    #[cfg(target_arch = "x86_64")]
    if std::arch::is_x86_feature_detected!("avx2") && std::arch::is_x86_feature_detected!("fma") {
        // SAFETY: the CPU supports the features the function is compiled for.
        return unsafe { softmax_avx2(src, out) };
    }
    softmax_body(src, out)
}

#[cfg(target_arch = "x86_64")]
#[target_feature(enable = "avx2,fma")]
unsafe fn gelu_avx2(src: &[f32], out: &mut [f32]) {
    gelu_body(src, out)
}

#[cfg(target_arch = "x86_64")]
#[target_feature(enable = "avx2,fma")]
unsafe fn softmax_avx2(src: &[f32], out: &mut [f32]) {
    softmax_body(src, out)
}

#[inline(always)]
fn gelu_body(src: &[f32], out: &mut [f32]) {
    for (o, &x) in out.iter_mut().zip(src) {
        *o = 0.5 * x * (1.0 + erf(x * std::f32::consts::FRAC_1_SQRT_2));
    }
}

#[inline(always)]
pub(super) fn softmax_body(src: &[f32], out: &mut [f32]) {
    let max = lanes_reduce(src, f32::NEG_INFINITY, f32::max);
    for (o, &x) in out.iter_mut().zip(src) {
        *o = exp(x - max);
    }
    let sum = lanes_reduce(out, 0.0, |a, b| a + b);
    let inv = 1.0 / sum;
    for o in out.iter_mut() {
        *o *= inv;
    }
}

/// Reduces with eight independent accumulators so the loop vectorises.
#[inline(always)]
pub(super) fn lanes_reduce(xs: &[f32], init: f32, f: impl Fn(f32, f32) -> f32 + Copy) -> f32 {
    let mut acc = [init; 8];
    let chunks = xs.chunks_exact(8);
    let tail = chunks.remainder();
    for c in chunks {
        for i in 0..8 {
            acc[i] = f(acc[i], c[i]);
        }
    }
    let mut r = tail.iter().fold(init, |a, &b| f(a, b));
    for a in acc {
        r = f(r, a);
    }
    r
}

/// Cephes' `expf`: range reduction by ln 2, degree-5 polynomial, exponent by bit
/// manipulation. Inputs below −87.3 (masked scores) give ~1e-38, not an exact zero.
#[inline(always)]
pub(super) fn exp(x: f32) -> f32 {
    let x = x.clamp(-87.3, 88.7);
    let n = (x * std::f32::consts::LOG2_E + 0.5).floor();
    // ln 2 split in two (Cody-Waite): 355/512 is exact in f32, the remainder corrects it.
    let r = x - n * (355.0 / 512.0) + n * 2.121_944_4e-4;
    let p = 1.987_569_1e-4;
    let p = p * r + 1.398_199_9e-3;
    let p = p * r + 8.333_452e-3;
    let p = p * r + 4.166_579_6e-2;
    let p = p * r + 0.166_666_65;
    let p = p * r + 0.5;
    let y = p * r * r + r + 1.0;
    // 2^n without a float→int cast (which blocks vectorisation): adding 1.5·2^23 puts n in
    // the low mantissa bits, read back with a bit cast.
    let n_bits = (n + 12_582_912.0).to_bits().wrapping_sub(0x4B40_0000);
    y * f32::from_bits(n_bits.wrapping_add(127) << 23)
}

/// erf by Abramowitz & Stegun 7.1.26 (absolute error ≤ 1.5e-7).
#[inline(always)]
pub(super) fn erf(x: f32) -> f32 {
    const P: f32 = 0.327_591_1;
    const A: [f32; 5] = [
        0.254_829_6,
        -0.284_496_74,
        1.421_413_7,
        -1.453_152_1,
        1.061_405_4,
    ];
    let a = x.abs();
    let t = 1.0 / (1.0 + P * a);
    let poly = t * (A[0] + t * (A[1] + t * (A[2] + t * (A[3] + t * A[4]))));
    (1.0 - poly * exp(-a * a)).copysign(x)
}

/// Whether this CPU can run the AVX2 + FMA versions.
#[inline]
pub(super) fn has_avx2() -> bool {
    #[cfg(target_arch = "x86_64")]
    {
        std::arch::is_x86_feature_detected!("avx2") && std::arch::is_x86_feature_detected!("fma")
    }
    #[cfg(not(target_arch = "x86_64"))]
    {
        false
    }
}

/// Dot product with eight independent accumulators (`chunks_exact` lets the compiler drop
/// bounds checks and vectorise).
#[inline(always)]
pub(super) fn dot(a: &[f32], b: &[f32]) -> f32 {
    let mut acc = [0f32; 8];
    let (ca, cb) = (a.chunks_exact(8), b.chunks_exact(8));
    let mut sum = 0.0;
    for (x, y) in ca.remainder().iter().zip(cb.remainder()) {
        sum += x * y;
    }
    for (x, y) in ca.zip(cb) {
        for i in 0..8 {
            acc[i] += x[i] * y[i];
        }
    }
    for l in acc {
        sum += l;
    }
    sum
}

/// `out += w · x`.
#[inline(always)]
pub(super) fn axpy(w: f32, x: &[f32], out: &mut [f32]) {
    for (o, &v) in out.iter_mut().zip(x) {
        *o += w * v;
    }
}

/// Dot product of f32 inputs with f32 weights, using AVX2 + FMA when `avx2` says the CPU has them.
#[inline]
pub(super) fn dot_f32(x: &[f32], w: &[f32], avx2: bool) -> f32 {
    #[cfg(target_arch = "x86_64")]
    if avx2 {
        // SAFETY: the caller checked the CPU features.
        return unsafe { dot_f32_avx2(x, w) };
    }
    let _ = avx2;
    dot(x, w)
}

#[cfg(target_arch = "x86_64")]
#[target_feature(enable = "avx2,fma")]
unsafe fn dot_f32_avx2(x: &[f32], w: &[f32]) -> f32 {
    dot(x, w)
}

/// Dot product of f32 inputs with f16 weights; `avx2` also vouches for F16C.
#[inline]
pub(super) fn dot_f16(x: &[f32], w: &[half::f16], avx2: bool) -> f32 {
    #[cfg(target_arch = "x86_64")]
    if avx2 {
        // SAFETY: the caller checked AVX2, FMA and F16C.
        return unsafe { dot_f16_avx2(x, w) };
    }
    let _ = avx2;
    x.iter().zip(w).map(|(a, b)| a * b.to_f32()).sum()
}

/// Sixteen weights per iteration: two F16C conversions to f32 lanes feeding two FMA chains.
#[cfg(target_arch = "x86_64")]
#[target_feature(enable = "avx2,fma,f16c")]
unsafe fn dot_f16_avx2(x: &[f32], w: &[half::f16]) -> f32 {
    use std::arch::x86_64::*;
    let n = x.len().min(w.len());
    let (xp, wp) = (x.as_ptr(), w.as_ptr() as *const u16);
    let mut acc0 = _mm256_setzero_ps();
    let mut acc1 = _mm256_setzero_ps();
    let mut i = 0;
    // SAFETY: every load reads 8 or 16 elements below `n`, inside both slices.
    unsafe {
        while i + 16 <= n {
            let w0 = _mm256_cvtph_ps(_mm_loadu_si128(wp.add(i) as *const __m128i));
            let w1 = _mm256_cvtph_ps(_mm_loadu_si128(wp.add(i + 8) as *const __m128i));
            acc0 = _mm256_fmadd_ps(_mm256_loadu_ps(xp.add(i)), w0, acc0);
            acc1 = _mm256_fmadd_ps(_mm256_loadu_ps(xp.add(i + 8)), w1, acc1);
            i += 16;
        }
    }
    let mut lanes = [0f32; 8];
    // SAFETY: `lanes` holds exactly 8 floats.
    unsafe { _mm256_storeu_ps(lanes.as_mut_ptr(), _mm256_add_ps(acc0, acc1)) };
    let mut sum: f32 = lanes.iter().sum();
    for j in i..n {
        sum += x[j] * w[j].to_f32();
    }
    sum
}
