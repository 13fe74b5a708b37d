//! Loops written so the compiler vectorises them, compiled three times — for the baseline
//! target, for AVX2 + FMA and for AVX-512 — and picked by run-time detection ([`Isa`]).

use half::f16;

/// The instruction sets the kernels are compiled for, widest first.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub(super) enum Level {
    /// AVX-512F plus everything `Avx2` needs: 16 f32 lanes.
    Avx512,
    /// AVX2, FMA and F16C: 8 f32 lanes.
    Avx2,
    /// Whatever the build target guarantees (SSE2 on x86-64).
    Baseline,
}

/// Proof that this CPU supports an instruction set: only CPU detection creates one (its
/// field is private to this module), so the safe kernel entry points that take an `Isa` may
/// run the `unsafe` code compiled for its [`Level`].
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub(super) struct Isa(Level);

impl Isa {
    /// The widest set this CPU supports. `is_x86_feature_detected!` caches its answer, so this
    /// is cheap enough to call once per kernel call.
    pub(super) fn detect() -> Self {
        Self::supported()[0]
    }

    /// Every set this CPU supports, widest first; the baseline always.
    pub(super) fn supported() -> Vec<Self> {
        let mut levels = Vec::with_capacity(3);
        #[cfg(target_arch = "x86_64")]
        {
            use std::arch::is_x86_feature_detected as has;
            let avx2 = has!("avx2") && has!("fma") && has!("f16c");
            if avx2 && has!("avx512f") {
                levels.push(Self(Level::Avx512));
            }
            if avx2 {
                levels.push(Self(Level::Avx2));
            }
        }
        levels.push(Self(Level::Baseline));
        levels
    }

    /// The set, for picking the code compiled for it.
    pub(super) fn level(self) -> Level {
        self.0
    }
}

