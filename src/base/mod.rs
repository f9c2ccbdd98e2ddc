//! What every layer may use: network text made safe to print, the one
//! writer of files, the rule that keeps secrets out of what leaves tenx,
//! the error of a setting tenx cannot use, the flag that says the explorer
//! holds the terminal, the allocator's guard.

pub mod alloc;
pub mod outfile;
pub mod redact;
pub mod setting;
pub mod terminal;
pub mod text;
