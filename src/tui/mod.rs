//! The explorer's terminal and event loop: setup and restore (a guard, a
//! panic hook for the UI thread, signals), and `run`, which turns keys,
//! fetch events, finished background jobs, signals and frames into `Msg`s
//! for `App::handle` and starts the `Effect`s it returns (`Effects`), each
//! result coming back as a `Msg::Done`. Fetch events are applied between
//! frames, within about 8 ms; a frame is drawn only when something changed,
//! at most about 60 times a second.

pub mod app;
pub mod details;
mod incoming;
pub mod keymap;
pub mod modes;
pub mod msg;
pub mod settings;
pub mod theme;
pub mod tree;
pub mod view;

use std::io::Stdout;
use std::sync::Arc;
use std::time::{Duration, Instant};

use crossterm::event::{
    DisableMouseCapture, EnableMouseCapture, Event, EventStream, MouseEventKind,
};
use crossterm::execute;
use crossterm::terminal::{
    EnterAlternateScreen, LeaveAlternateScreen, disable_raw_mode, enable_raw_mode,
};
use futures::StreamExt;
use ratatui::Terminal;
use ratatui::backend::CrosstermBackend;

use crate::fetch::http::Http;
use crate::fetch::{FetchEvent, Source};
use crate::store::Store;

use app::{Action, App, Done, Effect, Msg};

/// How the explorer reads the tenant when asked to.
pub struct FetchPlan {
    pub http: Arc<Http>,
    pub sources: Vec<Source>,
    pub store_name: String,
    pub tenant_hint: String,
    /// Logon users: the budget a refresh reads; the rest carry over from
    /// the profile's latest snapshot.
    pub logons: crate::fetch::logons::LogonPolicy,
    /// Which API Defender is read through, and advanced hunting's limits.
    pub defender: crate::fetch::DefenderApi,
    pub hunting: crate::fetch::HuntingPolicy,
}

/// Restores the terminal when dropped, whatever ends the program.
struct TerminalGuard {
    _panics: UiPanicHook,
}

fn restore() {
    let _ = disable_raw_mode();
    let _ = execute!(
        std::io::stdout(),
        DisableMouseCapture,
        LeaveAlternateScreen,
        crossterm::cursor::Show
    );
}

impl Drop for TerminalGuard {
    fn drop(&mut self) {
        restore();
        crate::base::terminal::set_owned(false);
    }
}

