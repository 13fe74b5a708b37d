//! From the alignment heads' attention to a token ↔ time path, as openai-whisper's
//! `find_alignment` and CTranslate2's `align` compute it: normalise each head over the tokens,
//! median-filter along time, average the heads, then find the cheapest monotonic path through
//! the negated matrix with dynamic time warping.

use rayon::prelude::*;

/// Width of the median filter along time, openai-whisper's default.
pub(super) const MEDIAN_FILTER_WIDTH: usize = 7;

/// Turns cross-attention weights `[heads, tokens, frames]` (row-major, softmax already applied)
/// into the matrix `[tokens, frames]` that the path follows.
pub(super) fn alignment_matrix(
    weights: &[f32],
    heads: usize,
    tokens: usize,
    frames: usize,
) -> Vec<f32> {
    assert_eq!(weights.len(), heads * tokens * frames, "weights shape");
    let mut filtered = vec![0f32; weights.len()];
    filtered
        .par_chunks_mut(tokens * frames)
        .zip(weights.par_chunks(tokens * frames))
        .for_each(|(out, head)| {
            let normalised = normalise_over_tokens(head, tokens, frames);
            for (o, row) in out.chunks_mut(frames).zip(normalised.chunks(frames)) {
                median_filter(row, MEDIAN_FILTER_WIDTH, o);
            }
        });
    let mut matrix = vec![0f32; tokens * frames];
    for head in filtered.chunks(tokens * frames) {
        matrix.iter_mut().zip(head).for_each(|(m, &w)| *m += w);
    }
    matrix.iter_mut().for_each(|m| *m /= heads as f32);
    matrix
}

/// `(x − mean) / std` down each frame's column (population std). Whisper does this so that
/// frames every token attends to (silence, the window edges) stop standing out. A constant
/// column becomes zeros instead of NaN.
fn normalise_over_tokens(head: &[f32], tokens: usize, frames: usize) -> Vec<f32> {
    let mut mean = vec![0f64; frames];
    let mut square = vec![0f64; frames];
    for row in head.chunks(frames) {
        for (f, &x) in row.iter().enumerate() {
            mean[f] += f64::from(x);
            square[f] += f64::from(x) * f64::from(x);
        }
    }
    let n = tokens as f64;
    let std: Vec<f64> = mean
        .iter_mut()
        .zip(&square)
        .map(|(m, &s)| {
            *m /= n;
            (s / n - *m * *m).max(0.0).sqrt()
        })
        .collect();
    head.chunks(frames)
        .flat_map(|row| {
            row.iter().enumerate().map(|(f, &x)| match std[f] > 0.0 {
                true => ((f64::from(x) - mean[f]) / std[f]) as f32,
                false => 0.0,
            })
        })
        .collect()
}

/// Median over a sliding window of odd `width`, the input mirrored at the edges without
/// repeating the edge sample (numpy's and CTranslate2's "reflect"). A row no longer than half
/// the window is copied unchanged, as both do.
fn median_filter(row: &[f32], width: usize, out: &mut [f32]) {
    let n = row.len();
    let rank = width / 2;
    if n <= rank {
        out.copy_from_slice(row);
        return;
    }
    let mut window = vec![0f32; width];
    for (j, o) in out.iter_mut().enumerate() {
        for (k, w) in window.iter_mut().enumerate() {
            let mut read = (j + k).abs_diff(rank);
            if read >= n {
                read = 2 * n - read - 2;
            }
            *w = row[read];
        }
        *o = *window.select_nth_unstable_by(rank, f32::total_cmp).1;
    }
}

/// Dynamic time warping over `cost` (`[rows, cols]`, row-major): the monotonic path from
/// `(0, 0)` to `(rows−1, cols−1)` with the least total cost, as `(row, col)` pairs in order.
/// Ties break as openai-whisper's `dtw_cpu` breaks them (diagonal, then up, then left).
pub(super) fn dtw_path(cost: &[f32], rows: usize, cols: usize) -> Vec<(usize, usize)> {
    const DIAGONAL: u8 = 0;
    const UP: u8 = 1;
    const LEFT: u8 = 2;
    let width = cols + 1;
    let mut total = vec![f32::INFINITY; (rows + 1) * width];
    let mut trace = vec![LEFT; (rows + 1) * width];
    total[0] = 0.0;
    for i in 1..=rows {
        trace[i * width] = UP;
        for j in 1..=cols {
            let c0 = total[(i - 1) * width + j - 1];
            let c1 = total[(i - 1) * width + j];
            let c2 = total[i * width + j - 1];
            let (c, t) = if c0 < c1 && c0 < c2 {
                (c0, DIAGONAL)
            } else if c1 < c0 && c1 < c2 {
                (c1, UP)
            } else {
                (c2, LEFT)
            };
            total[i * width + j] = cost[(i - 1) * cols + j - 1] + c;
            trace[i * width + j] = t;
        }
    }
    let (mut i, mut j) = (rows, cols);
    let mut path = Vec::with_capacity(rows + cols);
    while i > 0 && j > 0 {
        path.push((i - 1, j - 1));
        match trace[i * width + j] {
            DIAGONAL => (i, j) = (i - 1, j - 1),
            UP => i -= 1,
            _ => j -= 1,
        }
    }
    path.reverse();
    path
}

