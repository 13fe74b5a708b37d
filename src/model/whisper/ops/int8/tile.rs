//! The register tile under every int8 product, and the quantisation of f32 rows to bytes.

use super::{Columns, RowGrid};

pub(super) use super::super::split::{PANEL, TILE_ROWS};

/// Proof that this CPU has AVX-512F, AVX-512BW and AVX512_VNNI: only [`VnniCpu::detect`] makes
/// one, so the safe functions taking it may run the code compiled for those features.
#[derive(Clone, Copy, Debug)]
pub(crate) struct VnniCpu(());

impl VnniCpu {
    pub(crate) fn detect() -> Option<Self> {
        #[cfg(target_arch = "x86_64")]
        {
            use std::arch::is_x86_feature_detected as has;
            if has!("avx512f") && has!("avx512bw") && has!("avx512vnni") {
                return Some(Self(()));
            }
        }
        None
    }
}

/// `out[r][c] = bias[c] + scales[c] · (step[r] · Σ_q a[r][q] · b[q][c] + lo[r] · sums[c])` for
/// `rows` (≤ [`TILE_ROWS`]) rows of `a` (`quads` groups of four unsigned bytes each) and one
/// packed panel `b` (`quads × 64` groups of four signed bytes), writing the first
/// `columns.bias.len()` (≤ 64) columns of each output row, rows `stride` apart.
#[allow(clippy::too_many_arguments)]
pub(super) fn tile(
    cpu: VnniCpu,
    rows: usize,
    a: &[u32],
    grids: &[RowGrid],
    b: &[u32],
    quads: usize,
    columns: Columns<'_>,
    out: &mut [f32],
    stride: usize,
) {
    let cols = columns.bias.len();
    assert!((1..=TILE_ROWS).contains(&rows) && cols <= PANEL);
    assert!(columns.scales.len() == cols && columns.sums.len() == cols);
    assert!(a.len() >= rows * quads && grids.len() >= rows && b.len() >= quads * PANEL);
    assert!(out.len() >= (rows - 1) * stride + cols);
    let _ = cpu;
    #[cfg(target_arch = "x86_64")]
    // SAFETY: `cpu` proves the features; the asserts above are the sizes `x86::tile` reads and
    // writes.
    unsafe {
        match rows {
            1 => x86::tile::<1>(a, grids, b, quads, columns, out, stride),
            2 => x86::tile::<2>(a, grids, b, quads, columns, out, stride),
            3 => x86::tile::<3>(a, grids, b, quads, columns, out, stride),
            4 => x86::tile::<4>(a, grids, b, quads, columns, out, stride),
            5 => x86::tile::<5>(a, grids, b, quads, columns, out, stride),
            _ => x86::tile::<TILE_ROWS>(a, grids, b, quads, columns, out, stride),
        }
    }
}

/// Quantises `src` onto `grid`, one byte per value, four to a `u32` in `out`
/// (`src.len().div_ceil(4)` of them; the last padded with zeros, which meet zero weights).
pub(super) fn quantize(cpu: VnniCpu, src: &[f32], grid: RowGrid, out: &mut [u32]) {
    assert!(out.len() >= src.len().div_ceil(4));
    let _ = cpu;
    #[cfg(target_arch = "x86_64")]
    // SAFETY: `cpu` proves the features; the assert above is the size written.
    let done = unsafe { x86::quantize(src, grid, out) };
    #[cfg(not(target_arch = "x86_64"))]
    let done = 0;
    for (quad, packed) in src[4 * done..].chunks(4).zip(&mut out[done..]) {
        let byte = |i: usize| quad.get(i).map_or(0, |&v| grid.level(v));
        *packed = byte(0) | byte(1) << 8 | byte(2) << 16 | byte(3) << 24;
    }
}

/// The least and greatest values of `src` (0 for an empty row).
pub(super) fn range(cpu: VnniCpu, src: &[f32]) -> (f32, f32) {
    let _ = cpu;
    #[cfg(target_arch = "x86_64")]
    // SAFETY: `cpu` proves the features.
    let (done, lo, hi) = unsafe { x86::range(src) };
    #[cfg(not(target_arch = "x86_64"))]
    let (done, lo, hi) = (0, f32::INFINITY, f32::NEG_INFINITY);
    let (lo, hi) = src[done..]
        .iter()
        .fold((lo, hi), |(lo, hi), &v| (lo.min(v), hi.max(v)));
    match lo <= hi {
        true => (lo, hi),
        false => (0.0, 0.0),
    }
}

#[cfg(target_arch = "x86_64")]
mod x86 {
    use std::arch::x86_64::*;

    use super::super::super::split::lane_mask;
    use super::{Columns, PANEL, RowGrid};