/// Why the explorer could not run.
#[derive(Debug, thiserror::Error)]
pub enum TuiError {
    #[error("the explorer needs a terminal; use `tenx fetch` and `tenx export` in scripts")]
    NoTerminal,
    /// The terminal could not be set up or drawn to.
    #[error("the terminal: {0}")]
    Terminal(#[from] std::io::Error),
}

fn setup() -> Result<(TerminalGuard, Terminal<CrosstermBackend<Stdout>>), TuiError> {
    use std::io::IsTerminal;
    if !std::io::stdout().is_terminal() {
        return Err(TuiError::NoTerminal);
    }
    // A panic on this (the UI) thread restores the terminal before its
    // message is printed; one on a worker is logged and the UI goes on.
    let panics = UiPanicHook::install(restore);
    enable_raw_mode()?;
    let guard = TerminalGuard { _panics: panics };
    crate::base::terminal::set_owned(true);
    execute!(std::io::stdout(), EnterAlternateScreen, EnableMouseCapture)?;
    let terminal = Terminal::new(CrosstermBackend::new(std::io::stdout()))?;
    Ok((guard, terminal))
}

/// The thread that owns the terminal, and how to give it back, while the
/// explorer runs.
struct UiThread {
    id: std::thread::ThreadId,
    restore: fn(),
}

static UI_THREAD: std::sync::Mutex<Option<UiThread>> = std::sync::Mutex::new(None);

/// Whether a panic on `thread` must give the terminal back: only when it
/// is the UI thread. A worker's panic (a fetch task, an export, a search)
/// leaves the UI running; what it was doing reports its failure.
pub fn panic_restores_terminal(ui: std::thread::ThreadId, thread: std::thread::ThreadId) -> bool {
    ui == thread
}

/// The explorer's panic hook, installed once per process. While a
/// `UiPanicHook` is alive, a panic on the thread that installed it
/// restores the terminal and then prints as usual; a panic on any other
/// thread is written to the log only (printed, it would land on the
/// screen). With no explorer running, panics print as usual.
pub struct UiPanicHook(());

impl UiPanicHook {
    pub fn install(restore: fn()) -> UiPanicHook {
        static ONCE: std::sync::Once = std::sync::Once::new();
        *UI_THREAD.lock().unwrap_or_else(|p| p.into_inner()) = Some(UiThread {
            id: std::thread::current().id(),
            restore,
        });
        ONCE.call_once(|| {
            let previous = std::panic::take_hook();
            std::panic::set_hook(Box::new(move |info| {
                let here = std::thread::current();
                let ui = UI_THREAD
                    .lock()
                    .map(|u| u.as_ref().map(|u| (u.id, u.restore)))
                    .unwrap_or(None);
                match ui {
                    Some((id, restore)) if panic_restores_terminal(id, here.id()) => {
                        restore();
                        previous(info);
                    }
                    Some(_) => tracing::error!(
                        thread = here.name().unwrap_or("unnamed"),
                        "a worker thread panicked; the explorer goes on: {info}"
                    ),
                    None => previous(info),
                }
            }));
        });
        UiPanicHook(())
    }
}

impl Drop for UiPanicHook {
    fn drop(&mut self) {
        *UI_THREAD.lock().unwrap_or_else(|p| p.into_inner()) = None;
    }
}

/// How the explorer ended.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Ended {
    /// `q`, Ctrl-C as a key, or the end of input.
    Quit,
    /// A signal (its number): the terminal was restored first.
    Signal(i32),
}

impl Ended {
    /// 0 after a quit; 128 + the signal's number after a signal (130 for
    /// SIGINT, 129 SIGHUP, 131 SIGQUIT, 143 SIGTERM), as shells report it.
    pub fn exit_code(self) -> std::process::ExitCode {
        match self {
            Ended::Quit => std::process::ExitCode::SUCCESS,
            Ended::Signal(n) => std::process::ExitCode::from(u8::try_from(128 + n).unwrap_or(255)),
        }
    }
}

fn mouse_action(m: crossterm::event::MouseEvent) -> Option<Action> {
    match m.kind {
        MouseEventKind::ScrollUp => Some(Action::ScrollUp(m.column, m.row)),
        MouseEventKind::ScrollDown => Some(Action::ScrollDown(m.column, m.row)),
        MouseEventKind::Down(crossterm::event::MouseButton::Left) => {
            Some(Action::Click(m.column, m.row))
        }
        _ => None,
    }
}

