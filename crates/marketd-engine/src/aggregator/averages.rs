//! Moving averages (SMA and EMA per window) of the closes of closed bars.

use marketd_model::rust_decimal_to_f64 as to_f64;
use marketd_model::{Bar, Event, Indicator, MaKind};
use std::collections::VecDeque;

/// Moving averages of one series' closes.
#[derive(Debug, Default)]
pub(super) struct MaState {
    pub(super) closes: VecDeque<f64>,
    /// EMA per window, once seeded (after `window` closes, with their SMA).
    pub(super) ema: Vec<Option<f64>>,
    pub(super) count: u64,
}

pub(super) fn push_close(
    ma: &mut MaState,
    windows: &[u32],
    max_window: usize,
    bar: &Bar,
    out: &mut Vec<Event>,
) {
    let close = to_f64(bar.close);
    ma.closes.push_back(close);
    if ma.closes.len() > max_window.max(1) {
        ma.closes.pop_front();
    }
    ma.count += 1;
    if ma.ema.len() != windows.len() {
        ma.ema = vec![None; windows.len()];
    }
    for (i, &w) in windows.iter().enumerate() {
        let w_us = w as usize;
        if w == 0 || (ma.count as usize) < w_us {
            continue;
        }
        let sma = sma_of(ma.closes.iter().rev().take(w_us).copied(), w_us);
        let ema = match ma.ema[i] {
            None => sma,
            Some(prev) => {
                let alpha = 2.0 / (f64::from(w) + 1.0);
                alpha * close + (1.0 - alpha) * prev
            }
        };
        ma.ema[i] = Some(ema);
        for (kind, value) in [(MaKind::Sma, sma), (MaKind::Ema, ema)] {
            out.push(Event::Indicator(Indicator {
                symbol: bar.symbol.clone(),
                source: bar.source.clone(),
                interval: bar.interval,
                kind,
                window: w,
                ts: bar.start,
                value,
            }));
        }
    }
}

/// Mean of the last `n` closes (given newest first), summed oldest first so
/// an independent recomputation in the same order gives the same bits.
fn sma_of(newest_first: impl Iterator<Item = f64>, n: usize) -> f64 {
    let mut v: Vec<f64> = newest_first.collect();
    v.reverse();
    v.iter().sum::<f64>() / n as f64
}
