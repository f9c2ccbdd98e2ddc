//! The explorer's panic hook, in a process of its own (a panic hook is
//! global): a panic on the UI thread gives the terminal back, a panic on a
//! worker thread does not — the explorer goes on.

use std::sync::atomic::{AtomicUsize, Ordering};

static RESTORED: AtomicUsize = AtomicUsize::new(0);

fn restore() {
    RESTORED.fetch_add(1, Ordering::SeqCst);
}

#[test]
fn only_a_panic_on_the_ui_thread_restores_the_terminal() {
    let here = std::thread::current().id();
    let other = std::thread::spawn(|| std::thread::current().id())
        .join()
        .expect("thread");
    assert!(tenx::tui::panic_restores_terminal(here, here));
    assert!(!tenx::tui::panic_restores_terminal(here, other));

    let hook = tenx::tui::UiPanicHook::install(restore);
    // A worker (a plain thread, and a tokio blocking task) panics.
    assert!(
        std::thread::spawn(|| panic!("a worker panicked"))
            .join()
            .is_err()
    );
    let rt = tokio::runtime::Builder::new_multi_thread()
        .worker_threads(1)
        .build()
        .expect("rt");
    assert!(
        rt.block_on(async {
            tokio::task::spawn_blocking(|| panic!("a blocking task panicked")).await
        })
        .is_err()
    );
    assert_eq!(
        RESTORED.load(Ordering::SeqCst),
        0,
        "a worker's panic restored the terminal"
    );
    // The UI thread panics: the terminal comes back.
    assert!(std::panic::catch_unwind(|| panic!("the UI panicked")).is_err());
    assert_eq!(RESTORED.load(Ordering::SeqCst), 1);
    // With the explorer gone, panics are ordinary again.
    drop(hook);
    assert!(std::panic::catch_unwind(|| panic!("after the explorer")).is_err());
    assert_eq!(RESTORED.load(Ordering::SeqCst), 1);
}