/// Runs the explorer until the person quits. `load_snapshot` loads the
/// latest snapshot off the UI task; `fetch_now` starts reading the tenant
/// at once.
///
/// The loop owns no state of its own beyond the channels: it turns
/// terminal events, fetch events, finished work and signals into
/// `Msg`s for `App::handle`, runs the `Effect`s it returns on blocking
/// threads or tasks, and draws.
pub async fn run(
    mut app: App,
    plan: Option<FetchPlan>,
    load_snapshot: bool,
    fetch_now: bool,
) -> Result<Ended, TuiError> {
    // Every signal that ends a program is caught before the terminal
    // changes, so none can leave it raw.
    let mut signals = Signals::new();
    // The person's keys and colours; what cannot be used is said, and the
    // built-in ones stand in.
    let (keymap, user_theme, problems) = settings::load();
    app.keymap = keymap;
    theme::install(user_theme);
    for p in &problems {
        tracing::warn!(problem = %p, "keymap or theme");
    }
    app.notices = problems
        .iter()
        .map(|p| {
            format!(
                "{} (built-in keys and colours stand in)",
                crate::base::text::line(p)
            )
        })
        .collect();
    if let Some(p) = &plan {
        app.sources = p.sources.clone();
    }
    let (_guard, mut terminal) = setup()?;
    #[cfg(debug_assertions)]
    debug_worker_panic();
    let mut ended = Ended::Quit;
    let mut events = EventStream::new();
    let mut fx = Effects {
        plan: plan.as_ref(),
        fetch_rx: None,
        tx: tokio::sync::mpsc::unbounded_channel::<Done>(),
    };
    let effects = app.handle(Msg::Start {
        load_snapshot,
        fetch_now,
        store: plan.is_some(),
    });
    fx.run(effects);
    let mut tick = tokio::time::interval(Duration::from_millis(16));
    tick.set_missed_tick_behavior(tokio::time::MissedTickBehavior::Skip);
    let mut dirty = true;
    let mut last_spin = Instant::now();
    loop {
        if dirty {
            let effects = app.handle(Msg::Frame(chrono::Utc::now()));
            fx.run(effects);
            terminal.draw(|f| view::draw(f, &mut app))?;
            dirty = false;
        }
        if app.quit {
            break;
        }
        let msg = tokio::select! {
            ev = events.next() => match ev {
                Some(Ok(Event::Key(k))) if k.kind == crossterm::event::KeyEventKind::Press => {
                    match app.keymap.action(app.key_mode(), k) {
                        Some(a) => Msg::Action(a),
                        None => continue,
                    }
                }
                Some(Ok(Event::Mouse(m))) => match mouse_action(m) {
                    Some(a) => Msg::Action(a),
                    None => continue,
                },
                Some(Ok(Event::Resize(..))) => {
                    dirty = true;
                    continue;
                }
                Some(Ok(_)) => continue,
                Some(Err(e)) => return Err(e.into()),
                None => break,
            },
            Some(ev) = recv(&mut fx.fetch_rx) => {
                // Apply everything waiting, within a frame's budget.
                let start = Instant::now();
                let effects = app.handle(Msg::Fetch(ev));
                fx.run(effects);
                while app.fetching && start.elapsed() < Duration::from_millis(8) {
                    match fx.fetch_rx.as_mut().map(|r| r.try_recv()) {
                        Some(Ok(ev)) => {
                            let effects = app.handle(Msg::Fetch(ev));
                            fx.run(effects);
                        }
                        _ => break,
                    }
                }
                if !app.fetching {
                    fx.fetch_rx = None;
                }
                dirty = true;
                continue;
            }
            Some(done) = fx.tx.1.recv() => Msg::Done(done),
            sig = signals.recv() => {
                ended = Ended::Signal(sig);
                Msg::Signal
            }
            _ = tick.tick() => {
                if !(app.fetching && last_spin.elapsed() >= Duration::from_millis(100)) {
                    continue;
                }
                last_spin = Instant::now();
                Msg::Tick
            }
        };
        let effects = app.handle(msg);
        fx.run(effects);
        dirty = true;
    }
    drop(terminal);
    // A fetch that has ended is saved before tenx does: quitting while its
    // carry-over was read or its snapshot written would lose it.
    if app.busy() {
        eprintln!("tenx: saving the snapshot before quitting…");
        let deadline = tokio::time::Instant::now() + Duration::from_secs(60);
        while app.busy() {
            match tokio::time::timeout_at(deadline, fx.tx.1.recv()).await {
                Ok(Some(done)) => {
                    match &done {
                        Done::Saved(Ok(id)) => eprintln!("tenx: saved snapshot {id}"),
                        Done::Saved(Err(e)) => {
                            eprintln!(
                                "tenx: cannot save the snapshot: {}",
                                crate::base::text::line(&e.to_string())
                            )
                        }
                        _ => {}
                    }
                    let effects = app.handle(Msg::Done(done));
                    fx.run(effects);
                }
                Ok(None) | Err(_) => {
                    eprintln!("tenx: the snapshot was not saved in time; it is lost");
                    break;
                }
            }
        }
    }
    Ok(ended)
}

