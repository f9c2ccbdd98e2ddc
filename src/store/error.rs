//! The store's errors, by what a caller does about them: a file that is not
//! tenx's is left alone, a damaged one is moved aside, a missing snapshot is
//! named, anything else is told as it came.

use std::fmt::Display;

#[derive(Debug, thiserror::Error)]
pub enum StoreError {
    /// Not a tenx snapshot database, or a newer tenx's: left untouched.
    #[error("{0}")]
    Foreign(String),
    /// SQLite says the file is corrupt, or a snapshot's rows contradict
    /// each other.
    #[error("{0}")]
    Damaged(String),
    /// No such snapshot, or no place for the data.
    #[error("{0}")]
    Missing(String),
    /// SQLite or the file system failed otherwise (a lock held past the
    /// timeout, a full disk, no permission).
    #[error("{0}")]
    Failed(String),
}

impl StoreError {
    /// Whether the file is damaged, not merely busy or foreign.
    pub fn is_damage(&self) -> bool {
        matches!(self, StoreError::Damaged(_))
    }

    /// The same kind, with what was being done in front.
    fn within(self, what: impl Display) -> StoreError {
        let wrap = |m: String| format!("{what}: {m}");
        match self {
            StoreError::Foreign(m) => StoreError::Foreign(wrap(m)),
            StoreError::Damaged(m) => StoreError::Damaged(wrap(m)),
            StoreError::Missing(m) => StoreError::Missing(wrap(m)),
            StoreError::Failed(m) => StoreError::Failed(wrap(m)),
        }
    }
}

impl From<rusqlite::Error> for StoreError {
    fn from(e: rusqlite::Error) -> StoreError {
        let damaged = matches!(
            e.sqlite_error_code(),
            Some(rusqlite::ErrorCode::DatabaseCorrupt | rusqlite::ErrorCode::NotADatabase)
        );
        if damaged {
            StoreError::Damaged(e.to_string())
        } else {
            StoreError::Failed(e.to_string())
        }
    }
}

/// A value of ours that would not serialise: nothing to tell apart.
impl From<serde_json::Error> for StoreError {
    fn from(e: serde_json::Error) -> StoreError {
        StoreError::Failed(e.to_string())
    }
}

impl From<std::io::Error> for StoreError {
    fn from(e: std::io::Error) -> StoreError {
        StoreError::Failed(e.to_string())
    }
}

/// What was being done when an error came, kept in front of it; the kind
/// stays.
pub trait Context<T> {
    fn context(self, what: impl Display) -> Result<T, StoreError>;
    fn with_context<D: Display>(self, what: impl FnOnce() -> D) -> Result<T, StoreError>;
}

impl<T, E: Into<StoreError>> Context<T> for Result<T, E> {
    fn context(self, what: impl Display) -> Result<T, StoreError> {
        self.map_err(|e| e.into().within(what))
    }

    fn with_context<D: Display>(self, what: impl FnOnce() -> D) -> Result<T, StoreError> {
        self.map_err(|e| e.into().within(what()))
    }
}

/// A value that is not there: missing, named by `what`.
impl<T> Context<T> for Option<T> {
    fn context(self, what: impl Display) -> Result<T, StoreError> {
        self.ok_or_else(|| StoreError::Missing(what.to_string()))
    }

    fn with_context<D: Display>(self, what: impl FnOnce() -> D) -> Result<T, StoreError> {
        self.ok_or_else(|| StoreError::Missing(what().to_string()))
    }
}

/// Returns the error of that kind with a formatted message.
macro_rules! fail {
    ($kind:ident, $($arg:tt)*) => {
        return Err($crate::store::StoreError::$kind(format!($($arg)*)))
    };
}
pub(crate) use fail;
