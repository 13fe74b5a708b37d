//! AVX-512 register tile for the skinny product: [`MR`] input rows × [`NR`] weight rows per pass
//! over K. Sixteen FMA chains are fed by eight loads per step, where one dot product at a time
//! loads two vectors per FMA and widens an f16 weight once for every input row. This is what
//! makes a batched decoder step cheaper per row than a single one.

use std::arch::x86_64::*;

use half::f16;

/// Input rows per tile.
pub(super) const MR: usize = 4;
/// Weight rows per tile.
pub(super) const NR: usize = 4;

/// A weight element type the tile can load sixteen lanes of.
pub(super) trait TileWeight: Copy {
    /// `out[r][c] = x[r] · w[c]` over the first `k` elements.
    ///
    /// # Safety
    /// The CPU has AVX-512F, AVX2, FMA and F16C (an `Isa` at [`super::Level::Avx512`]); every slice holds at
    /// least `k` elements.
    unsafe fn tile<const M: usize>(x: [&[f32]; M], w: [&[Self]; NR], k: usize) -> [[f32; NR]; M];
}

macro_rules! tile_kernel {
    ($ty:ty, $name:ident, |$p:ident| $load:expr) => {
        #[target_feature(enable = "avx512f,avx2,fma,f16c")]
        unsafe fn $name<const M: usize>(
            x: [&[f32]; M],
            w: [&[$ty]; NR],
            k: usize,
        ) -> [[f32; NR]; M] {
            let mut acc = [[_mm512_setzero_ps(); NR]; M];
            let mut i = 0;
            while i + 16 <= k {
                // SAFETY: `i + 16 <= k` and the caller guarantees `k` elements in every slice.
                let wv: [__m512; NR] = unsafe {
                    [
                        {
                            let $p = w[0].as_ptr().add(i);
                            $load
                        },
                        {
                            let $p = w[1].as_ptr().add(i);
                            $load
                        },
                        {
                            let $p = w[2].as_ptr().add(i);
                            $load
                        },
                        {
                            let $p = w[3].as_ptr().add(i);
                            $load
                        },
                    ]
                };
                for r in 0..M {
                    // SAFETY: as above.
                    let xv = unsafe { _mm512_loadu_ps(x[r].as_ptr().add(i)) };
                    for c in 0..NR {
                        acc[r][c] = _mm512_fmadd_ps(xv, wv[c], acc[r][c]);
                    }
                }
                i += 16;
            }
            let mut out = [[0f32; NR]; M];
            for r in 0..M {
                for c in 0..NR {
                    let mut sum = _mm512_reduce_add_ps(acc[r][c]);
                    for j in i..k {
                        sum += x[r][j] * f32::from(w[c][j]);
                    }
                    out[r][c] = sum;
                }
            }
            out
        }

        impl TileWeight for $ty {
            unsafe fn tile<const M: usize>(
                x: [&[f32]; M],
                w: [&[Self]; NR],
                k: usize,
            ) -> [[f32; NR]; M] {
                // SAFETY: forwarded from the caller.
                unsafe { $name(x, w, k) }
            }
        }
    };
}

tile_kernel!(f32, tile_f32, |p| _mm512_loadu_ps(p));
tile_kernel!(f16, tile_f16, |p| _mm512_cvtph_ps(_mm256_loadu_si256(
    p as *const __m256i
)));

/// `out[i·R + j] = x[i] · w[j]` for every input row `i` (each `k` long) and the first
/// `R − R mod NR` weight rows of `w` (`R` rows of `k`); returns how many weight rows it did.
///
/// # Safety
/// The CPU has what [`TileWeight::tile`] needs.
pub(super) unsafe fn tiled_dots<W: TileWeight>(
    x: &[f32],
    w: &[W],
    k: usize,
    out: &mut [f32],
) -> usize {
    let m = x.len() / k;
    let r = w.len() / k;
    let full = r - r % NR;
    let x_row = |i: usize| &x[i * k..(i + 1) * k];
    for j0 in (0..full).step_by(NR) {
        let wr: [&[W]; NR] = std::array::from_fn(|c| &w[(j0 + c) * k..(j0 + c + 1) * k]);
        let mut i0 = 0;
        while i0 < m {
            let place = |out: &mut [f32], i0: usize, tile: &[[f32; NR]]| {
                for (t, row) in tile.iter().enumerate() {
                    out[(i0 + t) * r + j0..(i0 + t) * r + j0 + NR].copy_from_slice(row);
                }
            };
            // SAFETY: forwarded from the caller; every row slice is `k` long.
            unsafe {
                match m - i0 {
                    1 => place(out, i0, &W::tile::<1>([x_row(i0)], wr, k)),
                    2 => place(out, i0, &W::tile::<2>([x_row(i0), x_row(i0 + 1)], wr, k)),
                    3 => place(
                        out,
                        i0,
                        &W::tile::<3>([x_row(i0), x_row(i0 + 1), x_row(i0 + 2)], wr, k),
                    ),
                    _ => place(
                        out,
                        i0,
                        &W::tile::<MR>(std::array::from_fn(|t| x_row(i0 + t)), wr, k),
                    ),
                }
            }
            i0 += MR;
        }
    }
    full
}
