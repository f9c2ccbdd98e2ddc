//! The explorer's modes, one module each owning its state, its keys and its
//! view: browse (the tree and its panes), search, triage, export, help.

pub mod browse;
pub mod export;
pub mod help;
pub mod search;
pub mod triage;
