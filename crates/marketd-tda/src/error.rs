//! The error type of this crate.

/// Errors of this crate.
#[derive(Debug, thiserror::Error)]
pub enum Error {
    /// Malformed text input.
    #[error("line {line}, column {column}: {message}")]
    Parse {
        line: usize,
        column: usize,
        message: String,
    },
    /// Malformed binary input.
    #[error("byte offset {offset}: {message}")]
    Binary { offset: usize, message: String },
    /// Input or computation too large.
    #[error("too large: {0}")]
    TooLarge(String),
    /// Invalid argument or data.
    #[error("invalid argument: {0}")]
    Invalid(String),
    /// A bad summary or distance request: the field (e.g. `landscape.samples`) and what is
    /// wrong with it.
    #[error("{field}: {message}")]
    Spec { field: String, message: String },
    /// The computation was canceled through its [`crate::Control`].
    #[error("canceled")]
    Canceled,
    /// I/O failure.
    #[error("i/o: {0}")]
    Io(#[from] std::io::Error),
}

impl Error {
    pub(crate) fn parse(line: usize, column: usize, message: String) -> Self {
        Error::Parse {
            line,
            column,
            message,
        }
    }
    pub(crate) fn spec(field: impl Into<String>, message: impl Into<String>) -> Self {
        Error::Spec {
            field: field.into(),
            message: message.into(),
        }
    }
    pub(crate) fn invalid(message: String) -> Self {
        Error::Invalid(message)
    }
}