/// Defines `$name(isa, args…)` that runs `$body(args…)` compiled for the given [`Isa`]: the body
/// is `#[inline(always)]`, so each copy is vectorised with that set's registers.
macro_rules! for_each_isa {
    ($(#[$doc:meta])* $vis:vis fn $name:ident($($arg:ident: $ty:ty),*) $(-> $ret:ty)? = $body:path;) => {
        $(#[$doc])*
        $vis fn $name(isa: $crate::model::whisper::ops::simd::Isa, $($arg: $ty),*) $(-> $ret)? {
            #[cfg(target_arch = "x86_64")]
            {
                #[target_feature(enable = "avx512f,avx2,fma,f16c")]
                unsafe fn avx512($($arg: $ty),*) $(-> $ret)? {
                    $body($($arg),*)
                }
                #[target_feature(enable = "avx2,fma,f16c")]
                unsafe fn avx2($($arg: $ty),*) $(-> $ret)? {
                    $body($($arg),*)
                }
                match isa.level() {
                    // SAFETY: an `Isa` exists only for features CPU detection found.
                    $crate::model::whisper::ops::simd::Level::Avx512 => return unsafe { avx512($($arg),*) },
                    // SAFETY: as above.
                    $crate::model::whisper::ops::simd::Level::Avx2 => return unsafe { avx2($($arg),*) },
                    $crate::model::whisper::ops::simd::Level::Baseline => {}
                }
            }
            let _ = isa;
            $body($($arg),*)
        }
    };
}
pub(super) use for_each_isa;

for_each_isa! {
    /// Exact (erf-based) GELU of `src` into `out`.
    pub(super) fn gelu(src: &[f32], out: &mut [f32]) = gelu_body;
}

for_each_isa! {
    /// Softmax of one row.
    pub(super) fn softmax(src: &[f32], out: &mut [f32]) = softmax_body;
}

for_each_isa! {
    /// Dot product of two f32 slices of equal length.
    pub(super) fn dot_f32(x: &[f32], w: &[f32]) -> f32 = dot;
}

for_each_isa! {
    /// `Σ exp(x − max)` over `xs`.
    pub(super) fn sum_exp(xs: &[f32], max: f32) -> f32 = sum_exp_body;
}

#[inline(always)]
fn sum_exp_body(xs: &[f32], max: f32) -> f32 {
    let mut acc = [0f32; LANES];
    let chunks = xs.chunks_exact(LANES);
    let tail: f32 = chunks.remainder().iter().map(|&x| exp(x - max)).sum();
    for c in chunks {
        for i in 0..LANES {
            acc[i] += exp(c[i] - max);
        }
    }
    tail + acc.iter().sum::<f32>()
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

/// Independent accumulators in the reductions: sixteen fill one AVX-512 register or two AVX2
/// ones (two dependency chains), so the loops vectorise at either width.
const LANES: usize = 16;

/// Reduces with [`LANES`] independent accumulators so the loop vectorises.
#[inline(always)]
pub(super) fn lanes_reduce(xs: &[f32], init: f32, f: impl Fn(f32, f32) -> f32 + Copy) -> f32 {
    let mut acc = [init; LANES];
    let chunks = xs.chunks_exact(LANES);
    let tail = chunks.remainder();
    for c in chunks {
        for i in 0..LANES {
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

/// Dot product with [`LANES`] independent accumulators (`chunks_exact` lets the compiler drop
/// bounds checks and vectorise).
#[inline(always)]
pub(super) fn dot(a: &[f32], b: &[f32]) -> f32 {
    let mut acc = [0f32; LANES];
    let (ca, cb) = (a.chunks_exact(LANES), b.chunks_exact(LANES));
    let mut sum = 0.0;
    for (x, y) in ca.remainder().iter().zip(cb.remainder()) {
        sum += x * y;
    }
    for (x, y) in ca.zip(cb) {
        for i in 0..LANES {
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

/// f16 → f32 for a slice, into `out` of the same length (F16C, sixteen or eight at a time).
/// `half`'s slice conversion does the same through a call per eight elements, which cost more
/// than the attention it fed.
pub(super) fn widen_f16(isa: Isa, src: &[f16], out: &mut [f32]) {
    assert_eq!(src.len(), out.len(), "widen_f16: lengths differ");
    #[cfg(target_arch = "x86_64")]
    match isa.level() {
        // SAFETY: an `Isa` of this level means CPU detection found AVX-512F and F16C; the
        // lengths are equal.
        Level::Avx512 => return unsafe { widen_f16_avx512(src, out) },
        // SAFETY: CPU detection found F16C; the lengths are equal.
        Level::Avx2 => return unsafe { widen_f16_f16c(src, out) },
        Level::Baseline => {}
    }
    let _ = isa;
    for (o, v) in out.iter_mut().zip(src) {
        *o = v.to_f32();
    }
}

#[cfg(target_arch = "x86_64")]
#[target_feature(enable = "avx512f,avx2,fma,f16c")]
unsafe fn widen_f16_avx512(src: &[f16], out: &mut [f32]) {
    use std::arch::x86_64::*;
    let n = src.len();
    let (sp, op) = (src.as_ptr() as *const u16, out.as_mut_ptr());
    let mut i = 0;
    // SAFETY: every access is below `n`, inside both slices (same length).
    unsafe {
        while i + 16 <= n {
            let v = _mm512_cvtph_ps(_mm256_loadu_si256(sp.add(i) as *const __m256i));
            _mm512_storeu_ps(op.add(i), v);
            i += 16;
        }
    }
    for j in i..n {
        out[j] = src[j].to_f32();
    }
}

#[cfg(target_arch = "x86_64")]
#[target_feature(enable = "avx2,fma,f16c")]
unsafe fn widen_f16_f16c(src: &[f16], out: &mut [f32]) {
    use std::arch::x86_64::*;
    let n = src.len();
    let (sp, op) = (src.as_ptr() as *const u16, out.as_mut_ptr());
    let mut i = 0;
    // SAFETY: every access is below `n`, inside both slices (same length).
    unsafe {
        while i + 8 <= n {
            let v = _mm256_cvtph_ps(_mm_loadu_si128(sp.add(i) as *const __m128i));
            _mm256_storeu_ps(op.add(i), v);
            i += 8;
        }
    }
    for j in i..n {
        out[j] = src[j].to_f32();
    }
}

/// Dot product of f32 inputs with f16 weights: the weights are read at half the bytes, which is
/// what bounds a one-row decoder step, and widened in registers (F16C).
pub(super) fn dot_f16(isa: Isa, x: &[f32], w: &[f16]) -> f32 {
    #[cfg(target_arch = "x86_64")]
    match isa.level() {
        // SAFETY: CPU detection found AVX-512F, AVX2, FMA and F16C.
        Level::Avx512 => return unsafe { dot_f16_avx512(x, w) },
        // SAFETY: CPU detection found AVX2, FMA and F16C.
        Level::Avx2 => return unsafe { dot_f16_avx2(x, w) },
        Level::Baseline => {}
    }
    let _ = isa;
    x.iter().zip(w).map(|(a, b)| a * b.to_f32()).sum()
}

/// Thirty-two weights per iteration: two 16-lane widenings feeding two FMA chains.
#[cfg(target_arch = "x86_64")]
#[target_feature(enable = "avx512f,avx2,fma,f16c")]
unsafe fn dot_f16_avx512(x: &[f32], w: &[f16]) -> f32 {
    use std::arch::x86_64::*;
    let n = x.len().min(w.len());
    let (xp, wp) = (x.as_ptr(), w.as_ptr() as *const u16);
    let mut acc0 = _mm512_setzero_ps();
    let mut acc1 = _mm512_setzero_ps();
    let mut i = 0;
    // SAFETY: every load reads 16 or 32 elements below `n`, inside both slices.
    unsafe {
        while i + 32 <= n {
            let w0 = _mm512_cvtph_ps(_mm256_loadu_si256(wp.add(i) as *const __m256i));
            let w1 = _mm512_cvtph_ps(_mm256_loadu_si256(wp.add(i + 16) as *const __m256i));
            acc0 = _mm512_fmadd_ps(_mm512_loadu_ps(xp.add(i)), w0, acc0);
            acc1 = _mm512_fmadd_ps(_mm512_loadu_ps(xp.add(i + 16)), w1, acc1);
            i += 32;
        }
    }
    let mut sum = _mm512_reduce_add_ps(_mm512_add_ps(acc0, acc1));
    for j in i..n {
        sum += x[j] * w[j].to_f32();
    }
    sum
}

/// Sixteen weights per iteration: two F16C conversions to f32 lanes feeding two FMA chains.
#[cfg(target_arch = "x86_64")]
#[target_feature(enable = "avx2,fma,f16c")]
unsafe fn dot_f16_avx2(x: &[f32], w: &[f16]) -> f32 {
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

#[cfg(test)]
mod tests {
    use super::*;

    /// Deterministic values in about [-4, 4], with every length's tail exercised.
    fn values(n: usize, seed: u32) -> Vec<f32> {
        (0..n)
            .map(|i| {
                let x = (i as u32).wrapping_mul(2_654_435_761).wrapping_add(seed);
                (x % 8_000) as f32 / 1_000.0 - 4.0
            })
            .collect()
    }

    const LENGTHS: [usize; 6] = [1, 7, 16, 33, 384, 1501];

    #[test]
    fn detection_lists_the_baseline_last_and_picks_the_widest() {
        let supported = Isa::supported();
        assert_eq!(supported.last().map(|i| i.level()), Some(Level::Baseline));
        assert_eq!(Isa::detect(), supported[0]);
    }

    #[test]
    fn every_supported_isa_computes_gelu_and_softmax_alike() {
        for isa in Isa::supported() {
            for n in LENGTHS {
                let x = values(n, 1);
                let (mut ours, mut reference) = (vec![0.0; n], vec![0.0; n]);
                gelu(isa, &x, &mut ours);
                gelu_body(&x, &mut reference);
                let diff = ours.iter().zip(&reference).map(|(a, b)| (a - b).abs());
                assert!(diff.fold(0.0, f32::max) < 1e-6, "gelu {isa:?} n={n}");
                softmax(isa, &x, &mut ours);
                let max = x.iter().copied().fold(f32::NEG_INFINITY, f32::max);
                let sum: f64 = x.iter().map(|&v| f64::from(v - max).exp()).sum();
                for (o, &v) in ours.iter().zip(&x) {
                    let exact = f64::from(v - max).exp() / sum;
                    assert!(
                        (f64::from(*o) - exact).abs() < 1e-6,
                        "softmax {isa:?} n={n}"
                    );
                }
            }
        }
    }

    #[test]
    fn every_supported_isa_computes_dot_products_alike() {
        for isa in Isa::supported() {
            for n in LENGTHS {
                let (x, w) = (values(n, 2), values(n, 3));
                let w16: Vec<f16> = w.iter().map(|&v| f16::from_f32(v)).collect();
                let exact: f64 = x.iter().zip(&w).map(|(a, b)| f64::from(a * b)).sum();
                let exact16: f64 = x
                    .iter()
                    .zip(&w16)
                    .map(|(a, b)| f64::from(*a) * f64::from(b.to_f32()))
                    .sum();
                let tolerance = 1e-4 * (n as f64).max(1.0);
                let dot = f64::from(dot_f32(isa, &x, &w));
                assert!((dot - exact).abs() < tolerance, "dot_f32 {isa:?} n={n}");
                let dot = f64::from(dot_f16(isa, &x, &w16));
                assert!((dot - exact16).abs() < tolerance, "dot_f16 {isa:?} n={n}");
                let mut widened = vec![0.0; n];
                widen_f16(isa, &w16, &mut widened);
                assert!(
                    widened.iter().zip(&w16).all(|(a, b)| *a == b.to_f32()),
                    "widen_f16 {isa:?} n={n}"
                );
            }
        }
    }
}
