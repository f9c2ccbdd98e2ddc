//! Whether the explorer holds the terminal (raw mode, alternate screen):
//! then nothing may print over it, and a failure must give it back first.
//! One flag for every part of tenx that would otherwise write to it.

use std::sync::atomic::{AtomicBool, Ordering};

static OWNED: AtomicBool = AtomicBool::new(false);

/// Set when the explorer takes the terminal, cleared when it gives it back.
pub fn set_owned(owned: bool) {
    OWNED.store(owned, Ordering::SeqCst);
}

/// Whether the explorer holds the terminal now.
pub fn owned() -> bool {
    OWNED.load(Ordering::SeqCst)
}
