//! Reads of the stored series behind `GET /prices/history`, `GET /bars` and
//! `GET /indicators/moving-average`: the caller's filters are checked and
//! turned into store queries here, so every front end (HTTP today, the
//! realtime API and the CLI later) accepts and refuses the same requests.

use crate::AggregatorConfig;
use marketd_model::time::parse_bound;
use marketd_model::{Bar, Indicator, Interval, MaKind, Symbol};
use marketd_store::prelude::*;
use marketd_store::{AnyStore, BarQuery, IndicatorQuery, TickPage, TickQuery};
use std::sync::Arc;

/// Why a series read was refused or failed.
#[derive(Debug, thiserror::Error)]
pub enum SeriesError {
    /// The request is malformed; the message is safe to show to the caller.
    #[error("{0}")]
    Validation(String),
    #[error(transparent)]
    Store(#[from] marketd_store::Error),
}

impl From<marketd_model::Error> for SeriesError {
    fn from(e: marketd_model::Error) -> Self {
        SeriesError::Validation(e.to_string())
    }
}

/// The filters every series read shares, as the caller wrote them.
#[derive(Debug, Clone, Default)]
pub struct SeriesFilter {
    /// Canonical symbol, e.g. `AAPL`.
    pub symbol: String,
    /// Only rows of this source (provider or venue).
    pub source: Option<String>,
    /// Inclusive start: RFC 3339 or epoch seconds/ms/ns.
    pub from: Option<String>,
    /// Exclusive end: RFC 3339 or epoch seconds/ms/ns.
    pub to: Option<String>,
    /// Page size.
    pub limit: Option<u32>,
}

/// A moving-average read: the shared filters plus what to average.
#[derive(Debug, Clone, Default)]
pub struct MaRequest {
    pub filter: SeriesFilter,
    /// Window in bars (default 20, or the first configured window).
    pub window: Option<u32>,
    /// `sma` or `ema` (default `sma`).
    pub kind: Option<String>,
    /// Interval of the averaged bars (default `1s`).
    pub interval: Option<String>,
}

/// The answer to a moving-average read, with the choices the defaults made.
#[derive(Debug, Clone)]
pub struct MovingAverage {
    pub symbol: Symbol,
    pub kind: MaKind,
    pub window: u32,
    pub interval: Interval,
    pub values: Vec<Indicator>,
}

/// Checked, paginated reads of ticks, bars and moving averages.
#[derive(Debug, Clone)]
pub struct SeriesService {
    store: Arc<AnyStore>,
    /// Which windows and intervals the aggregator computes (others are refused
    /// instead of answered with an empty series).
    aggregator: AggregatorConfig,
    max_page: u32,
}

/// Page sizes when the caller gives none.
const HISTORY_PAGE: u32 = 1000;
const SERIES_PAGE: u32 = 500;
/// Most (symbol, source) pairs `symbols` reads.
const MAX_SYMBOLS: u32 = 10_000;

impl SeriesService {
    pub fn new(store: Arc<AnyStore>, aggregator: AggregatorConfig, max_page: u32) -> Self {
        SeriesService {
            store,
            aggregator,
            max_page,
        }
    }

    /// Largest page a read may ask for.
    pub fn max_page(&self) -> u32 {
        self.max_page
    }

    /// Which intervals and moving-average windows exist to be read.
    pub fn aggregator(&self) -> &AggregatorConfig {
        &self.aggregator
    }

    /// Stored ticks in event-time order, one page.
    pub async fn history(
        &self,
        filter: SeriesFilter,
        cursor: Option<String>,
    ) -> Result<(Symbol, TickPage), SeriesError> {
        let symbol = Symbol::parse(&filter.symbol)?;
        let c = self.common(filter, HISTORY_PAGE)?;
        let q = TickQuery {
            symbol: symbol.clone(),
            source: c.source,
            from: c.from,
            to: c.to,
            limit: c.limit,
            cursor,
        };
        Ok((symbol, self.store.tick_history(&q).await?))
    }

    /// OHLCV bars of one interval (default `1m`).
    pub async fn bars(
        &self,
        filter: SeriesFilter,
        interval: Option<&str>,
    ) -> Result<(Symbol, Interval, Vec<Bar>), SeriesError> {
        let symbol = Symbol::parse(&filter.symbol)?;
        let interval: Interval = interval.unwrap_or("1m").parse()?;
        let c = self.common(filter, SERIES_PAGE)?;
        let q = BarQuery {
            symbol: symbol.clone(),
            source: c.source,
            interval,
            from: c.from,
            to: c.to,
            limit: c.limit,
        };
        Ok((symbol, interval, self.store.bars(&q).await?))
    }

