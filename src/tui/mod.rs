//! The explorer: terminal setup and restore, and the event loop —
//! `tokio::select!` over terminal events, fetch events and a frame tick.
//! Batches from the fetch are applied between frames; a frame is drawn only
//! when something changed, at most about 60 times a second.

pub mod app;
pub mod details;
pub mod keymap;
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

use crate::fetch::{FetchEvent, Source};
use crate::http::Http;
use crate::store::Store;

use app::{Action, App};

/// How the explorer reads the tenant when asked to.
pub struct FetchPlan {
    pub http: Arc<Http>,
    pub sources: Vec<Source>,
    pub store_name: String,
    pub tenant_hint: String,
    /// Logon users: the budget a refresh reads; the rest carry over from
    /// the profile's latest snapshot.
    pub logons: crate::logons::LogonPolicy,
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
        crate::terminal::set_owned(false);
    }
}

fn setup() -> anyhow::Result<(TerminalGuard, Terminal<CrosstermBackend<Stdout>>)> {
    use std::io::IsTerminal;
    if !std::io::stdout().is_terminal() {
        anyhow::bail!(
            "the explorer needs a terminal; use `tenx fetch` and `tenx export` in scripts"
        );
    }
    // A panic on this (the UI) thread restores the terminal before its
    // message is printed; one on a worker is logged and the UI goes on.
    let panics = UiPanicHook::install(restore);
    enable_raw_mode()?;
    let guard = TerminalGuard { _panics: panics };
    crate::terminal::set_owned(true);
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

/// Runs the explorer until the person quits. `snapshot` loads the latest
/// snapshot off the UI task; `fetch_now` starts reading the tenant at once.
pub async fn run(
    mut app: App,
    plan: Option<FetchPlan>,
    load_snapshot: bool,
    fetch_now: bool,
) -> anyhow::Result<Ended> {
    // Every signal that ends a program is caught before the terminal
    // changes, so none can leave it raw.
    let mut signals = Signals::new();
    // The person's keys and colours; what cannot be used is said, and the
    // built-in ones stand in.
    let (keymap, user_theme, problems) = settings::load();
    app.keymap = keymap;
    theme::install(user_theme);
    if !problems.is_empty() {
        for p in &problems {
            tracing::warn!(problem = %p, "keymap or theme");
        }
        app.notices = problems
            .iter()
            .map(|p| {
                format!(
                    "{} (built-in keys and colours stand in)",
                    crate::text::line(p)
                )
            })
            .collect();
    }
    let (_guard, mut terminal) = setup()?;
    #[cfg(debug_assertions)]
    debug_worker_panic();
    let mut ended = Ended::Quit;
    let mut events = EventStream::new();
    let mut fetch_rx: Option<tokio::sync::mpsc::UnboundedReceiver<FetchEvent>> = None;
    let (bg_tx, mut bg_rx) = tokio::sync::mpsc::unbounded_channel::<Background>();
    if let (true, Some(p)) = (load_snapshot, &plan) {
        app.loading = Some("loading the latest snapshot…".into());
        let name = p.store_name.clone();
        let tx = bg_tx.clone();
        tokio::task::spawn_blocking(move || {
            // Read-only: loading never writes to the store.
            let result = Store::for_profile_read(&name).and_then(|s| match s {
                Some(s) => match s.latest_id()? {
                    Some(id) => s.load(id).map(|l| Some(Box::new(l))),
                    None => Ok(None),
                },
                None => Ok(None),
            });
            let _ = tx.send(Background::Loaded(result.map_err(|e| format!("{e:#}"))));
        });
    }
    if fetch_now {
        app.refresh_requested = true;
    }
    // Triage statuses and the previous snapshot's failing devices.
    if let Some(p) = &plan {
        let name = p.store_name.clone();
        let tx = bg_tx.clone();
        let from_snapshot = load_snapshot;
        tokio::task::spawn_blocking(move || {
            let r = Store::for_profile_read(&name).and_then(|s| {
                let Some(s) = s else {
                    return Ok(app::TriageData::default());
                };
                let notes = s.triage_notes()?;
                let latest = s.latest_id()?;
                // On a loaded snapshot, "previous" is the one before it; on a
                // fresh fetch, it is the newest one on disk.
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
            });
            let _ = tx.send(Background::Triage(r.map_err(|e| format!("{e:#}"))));
        });
    }
    let mut tick = tokio::time::interval(Duration::from_millis(16));
    tick.set_missed_tick_behavior(tokio::time::MissedTickBehavior::Skip);
    let mut dirty = true;
    // A fetch's carry-over being read, and snapshots being saved: waited
    // for before tenx ends.
    let mut carry_pending = false;
    let mut saves = 0usize;
    let mut last_spin = Instant::now();
    loop {
        if app.refresh_requested {
            app.refresh_requested = false;
            match &plan {
                Some(p) => {
                    app.start_fetch(&p.sources);
                    let options = crate::fetch::FetchOptions {
                        logons: p.logons.clone(),
                        carry: Some(crate::store::carry_loader(p.store_name.clone())),
                        defender: p.defender,
                        hunting: p.hunting.clone(),
                        today: crate::fetch::today().ok(),
                    };
                    fetch_rx = Some(crate::fetch::spawn_with(
                        p.http.clone(),
                        &p.sources,
                        options,
                    ));
                }
                None => app.update(Action::Escape),
            }
            dirty = true;
        }
        for save in app.take_triage_saves() {
            if let Some(p) = &plan {
                let name = p.store_name.clone();
                let tx = bg_tx.clone();
                tokio::task::spawn_blocking(move || {
                    let r = Store::for_triage(&name)
                        .and_then(|mut s| s.set_triage(&save.key, save.status, &save.note));
                    if let Err(e) = r {
                        let _ = tx.send(Background::TriageNotSaved(format!(
                            "cannot save the triage status: {e:#}"
                        )));
                    }
                });
            }
        }
        if let Some(job) = app.take_export_job() {
            let tx = bg_tx.clone();
            tokio::task::spawn_blocking(move || {
                let _ = tx.send(Background::Exported(job.run()));
            });
        }
        if let Some(job) = app.take_search_job() {
            let tx = bg_tx.clone();
            tokio::task::spawn_blocking(move || {
                let (generation, results) = job.run();
                let _ = tx.send(Background::Searched(generation, results));
            });
        }
        if dirty {
            app.sync();
            app.now = chrono::Utc::now();
            terminal.draw(|f| view::draw(f, &mut app))?;
            dirty = false;
        }
        if app.quit {
            break;
        }
        tokio::select! {
            ev = events.next() => match ev {
                Some(Ok(Event::Key(k))) if k.kind == crossterm::event::KeyEventKind::Press => {
                    if let Some(a) = app.keymap.action(app.key_mode(), k) { app.update(a); dirty = true; }
                }
                Some(Ok(Event::Mouse(m))) => {
                    if let Some(a) = mouse_action(m) { app.update(a); dirty = true; }
                }
                Some(Ok(Event::Resize(..))) => dirty = true,
                Some(Ok(_)) => {}
                Some(Err(e)) => return Err(e.into()),
                None => break,
            },
            Some(ev) = recv(&mut fetch_rx) => {
                // Apply everything waiting, within a frame's budget.
                let start = Instant::now();
                let mut done = app.on_fetch(ev);
                while !done && start.elapsed() < Duration::from_millis(8) {
                    match fetch_rx.as_mut().map(|r| r.try_recv()) {
                        Some(Ok(ev)) => done = app.on_fetch(ev),
                        _ => break,
                    }
                }
                if done {
                    fetch_rx = None;
                    // What the fetch did not read comes from the latest
                    // snapshot that has it, read off the UI task; the
                    // snapshot is saved once it is in.
                    if let (Some(p), Some(statuses)) = (&plan, app.carry_wanted()) {
                        let name = p.store_name.clone();
                        let tx = bg_tx.clone();
                        carry_pending = true;
                        tokio::task::spawn_blocking(move || {
                            let r = Store::for_profile_read(&name).and_then(|s| match s {
                                Some(s) => s.carry_patch(&statuses),
                                None => Ok(Default::default()),
                            });
                            let _ = tx.send(Background::Carried(r.map_err(|e| format!("{e:#}"))));
                        });
                    }
                }
                dirty = true;
            }
            Some(bg) = bg_rx.recv() => {
                match bg {
                    Background::Loaded(Ok(Some(loaded))) => {
                        let (info, graph) = *loaded;
                        let created = chrono::DateTime::parse_from_rfc3339(&info.created_at).ok().map(|d| d.with_timezone(&chrono::Utc));
                        app.load_snapshot(graph, created, info.sources);
                    }
                    Background::Loaded(Ok(None)) => app.loading = None,
                    Background::Loaded(Err(e)) => { app.loading = None; app.message = Some((format!("cannot load the snapshot: {e}"), true)); }
                    Background::Saved(r) => {
                        saves = saves.saturating_sub(1);
                        match r {
                            Ok(id) => { if app.message.as_ref().is_none_or(|m| !m.1) { app.message = Some((format!("saved snapshot {id}"), false)); } }
                            Err(e) => app.message = Some((format!("cannot save the snapshot: {e}"), true)),
                        }
                    }
                    Background::TriageNotSaved(e) => app.message = Some((e, true)),
                    Background::Searched(generation, results) => app.on_search_results(generation, results),
                    Background::Exported(result) => app.on_export_written(result),
                    Background::Carried(r) => {
                        carry_pending = false;
                        on_carried(&mut app, r, plan.as_ref(), &bg_tx, &mut saves);
                    }
                    Background::Triage(Ok(data)) => app.triage_data = data,
                    Background::Triage(Err(e)) => app.message = Some((format!("cannot read triage statuses: {e}"), true)),
                }
                dirty = true;
            }
            sig = signals.recv() => {
                ended = Ended::Signal(sig);
                app.quit = true;
            }
            _ = tick.tick() => {
                if app.fetching && last_spin.elapsed() >= Duration::from_millis(100) {
                    app.spinner = app.spinner.wrapping_add(1);
                    last_spin = Instant::now();
                    dirty = true;
                }
            }
        }
    }
    drop(terminal);
    // A fetch that has ended is saved before tenx does: quitting while its
    // carry-over was read or its snapshot written would lose it.
    if carry_pending || saves > 0 {
        eprintln!("tenx: saving the snapshot before quitting…");
        let deadline = tokio::time::Instant::now() + Duration::from_secs(60);
        while carry_pending || saves > 0 {
            match tokio::time::timeout_at(deadline, bg_rx.recv()).await {
                Ok(Some(Background::Carried(r))) => {
                    carry_pending = false;
                    on_carried(&mut app, r, plan.as_ref(), &bg_tx, &mut saves);
                }
                Ok(Some(Background::Saved(r))) => {
                    saves = saves.saturating_sub(1);
                    match r {
                        Ok(id) => eprintln!("tenx: saved snapshot {id}"),
                        Err(e) => {
                            eprintln!("tenx: cannot save the snapshot: {}", crate::text::line(&e))
                        }
                    }
                }
                Ok(Some(_)) => {}
                Ok(None) | Err(_) => {
                    eprintln!("tenx: the snapshot was not saved in time; it is lost");
                    break;
                }
            }
        }
    }
    Ok(ended)
}

/// The carry-over of a fetch has been read: applied, then the snapshot
/// saved.
fn on_carried(
    app: &mut App,
    r: Result<crate::store::CarryPatch, String>,
    plan: Option<&FetchPlan>,
    tx: &tokio::sync::mpsc::UnboundedSender<Background>,
    saves: &mut usize,
) {
    match r {
        Ok(patch) => app.apply_carry(patch),
        Err(e) => {
            app.message = Some((
                format!("cannot read the earlier snapshot to complete this one: {e}"),
                true,
            ))
        }
    }
    if let Some(p) = plan {
        if save_snapshot(app, p, tx.clone()) {
            *saves += 1;
        }
    }
}

enum Background {
    Loaded(Result<Option<Box<(crate::store::SnapshotInfo, crate::model::TenantGraph)>>, String>),
    Saved(Result<i64, String>),
    Searched(u64, Option<crate::search::Results>),
    Exported(Result<String, String>),
    Triage(Result<app::TriageData, String>),
    /// The sources a fetch did not read, from an earlier snapshot.
    Carried(Result<crate::store::CarryPatch, String>),
    TriageNotSaved(String),
}

async fn recv(
    rx: &mut Option<tokio::sync::mpsc::UnboundedReceiver<FetchEvent>>,
) -> Option<FetchEvent> {
    match rx {
        Some(r) => r.recv().await,
        None => std::future::pending().await,
    }
}

/// Saves what the fetch read, off the UI task; whether a save was started.
fn save_snapshot(
    app: &App,
    plan: &FetchPlan,
    tx: tokio::sync::mpsc::UnboundedSender<Background>,
) -> bool {
    if app.refresh_failed {
        return false;
    }
    let graph = app.data.graph.clone();
    let statuses = app.data.statuses.clone();
    let elapsed = app.data.elapsed.map(|e| e.as_millis() as u64).unwrap_or(0);
    let metrics = serde_json::to_value(app.data.metrics.unwrap_or_default()).unwrap_or_default();
    let name = plan.store_name.clone();
    let tenant = graph
        .of_kind(crate::model::EntityKind::AzureAccount)
        .first()
        .map(|&i| graph.entity(i).key.to_string())
        .unwrap_or_else(|| plan.tenant_hint.clone());
    tokio::task::spawn_blocking(move || {
        let r = Store::for_profile(&name).and_then(|mut s| {
            let id = s.save(&tenant, "explorer", &graph, &statuses, elapsed, &metrics)?;
            s.prune(20)?;
            Ok(id)
        });
        let _ = tx.send(Background::Saved(r.map_err(|e| format!("{e:#}"))));
    });
    true
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
