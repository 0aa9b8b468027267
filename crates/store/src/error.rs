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
    /// Every connection stayed in use longer than a caller waits for one: a load the
    /// database cannot keep up with, or a stalled disk. Worth trying again shortly.
    #[error("the database is busy: {0}")]
    Busy(String),
    #[error("database error: {0}")]
    Database(sqlx::Error),
}

impl From<sqlx::Error> for StoreError {
    fn from(e: sqlx::Error) -> Self {
        match e {
            sqlx::Error::PoolTimedOut => StoreError::Busy(
                "no connection to the database came free in time; is it overloaded or unreachable?"
                    .into(),
            ),
            sqlx::Error::AnyDriverError(e) if e.is::<crate::postgres::AllClosed>() => {
                StoreError::Busy(e.to_string())
            }
            e => StoreError::Database(e),
        }
    }
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

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn a_pool_that_timed_out_is_busy_and_other_errors_are_not() {
        let e = StoreError::from(sqlx::Error::PoolTimedOut);
        assert!(matches!(e, StoreError::Busy(_)), "{e:?}");
        let closed = crate::postgres::AllClosed(17);
        let e = StoreError::from(sqlx::Error::AnyDriverError(Box::new(closed)));
        assert!(
            matches!(e, StoreError::Busy(ref m) if m.contains("closed each of the 17")),
            "{e:?}"
        );
        let e = StoreError::from(sqlx::Error::RowNotFound);
        assert!(matches!(e, StoreError::Database(_)), "{e:?}");
    }
}