/// Runs the app's effects: blocking work on blocking threads, the fetch as
/// tasks; each result comes back on `tx` as a `Done`.
struct Effects<'a> {
    plan: Option<&'a FetchPlan>,
    fetch_rx: Option<tokio::sync::mpsc::UnboundedReceiver<FetchEvent>>,
    tx: (
        tokio::sync::mpsc::UnboundedSender<Done>,
        tokio::sync::mpsc::UnboundedReceiver<Done>,
    ),
}

impl Effects<'_> {
    fn run(&mut self, effects: Vec<Effect>) {
        for e in effects {
            self.start(e);
        }
    }

    fn start(&mut self, effect: Effect) {
        let tx = self.tx.0.clone();
        let plan = self.plan;
        match effect {
            Effect::Search(job) => {
                tokio::task::spawn_blocking(move || {
                    let (generation, results) = job.run();
                    let _ = tx.send(Done::Searched(generation, results));
                });
            }
            Effect::Export(job) => {
                tokio::task::spawn_blocking(move || {
                    let _ = tx.send(Done::Exported(job.run()));
                });
            }
            // The rest need the profile's store and tenant.
            _ if plan.is_none() => {}
            Effect::Fetch => {
                let Some(p) = plan else { return };
                let options = crate::fetch::FetchOptions {
                    logons: p.logons.clone(),
                    carry: Some(crate::store::carry_loader(p.store_name.clone())),
                    defender: p.defender,
                    hunting: p.hunting.clone(),
                    today: crate::fetch::today().ok(),
                };
                self.fetch_rx = Some(crate::fetch::spawn_with(
                    p.http.clone(),
                    &p.sources,
                    options,
                ));
            }
            Effect::LoadSnapshot => {
                let Some(name) = plan.map(|p| p.store_name.clone()) else {
                    return;
                };
                tokio::task::spawn_blocking(move || {
                    // Read-only: loading never writes to the store.
                    let result = Store::for_profile_read(&name).and_then(|s| match s {
                        Some(s) => match s.latest_id()? {
                            Some(id) => s.load(id).map(|l| Some(Box::new(l))),
                            None => Ok(None),
                        },
                        None => Ok(None),
                    });
                    let _ = tx.send(Done::Loaded(result));
                });
            }
            Effect::LoadTriage { from_snapshot } => {
                let Some(name) = plan.map(|p| p.store_name.clone()) else {
                    return;
                };
                tokio::task::spawn_blocking(move || {
                    let r = load_triage(&name, from_snapshot);
                    let _ = tx.send(Done::Triage(r));
                });
            }
            Effect::SaveTriage(save) => {
                let Some(name) = plan.map(|p| p.store_name.clone()) else {
                    return;
                };
                tokio::task::spawn_blocking(move || {
                    let r = Store::for_triage(&name)
                        .and_then(|mut s| s.set_triage(&save.key, save.status, &save.note));
                    if let Err(e) = r {
                        let _ = tx.send(Done::TriageNotSaved(e));
                    }
                });
            }
            Effect::ReadCarry(statuses) => {
                let Some(name) = plan.map(|p| p.store_name.clone()) else {
                    return;
                };
                // What the fetch did not read comes from the latest
                // snapshot that has it, read off the UI task.
                tokio::task::spawn_blocking(move || {
                    let r = Store::for_profile_read(&name).and_then(|s| match s {
                        Some(s) => s.carry_patch(&statuses),
                        None => Ok(Default::default()),
                    });
                    let _ = tx.send(Done::Carried(r));
                });
            }
            Effect::SaveSnapshot(snapshot) => {
                let Some(p) = plan else { return };
                let name = p.store_name.clone();
                let tenant = snapshot
                    .graph
                    .of_kind(crate::model::EntityKind::AzureAccount)
                    .first()
                    .map(|&i| snapshot.graph.entity(i).key.to_string())
                    .unwrap_or_else(|| p.tenant_hint.clone());
                tokio::task::spawn_blocking(move || {
                    let s = *snapshot;
                    let r = Store::for_profile(&name).and_then(|mut store| {
                        let id = store.save(
                            &tenant,
                            "explorer",
                            &s.graph,
                            &s.statuses,
                            s.elapsed_ms,
                            &s.metrics,
                        )?;
                        store.prune(20)?;
                        Ok(id)
                    });
                    let _ = tx.send(Done::Saved(r));
                });
            }
        }
    }
}