    /// `R` rows × 64 columns: 4R accumulators; each quad of inputs costs one broadcast per row
    /// and four panel loads shared by all rows.
    ///
    /// # Safety
    /// The CPU has AVX-512F, AVX-512BW and AVX512_VNNI; `a` holds `R × quads`, `grids` `R`,
    /// `b` `quads × 64`; `columns` holds `cols` (≤ 64) values of each kind, and `out` holds
    /// `cols` outputs from the start of each of the `R` rows, `stride` apart.
    #[target_feature(enable = "avx512f,avx512bw,avx512vnni")]
    pub(super) unsafe fn tile<const R: usize>(
        a: &[u32],
        grids: &[RowGrid],
        b: &[u32],
        quads: usize,
        columns: Columns<'_>,
        out: &mut [f32],
        stride: usize,
    ) {
        let cols = columns.bias.len();
        let masks: [__mmask16; 4] = std::array::from_fn(|j| lane_mask(cols, j));
        let mut acc = [[_mm512_setzero_si512(); 4]; R];
        let a = a.as_ptr();
        let b = b.as_ptr();
        for q in 0..quads {
            // SAFETY: `q < quads` and the caller's sizes.
            unsafe {
                let panel = b.add(q * PANEL);
                let w: [__m512i; 4] =
                    std::array::from_fn(|j| _mm512_loadu_si512(panel.add(16 * j).cast()));
                for (r, acc) in acc.iter_mut().enumerate() {
                    let x = _mm512_set1_epi32(*a.add(r * quads + q) as i32);
                    for j in 0..4 {
                        acc[j] = _mm512_dpbusd_epi32(acc[j], x, w[j]);
                    }
                }
            }
        }
        for j in 0..4 {
            if masks[j] == 0 {
                continue;
            }
            let at = (16 * j).min(cols);
            // SAFETY: masked loads read only the `cols` column values.
            let (bias, scales, sums) = unsafe {
                (
                    _mm512_maskz_loadu_ps(masks[j], columns.bias.as_ptr().add(at)),
                    _mm512_maskz_loadu_ps(masks[j], columns.scales.as_ptr().add(at)),
                    _mm512_maskz_loadu_ps(masks[j], columns.sums.as_ptr().add(at)),
                )
            };
            for (r, acc) in acc.iter().enumerate() {
                let RowGrid { lo, step } = grids[r];
                let offset = _mm512_mul_ps(sums, _mm512_set1_ps(lo));
                let dot = _mm512_fmadd_ps(_mm512_cvtepi32_ps(acc[j]), _mm512_set1_ps(step), offset);
                let value = _mm512_fmadd_ps(dot, scales, bias);
                // SAFETY: the mask limits the store to the row's `cols` outputs.
                unsafe {
                    _mm512_mask_storeu_ps(
                        out.as_mut_ptr().add(r * stride + 16 * j),
                        masks[j],
                        value,
                    )
                };
            }
        }
    }

    /// Quantises whole groups of 16 elements of `src` into 4 quads each; returns the quads done.
    /// Rounding is the CPU's default, to nearest even, as [`RowGrid::level`] rounds; values are
    /// clamped to the byte.
    ///
    /// # Safety
    /// The CPU has AVX-512F and AVX-512BW; `out` holds `src.len() / 4` quads.
    #[target_feature(enable = "avx512f,avx512bw")]
    pub(super) unsafe fn quantize(src: &[f32], grid: RowGrid, out: &mut [u32]) -> usize {
        let groups = src.len() / 16;
        let lo = _mm512_set1_ps(grid.lo);
        let inverse = _mm512_set1_ps(1.0 / grid.step);
        let top = _mm512_set1_epi32(255);
        for g in 0..groups {
            // SAFETY: group `g` lies inside both slices.
            unsafe {
                let v = _mm512_loadu_ps(src.as_ptr().add(16 * g));
                let q = _mm512_cvtps_epi32(_mm512_mul_ps(_mm512_sub_ps(v, lo), inverse));
                let q = _mm512_min_epi32(_mm512_max_epi32(q, _mm512_setzero_si512()), top);
                _mm_storeu_si128(out.as_mut_ptr().add(4 * g).cast(), _mm512_cvtepi32_epi8(q));
            }
        }
        4 * groups
    }

    /// The least and greatest values of whole groups of 16 elements, and the elements done.
    ///
    /// # Safety
    /// The CPU has AVX-512F.
    #[target_feature(enable = "avx512f")]
    pub(super) unsafe fn range(src: &[f32]) -> (usize, f32, f32) {
        let groups = src.len() / 16;
        let mut lo = _mm512_set1_ps(f32::INFINITY);
        let mut hi = _mm512_set1_ps(f32::NEG_INFINITY);
        for g in 0..groups {
            // SAFETY: group `g` lies inside `src`.
            let v = unsafe { _mm512_loadu_ps(src.as_ptr().add(16 * g)) };
            lo = _mm512_min_ps(lo, v);
            hi = _mm512_max_ps(hi, v);
        }
        (
            16 * groups,
            _mm512_reduce_min_ps(lo),
            _mm512_reduce_max_ps(hi),
        )
    }
}