/// The column at which `path` first reaches each row, in seconds (`seconds_per_col` apart):
/// row `r`'s entry is when token `r` starts to be attended.
pub(super) fn jump_times(path: &[(usize, usize)], seconds_per_col: f64) -> Vec<f64> {
    let mut times = Vec::new();
    let mut last_row = None;
    for &(row, col) in path {
        if last_row != Some(row) {
            times.push(col as f64 * seconds_per_col);
            last_row = Some(row);
        }
    }
    times
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn median_filter_reflects_at_the_edges() {
        let row = [5.0, 1.0, 4.0, 2.0, 8.0, 7.0, 3.0, 6.0];
        let mut out = [0.0; 8];
        median_filter(&row, 3, &mut out);
        // Reflected input: 1 5 1 4 2 8 7 3 6 3.
        assert_eq!(out, [1.0, 4.0, 2.0, 4.0, 7.0, 7.0, 6.0, 3.0]);
        let mut short = [0.0; 3];
        median_filter(&row[..3], 7, &mut short);
        assert_eq!(short, [5.0, 1.0, 4.0]);
    }

    #[test]
    fn normalised_columns_have_zero_mean_and_unit_spread() {
        let head = [1.0, 3.0, 3.0, 3.0, 5.0, 3.0];
        let n = normalise_over_tokens(&head, 3, 2);
        let col0 = [n[0], n[2], n[4]];
        assert!(col0.iter().sum::<f32>().abs() < 1e-6);
        assert!((col0.iter().map(|x| x * x).sum::<f32>() / 3.0 - 1.0).abs() < 1e-6);
        assert_eq!(
            [n[1], n[3], n[5]],
            [0.0; 3],
            "a constant column becomes zeros"
        );
    }

    #[test]
    fn dtw_follows_the_cheap_diagonal_band() {
        // Three tokens over six frames: token 0 holds frames 0–1, token 1 frames 2–3, token 2
        // frames 4–5 (cost −1 there, 0.5 elsewhere).
        let (rows, cols) = (3, 6);
        let cost: Vec<f32> = (0..rows * cols)
            .map(|k| {
                if (k % cols) / 2 == k / cols {
                    -1.0
                } else {
                    0.5
                }
            })
            .collect();
        let path = dtw_path(&cost, rows, cols);
        assert_eq!(path, [(0, 0), (0, 1), (1, 2), (1, 3), (2, 4), (2, 5)]);
        assert_eq!(jump_times(&path, 0.02), [0.0, 0.04, 0.08]);
    }

    #[test]
    fn dtw_matches_openai_whisper_including_ties() {
        // A zero-cost detour ties with the diagonal; openai-whisper's `dtw_cpu` takes it.
        let cost: Vec<f32> = (0..18)
            .map(|k| if (k % 6) / 2 == k / 6 { -1.0 } else { 0.0 })
            .collect();
        let expected = [
            (0, 0),
            (0, 1),
            (1, 1),
            (1, 2),
            (1, 3),
            (2, 3),
            (2, 4),
            (2, 5),
        ];
        assert_eq!(dtw_path(&cost, 3, 6), expected);
        // Random 5 × 12 costs (numpy seed 0, rounded) and the path `dtw_cpu` gives for them.
        #[rustfmt::skip]
        let cost = [
            0.13, -0.13, 0.64, 0.10, -0.54, 0.36, 1.30, 0.95, -0.70, -1.27, -0.62, 0.04,
            -2.33, -0.22, -1.25, -0.73, -0.54, -0.32, 0.41, 1.04, -0.13, 1.37, -0.67, 0.35,
            0.90, 0.09, -0.74, -0.92, -0.46, 0.22, -1.01, -0.21, -0.16, 0.54, 0.21, 0.36,
            -0.65, -0.13, 0.78, 1.49, -1.26, 1.51, 1.35, 0.78, 0.26, -0.31, 1.46, 1.96,
            1.80, 1.32, 0.36, -1.21, -0.00, 0.66, -1.29, 0.40, 0.43, 0.70, -1.18, -0.66,
        ];
        let expected = [
            (0, 0),
            (1, 0),
            (1, 1),
            (1, 2),
            (2, 2),
            (2, 3),
            (2, 4),
            (2, 5),
            (2, 6),
            (2, 7),
            (2, 8),
            (3, 9),
            (4, 10),
            (4, 11),
        ];
        assert_eq!(dtw_path(&cost, 5, 12), expected);
    }

    #[test]
    fn dtw_path_is_monotonic_and_complete_on_any_input() {
        let (rows, cols) = (7, 40);
        let cost: Vec<f32> = (0..rows * cols)
            .map(|k| ((k * 7919) % 101) as f32 / 10.0 - 5.0)
            .collect();
        let path = dtw_path(&cost, rows, cols);
        assert_eq!(path.first(), Some(&(0, 0)));
        assert_eq!(path.last(), Some(&(rows - 1, cols - 1)));
        for w in path.windows(2) {
            let (di, dj) = (w[1].0 - w[0].0, w[1].1 - w[0].1);
            assert!(di <= 1 && dj <= 1 && di + dj >= 1, "{w:?}");
        }
        assert_eq!(jump_times(&path, 1.0).len(), rows);
    }
}
