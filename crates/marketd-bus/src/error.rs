use marketd_model::Topic;
use thiserror::Error;

#[derive(Debug, Error)]
pub enum Error {
    #[error("unsupported bus URL {0:?}: expected memory:// or kafka://host:port[,host:port...]")]
    UnsupportedUrl(String),
    #[error("topic {0} is closed")]
    Closed(Topic),
    #[error("kafka at {brokers}: {action}: {source}")]
    Kafka {
        brokers: String,
        action: &'static str,
        #[source]
        source: rdkafka::error::KafkaError,
    },
    #[error("kafka at {brokers}: {message}")]
    KafkaOther { brokers: String, message: String },
}

impl Error {
    pub(crate) fn kafka(
        brokers: &str,
        action: &'static str,
        source: rdkafka::error::KafkaError,
    ) -> Self {
        Error::Kafka {
            brokers: brokers.to_string(),
            action,
            source,
        }
    }
}

pub type Result<T, E = Error> = std::result::Result<T, E>;
