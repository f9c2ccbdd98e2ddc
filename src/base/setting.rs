//! A setting tenx cannot use — an option, an environment variable, a
//! profile's value — named, with what it takes.

#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
#[error("{0}")]
pub struct SettingError(pub String);