    /// Every symbol the platform has, one row each: its newest bar of the
    /// longest interval the aggregator builds (a day by default), from the
    /// source that updated it last. The interval is returned with them.
    pub async fn symbols(&self) -> Result<(Interval, Vec<Bar>), SeriesError> {
        let Some(interval) = self
            .aggregator
            .intervals
            .iter()
            .copied()
            .max_by_key(|i| i.nanos())
        else {
            return Ok((Interval::D1, Vec::new()));
        };
        let bars = self.store.latest_bars(interval, MAX_SYMBOLS).await?;
        let mut newest: Vec<Bar> = Vec::with_capacity(bars.len());
        // The rows come by symbol then source: keep each symbol's most
        // recently updated source.
        for bar in bars {
            match newest.last_mut() {
                Some(last) if last.symbol == bar.symbol => {
                    if bar.last_ts > last.last_ts {
                        *last = bar;
                    }
                }
                _ => newest.push(bar),
            }
        }
        Ok((interval, newest))
    }

    /// A simple or exponential moving average of bar closes, for a window and
    /// interval the aggregator computes.
    pub async fn moving_average(&self, req: MaRequest) -> Result<MovingAverage, SeriesError> {
        let symbol = Symbol::parse(&req.filter.symbol)?;
        let kind: MaKind = req.kind.as_deref().unwrap_or("sma").parse()?;
        let interval: Interval = req.interval.as_deref().unwrap_or("1s").parse()?;
        let agg = &self.aggregator;
        let window = req.window.unwrap_or_else(|| {
            if agg.ma_windows.contains(&20) {
                20
            } else {
                agg.ma_windows.first().copied().unwrap_or(20)
            }
        });
        if !agg.ma_windows.contains(&window) {
            return Err(SeriesError::Validation(format!(
                "window {window} is not computed; configured windows: {:?}",
                agg.ma_windows
            )));
        }
        if !agg.ma_intervals.contains(&interval) {
            return Err(SeriesError::Validation(format!(
                "moving averages are computed for intervals {:?}, not {interval}",
                agg.ma_intervals
                    .iter()
                    .map(|i| i.as_str())
                    .collect::<Vec<_>>()
            )));
        }
        let c = self.common(req.filter, SERIES_PAGE)?;
        let q = IndicatorQuery {
            symbol: symbol.clone(),
            source: c.source,
            interval,
            kind,
            window,
            from: c.from,
            to: c.to,
            limit: c.limit,
        };
        Ok(MovingAverage {
            values: self.store.indicators(&q).await?,
            symbol,
            kind,
            window,
            interval,
        })
    }

    /// Checks the shared filters (the symbol is parsed by the caller, first,
    /// so a bad symbol is the error reported whatever else is wrong).
    fn common(&self, f: SeriesFilter, default_limit: u32) -> Result<Common, SeriesError> {
        let (from, to) = parse_range(f.from.as_deref(), f.to.as_deref())?;
        Ok(Common {
            source: source_param(f.source)?,
            from,
            to,
            limit: limit(f.limit, default_limit, self.max_page)?,
        })
    }
}

struct Common {
    source: Option<String>,
    from: Option<i64>,
    to: Option<i64>,
    limit: u32,
}

fn parse_range(
    from: Option<&str>,
    to: Option<&str>,
) -> Result<(Option<i64>, Option<i64>), SeriesError> {
    let conv = |name: &str, v: Option<&str>| -> Result<Option<i64>, SeriesError> {
        v.map(|s| {
            parse_bound(s).ok_or_else(|| {
                SeriesError::Validation(format!(
                    "{name}: expected RFC 3339 or an epoch number, got {s:?}"
                ))
            })
        })
        .transpose()
    };
    let (f, t) = (conv("from", from)?, conv("to", to)?);
    if let (Some(f), Some(t)) = (f, t)
        && f >= t
    {
        return Err(SeriesError::Validation("from must be before to".into()));
    }
    Ok((f, t))
}

/// A `source=` filter: a provider or venue name, 1-64 visible ASCII characters.
fn source_param(v: Option<String>) -> Result<Option<String>, SeriesError> {
    match v {
        Some(s) if s.is_empty() || s.len() > 64 || !s.bytes().all(|b| b.is_ascii_graphic()) => Err(
            SeriesError::Validation("source must be 1 to 64 visible ASCII characters".into()),
        ),
        v => Ok(v),
    }
}

fn limit(v: Option<u32>, default: u32, max: u32) -> Result<u32, SeriesError> {
    match v {
        None => Ok(default),
        Some(0) => Err(SeriesError::Validation("limit must be at least 1".into())),
        Some(n) if n > max => Err(SeriesError::Validation(format!(
            "limit must be at most {max}"
        ))),
        Some(n) => Ok(n),
    }
}
