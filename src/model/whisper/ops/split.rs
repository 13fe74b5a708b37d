//! How a packed product `[M, K] · [K, N]` is split across threads, shared by the bf16 and int8
//! kernels: both lay their weights out in panels of [`PANEL`] output columns.
//!
//! Many rows (the encoder, a prompt pass) split the rows: each task reads every panel once for
//! its rows, from L2. Few rows (a decoder step) split the output columns instead, each task
//! reading its panels once for all rows: the step is bound by the weight bytes it reads.

use std::ops::Range;

use rayon::prelude::*;

/// Output columns per packed panel: four 16-lane registers.
pub(super) const PANEL: usize = 64;
/// Input rows per register tile: 6 × 4 accumulators leave registers for the loads.
pub(super) const TILE_ROWS: usize = 6;
/// Input rows per parallel work item: large enough that a panel read from L2 serves many tiles.
pub(super) const ROWS_PER_TASK: usize = 8 * TILE_ROWS;
/// Panels per parallel work item when there are few rows (256 output columns).
const PANELS_PER_TASK: usize = 4;

/// The `[m, n]` product, computed by `compute(rows, panels, out, stride)`, which writes the
/// outputs of input rows `rows` and panels `panels` into `out`: rows `stride` apart, the first
/// panel's first column at the start of each row.
pub(super) fn products<F>(m: usize, n: usize, compute: F) -> Vec<f32>
where
    F: Fn(Range<usize>, Range<usize>, &mut [f32], usize) + Sync,
{
    let panels = n.div_ceil(PANEL);
    if m > ROWS_PER_TASK {
        let mut out = vec![0f32; m * n];
        out.par_chunks_mut(ROWS_PER_TASK * n)
            .enumerate()
            .for_each(|(task, out)| {
                let first = task * ROWS_PER_TASK;
                compute(first..first + out.len() / n, 0..panels, out, n)
            });
        return out;
    }
    let blocks: Vec<Vec<f32>> = (0..panels.div_ceil(PANELS_PER_TASK))
        .into_par_iter()
        .map(|task| {
            let range = task * PANELS_PER_TASK..((task + 1) * PANELS_PER_TASK).min(panels);
            let width = (n - range.start * PANEL).min(PANELS_PER_TASK * PANEL);
            let mut block = vec![0f32; m * width];
            compute(0..m, range, &mut block, width);
            block
        })
        .collect();
    let mut out = vec![0f32; m * n];
    for (task, block) in blocks.iter().enumerate() {
        let width = block.len() / m.max(1);
        let col0 = task * PANELS_PER_TASK * PANEL;
        for (row, values) in block.chunks_exact(width).enumerate() {
            out[row * n + col0..][..width].copy_from_slice(values);
        }
    }
    out
}

/// Calls `tile(panel, rows, out)` for each panel of `panels` and each run of at most
/// [`TILE_ROWS`] of the `m` input rows, `out` starting at that tile's first output: the walk
/// of [`products`]' `compute` over register tiles, for outputs `stride` apart with the first
/// panel's first column at the start of each row.
pub(super) fn for_each_tile(
    m: usize,
    panels: Range<usize>,
    out: &mut [f32],
    stride: usize,
    mut tile: impl FnMut(usize, Range<usize>, &mut [f32]),
) {
    let first = panels.start * PANEL;
    for panel in panels {
        for start in (0..m).step_by(TILE_ROWS) {
            let rows = start..(start + TILE_ROWS).min(m);
            tile(
                panel,
                rows,
                &mut out[start * stride + panel * PANEL - first..],
            );
        }
    }
}

/// The lanes of 16-column block `j` of a panel that fall inside its first `cols` columns: the
/// store mask of a panel cut short by the matrix's last column.
pub(super) fn lane_mask(cols: usize, j: usize) -> u16 {
    let live = cols.saturating_sub(16 * j).min(16);
    ((1u32 << live) - 1) as u16
}

#[cfg(test)]
mod tests {
    use super::*;

    /// Every output is written once, by the call that owns its row and column, whatever the
    /// split: many rows, few rows, a last panel and a last task cut short.
    #[test]
    fn every_output_lands_in_its_place() {
        for (m, n) in [
            (1, 1),
            (3, 64),
            (5, 1000),
            (ROWS_PER_TASK + 1, 130),
            (100, 257),
        ] {
            let out = products(m, n, |rows, panels, out, stride| {
                let first_col = panels.start * PANEL;
                let last_col = (panels.end * PANEL).min(n);
                for (i, row) in rows.enumerate() {
                    for col in first_col..last_col {
                        out[i * stride + col - first_col] = (row * n + col) as f32;
                    }
                }
            });
            let expected: Vec<f32> = (0..m * n).map(|i| i as f32).collect();
            assert_eq!(out, expected, "m={m} n={n}");
        }
    }
}
