//! The register tile under every bf16 product, and the rounding of f32 rows to bf16 pairs.

use super::bf16_bits;

pub(super) use super::super::split::{PANEL, TILE_ROWS};

/// Proof that this CPU has AVX-512F and AVX512_BF16: only [`Bf16Cpu::detect`] makes one, so the
/// safe functions taking it may run the code compiled for those features.
#[derive(Clone, Copy, Debug)]
pub(crate) struct Bf16Cpu(());

impl Bf16Cpu {
    pub(crate) fn detect() -> Option<Self> {
        #[cfg(target_arch = "x86_64")]
        {
            use std::arch::is_x86_feature_detected as has;
            if has!("avx512f") && has!("avx512bf16") {
                return Some(Self(()));
            }
        }
        None
    }
}

/// `out[r][c] = init[c] + Σ_p a[r][p] · b[p][c]` for `rows` (≤ [`TILE_ROWS`]) rows of `a`
/// (`pairs` bf16 pairs each) and one packed panel `b` (`pairs × 64`), writing the first
/// `init.len()` (≤ 64) columns of each output row, rows `stride` apart.
#[allow(clippy::too_many_arguments)]
pub(super) fn tile(
    cpu: Bf16Cpu,
    rows: usize,
    a: &[u32],
    b: &[u32],
    pairs: usize,
    init: &[f32],
    out: &mut [f32],
    stride: usize,
) {
    assert!((1..=TILE_ROWS).contains(&rows) && init.len() <= PANEL);
    assert!(a.len() >= rows * pairs && b.len() >= pairs * PANEL);
    assert!(out.len() >= (rows - 1) * stride + init.len());
    let _ = cpu;
    #[cfg(target_arch = "x86_64")]
    // SAFETY: `cpu` proves the features; the asserts above are the sizes `x86::tile` reads and
    // writes.
    unsafe {
        match rows {
            1 => x86::tile::<1>(a, b, pairs, init, out, stride),
            2 => x86::tile::<2>(a, b, pairs, init, out, stride),
            3 => x86::tile::<3>(a, b, pairs, init, out, stride),
            4 => x86::tile::<4>(a, b, pairs, init, out, stride),
            5 => x86::tile::<5>(a, b, pairs, init, out, stride),
            _ => x86::tile::<TILE_ROWS>(a, b, pairs, init, out, stride),
        }
    }
}

/// Rounds `src` to bf16 pairs in `out` (`src.len().div_ceil(2)` of them; an odd last element is
/// paired with 0), ties to even.
pub(super) fn round(cpu: Bf16Cpu, src: &[f32], out: &mut [u32]) {
    assert!(out.len() >= src.len().div_ceil(2));
    let _ = cpu;
    #[cfg(target_arch = "x86_64")]
    // SAFETY: `cpu` proves the features; the assert above is the size written.
    let done = unsafe { x86::round(src, out) };
    #[cfg(not(target_arch = "x86_64"))]
    let done = 0;
    for (pair, packed) in src[2 * done..].chunks(2).zip(&mut out[done..]) {
        let hi = pair.get(1).map_or(0, |&v| bf16_bits(v));
        *packed = bf16_bits(pair[0]) | (hi << 16);
    }
}

#[cfg(target_arch = "x86_64")]
mod x86 {
    use std::arch::x86_64::*;

    use super::super::super::split::lane_mask;
    use super::PANEL;

    /// `R` rows × 64 columns: 4R accumulators; each pair of inputs costs one broadcast per row
    /// and four panel loads shared by all rows.
    ///
    /// # Safety
    /// The CPU has AVX-512F and AVX512_BF16; `a` holds `R × pairs`, `b` `pairs × 64`; `out`
    /// holds `init.len()` (≤ 64) outputs from the start of each of the `R` rows, `stride` apart.
    #[target_feature(enable = "avx512f,avx512bf16")]
    pub(super) unsafe fn tile<const R: usize>(
        a: &[u32],
        b: &[u32],
        pairs: usize,
        init: &[f32],
        out: &mut [f32],
        stride: usize,
    ) {
        let cols = init.len();
        let masks: [__mmask16; 4] = std::array::from_fn(|j| lane_mask(cols, j));
        // SAFETY: masked loads read only the `cols` initial values.
        let start: [__m512; 4] = std::array::from_fn(|j| unsafe {
            _mm512_maskz_loadu_ps(masks[j], init.as_ptr().add((16 * j).min(cols)))
        });
        let mut acc = [start; R];
        let a = a.as_ptr();
        let b = b.as_ptr();
        for p in 0..pairs {
            // SAFETY: `p < pairs` and the caller's sizes.
            unsafe {
                let panel = b.add(p * PANEL);
                let w: [__m512bh; 4] = std::array::from_fn(|j| {
                    std::mem::transmute::<__m512i, __m512bh>(_mm512_loadu_si512(
                        panel.add(16 * j).cast(),
                    ))
                });
                for (r, acc) in acc.iter_mut().enumerate() {
                    let x = std::mem::transmute::<__m512i, __m512bh>(_mm512_set1_epi32(
                        *a.add(r * pairs + p) as i32,
                    ));
                    for j in 0..4 {
                        acc[j] = _mm512_dpbf16_ps(acc[j], x, w[j]);
                    }
                }
            }
        }
        for (r, acc) in acc.iter().enumerate() {
            for j in 0..4 {
                if masks[j] != 0 {
                    // SAFETY: the mask limits the store to the row's `cols` outputs.
                    unsafe {
                        _mm512_mask_storeu_ps(
                            out.as_mut_ptr().add(r * stride + 16 * j),
                            masks[j],
                            acc[j],
                        )
                    };
                }
            }
        }
    }

    /// Rounds whole groups of 32 elements of `src` into 16 pairs each; returns the pairs done.
    ///
    /// # Safety
    /// The CPU has AVX-512F and AVX512_BF16; `out` holds `src.len() / 2` pairs.
    #[target_feature(enable = "avx512f,avx512bf16")]
    pub(super) unsafe fn round(src: &[f32], out: &mut [u32]) -> usize {
        let groups = src.len() / 32;
        for g in 0..groups {
            // SAFETY: group `g` lies inside both slices.
            unsafe {
                let lo = _mm512_loadu_ps(src.as_ptr().add(32 * g));
                let hi = _mm512_loadu_ps(src.as_ptr().add(32 * g + 16));
                // The second operand fills the low 16 lanes: elements keep their order.
                let packed = _mm512_cvtne2ps_pbh(hi, lo);
                _mm512_storeu_si512(
                    out.as_mut_ptr().add(16 * g).cast(),
                    std::mem::transmute::<__m512bh, __m512i>(packed),
                );
            }
        }
        16 * groups
    }
}
