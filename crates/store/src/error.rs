use klaxon_core::CommandError;

#[derive(Debug, thiserror::Error)]
pub enum StoreError {
    #[error("{0} does not exist")]
    NotFound(String),
    /// The command was refused by the domain; nothing was written.
    #[error(transparent)]
    Command(#[from] CommandError),
    /// A unique value (an email, a chat identity) is taken already.
    #[error("{0}")]
    Conflict(String),
    #[error("invalid job: {0}")]
    InvalidJob(String),
    #[error("the database is not usable: {0}")]
    Config(String),
    #[error("stored data could not be read ({0}); was it written by a newer Klaxon?")]
    Corrupt(String),
    #[error("database error: {0}")]
    Database(#[from] sqlx::Error),
}

impl From<serde_json::Error> for StoreError {
    fn from(e: serde_json::Error) -> Self {
        StoreError::Corrupt(e.to_string())
    }
}

impl StoreError {
    pub(crate) fn is_unique_violation(e: &sqlx::Error) -> bool {
        matches!(e, sqlx::Error::Database(d) if d.is_unique_violation())
    }
}
