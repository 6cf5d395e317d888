//! Bars: folding one tick into one interval's series, closing buckets on
//! the series' own watermark and correcting retained buckets for late ticks.

use super::averages::push_close;
use super::{AggregatorConfig, Series};
use marketd_model::{Bar, Event, Interval, Tick};

/// Folds a tick into one interval's series; false when it was too late.
pub(super) fn apply_interval(
    series: &mut Series,
    cfg: &AggregatorConfig,
    max_window: usize,
    tick: &Tick,
    interval: Interval,
    out: &mut Vec<Event>,
) -> bool {
    let start = interval.bucket_start(tick.ts_event);
    let Some(newest) = series.bars.back().map(|b| b.start) else {
        series.bars.push_back(Bar::open_with(tick, interval));
        series.dirty = true;
        return true;
    };
    if start > newest {
        let mut closed = series.bars.pop_back().expect("newest exists");
        closed.refresh_vwap();
        // A seeded newest bar may be closed already: its close is in the
        // moving averages.
        let was_closed = std::mem::replace(&mut closed.closed, true);
        if let Some(ma) = series.ma.as_mut()
            && !was_closed
        {
            push_close(ma, &cfg.ma_windows, max_window, &closed, out);
        }
        out.push(Event::Bar(closed.clone()));
        series.bars.push_back(closed);
        series.bars.push_back(Bar::open_with(tick, interval));
        series.dirty = true;
        while series.bars.len() > cfg.late_buckets + 1 {
            series.bars.pop_front();
        }
    } else if start == newest {
        // The open bar's VWAP is computed when it is published (here on
        // closing, or by `flush_open`), not on every tick.
        if let Some(b) = series.bars.back_mut() {
            b.fold(tick);
        }
        series.dirty = true;
    } else {
        // Late: the bucket is before the open one.
        let oldest = series.bars.front().map(|b| b.start).unwrap_or(start);
        if start < oldest {
            return false;
        }
        let pos = series
            .bars
            .iter()
            .position(|b| b.start >= start)
            .unwrap_or(series.bars.len());
        let bar = if series.bars.get(pos).is_some_and(|b| b.start == start) {
            let b = &mut series.bars[pos];
            b.apply(tick);
            b
        } else {
            let mut b = Bar::open_with(tick, interval);
            b.closed = true;
            series.bars.insert(pos, b);
            &series.bars[pos]
        };
        out.push(Event::Bar(bar.clone()));
    }
    true
}