/// Triage statuses and the previous snapshot's failing devices. On a
/// loaded snapshot, "previous" is the one before it; on a fresh fetch, it
/// is the newest one on disk.
fn load_triage(
    store_name: &str,
    from_snapshot: bool,
) -> Result<app::TriageData, crate::store::StoreError> {
    let Some(s) = Store::for_profile_read(store_name)? else {
        return Ok(app::TriageData::default());
    };
    let notes = s.triage_notes()?;
    let latest = s.latest_id()?;
    let prev = match (latest, from_snapshot) {
        (Some(l), true) => s.previous_id(l)?,
        (l, _) => l,
    };
    let (previous_failing, previous_coverage) = match prev {
        Some(id) => (
            Some(s.failing_devices(id)?),
            Some(crate::triage::Coverage::of(&s.info(id)?.sources)),
        ),
        None => (None, None),
    };
    Ok(app::TriageData {
        notes,
        previous_failing,
        previous_coverage,
    })
}

async fn recv(
    rx: &mut Option<tokio::sync::mpsc::UnboundedReceiver<FetchEvent>>,
) -> Option<FetchEvent> {
    match rx {
        Some(r) => r.recv().await,
        None => std::future::pending().await,
    }
}

/// SIGINT, SIGHUP, SIGTERM and SIGQUIT end the explorer like `q` does:
/// the terminal is restored, and the exit status says which signal it was.
struct Signals {
    #[cfg(unix)]
    list: Vec<(i32, tokio::signal::unix::Signal)>,
}

impl Signals {
    fn new() -> Signals {
        #[cfg(unix)]
        {
            use signal_hook::consts::{SIGHUP, SIGINT, SIGQUIT, SIGTERM};
            use tokio::signal::unix::{SignalKind, signal};
            let list = [SIGINT, SIGHUP, SIGTERM, SIGQUIT]
                .into_iter()
                .map(|n| (n, SignalKind::from_raw(n)))
                .filter_map(|(n, k)| signal(k).ok().map(|s| (n, s)))
                .collect();
            Signals { list }
        }
        #[cfg(not(unix))]
        {
            Signals {}
        }
    }

    /// The number of the next signal.
    async fn recv(&mut self) -> i32 {
        #[cfg(unix)]
        {
            std::future::poll_fn(|cx| {
                for (n, s) in &mut self.list {
                    if let std::task::Poll::Ready(Some(())) = s.poll_recv(cx) {
                        return std::task::Poll::Ready(*n);
                    }
                }
                std::task::Poll::Pending
            })
            .await
        }
        #[cfg(not(unix))]
        {
            std::future::pending::<i32>().await
        }
    }
}

/// Debug builds only: `TENX_DEBUG_WORKER_PANIC=1` panics a worker thread
/// once the explorer runs, so the end-to-end tests can check that the UI
/// goes on and the terminal stays as it is.
#[cfg(debug_assertions)]
fn debug_worker_panic() {
    if std::env::var_os("TENX_DEBUG_WORKER_PANIC").is_some() {
        tokio::task::spawn_blocking(|| {
            std::thread::sleep(Duration::from_millis(300));
            panic!("TENX_DEBUG_WORKER_PANIC: a worker thread panicked on purpose");
        });
    }
}
