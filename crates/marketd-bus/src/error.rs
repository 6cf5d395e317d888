use marketd_model::Topic;
use thiserror::Error;

#[derive(Debug, Error)]
pub enum Error {
    #[error("unsupported bus URL {0:?}: expected memory://")]
    UnsupportedUrl(String),
    #[error("topic {0} is closed")]
    Closed(Topic),
}

pub type Result<T, E = Error> = std::result::Result<T, E>;
