//! The former home of the latest-price service, kept so `crate::price::*`
//! and `marketd_engine::price::*` paths keep resolving; the service lives in
//! [`crate::services::prices`].

pub use crate::services::prices::{
    LatestPrice, PriceError, PriceService, PriceSource, PricesConfig,
};
