//! The explorer without a terminal: screens rendered to ratatui's
//! TestBackend and compared with insta snapshots, and state driven by
//! messages. Most tests read a small fixed-seed simulated tenant from its
//! fixture (`tests/fixtures/`, fed to the explorer as a fetch's events);
//! those about fetching itself — events arriving while a person looks,
//! sources failing, what was read when — fetch it for real over loopback.

use crate::common;

use chrono::{FixedOffset, TimeZone, Utc};
use common::fixture::{self, Fixture};
use common::{hostile, sim};
use ratatui::Terminal;
use ratatui::backend::TestBackend;
use tenx::auth::Credentials;
use tenx::auth::endpoints::{Cloud, Endpoints};
use tenx::auth::secret::Secret;
use tenx::fetch::Source;
use tenx::fetch::http::HttpOptions;
use tenx::tui::app::{Action, App, Done, Effect, Focus, Msg, RelRow, TriageSave};
use tenx::tui::tree::Node;
use tenx::tui::view;
use tenx_sim::RunningTenant;

/// A simulated tenant with Defender's logon-user limits 600 times faster:
/// tests fetch the same tenant again within what would be one minute.
async fn start(users: usize, seed: u64, faults: &str) -> RunningTenant {
    sim::start_scaled(users, seed, sim::faults(faults)).await
}

fn new_app() -> App {
    let now = Utc
        .with_ymd_and_hms(2026, 11, 1, 12, 0, 0)
        .single()
        .expect("date");
    let mut app = App::new("tenx test", now);
    app.tz = FixedOffset::east_opt(0).expect("utc");
    app
}

/// An app that has read the whole simulated tenant.
async fn fetched(s: &RunningTenant) -> App {
    fetched_with(s, Default::default()).await
}

/// `fetched`, with these fetch options.
async fn fetched_with(s: &RunningTenant, options: tenx::fetch::FetchOptions) -> App {
    let mut app = new_app();
    app.start_fetch(&Source::ALL);
    let mut rx = tenx::fetch::spawn_with(sim::http(s, sim::quick()), &Source::ALL, options);
    while let Some(ev) = rx.recv().await {
        if app.on_fetch(ev) {
            break;
        }
    }
    app.sync();
    app
}

/// The fixture's tenant: 40 users, seed 5.
fn small() -> Fixture {
    Fixture::load(40, 5)
}

/// An app that has read the fixture's tenant: the events of its fetch,
/// handled as the event loop hands them over, then a frame.
fn read(f: &Fixture) -> App {
    let mut app = new_app();
    app.start_fetch(&Source::ALL);
    for ev in f.events() {
        app.handle(Msg::Fetch(ev));
    }
    let now = app.now;
    app.handle(Msg::Frame(now));
    app
}

fn screen(app: &mut App, w: u16, h: u16) -> String {
    let mut t = Terminal::new(TestBackend::new(w, h)).expect("terminal");
    t.draw(|f| view::draw(f, app)).expect("draw");
    t.backend().to_string()
}

/// The fixture the explorer's tests read is what a fetch of its tenant
/// reads now. After a change to what a fetch reads, write it anew:
/// `TENX_WRITE_FIXTURES=1 cargo test --test it tui::the_fixture`.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn the_fixture_is_what_a_fetch_of_its_tenant_reads_now() {
    let (users, seed) = (40, 5);
    let s = start(users, seed, "").await;
    let b = tenx::fetch::fetch_all(sim::http(&s, sim::quick()), &Source::ALL, |_| {}).await;
    s.stop().await;
    let now = fixture::text(users, seed, &b);
    let path = fixture::path(users, seed);
    if std::env::var_os("TENX_WRITE_FIXTURES").is_some() {
        std::fs::create_dir_all(path.parent().expect("folder")).expect("fixtures folder");
        std::fs::write(&path, &now).expect("write the fixture");
        return;
    }
    let kept = std::fs::read_to_string(&path).unwrap_or_default();
    if let Some((i, (k, n))) = kept
        .lines()
        .chain(std::iter::repeat(""))
        .zip(now.lines().chain(std::iter::repeat("")))
        .take(kept.lines().count().max(now.lines().count()))
        .enumerate()
        .find(|(_, (k, n))| k != n)
    {
        panic!(
            "{} is not what a fetch of its tenant reads now; at line {}:\n kept: {k}\n  now: {n}\n\
             if the change is meant, write it anew: TENX_WRITE_FIXTURES=1 cargo test --test it tui::the_fixture",
            path.display(),
            i + 1
        );
    }
}

#[test]
fn loading() {
    // Nothing read yet, every source on its way.
    let mut app = new_app();
    app.start_fetch(&Source::ALL);
    insta::assert_snapshot!("loading", screen(&mut app, 100, 24));
}

#[test]
fn overview() {
    let mut app = read(&small());
    insta::assert_snapshot!("overview", screen(&mut app, 120, 40));
}

#[test]
fn users_open() {
    let mut app = read(&small());
    app.update(Action::Down);
    app.update(Action::Right);
    insta::assert_snapshot!("users_open", screen(&mut app, 120, 40));
}

/// The Users node open, then the first user's page.
fn first_user() -> App {
    let f = small();
    let mut app = read(&f);
    app.update(Action::Down);
    app.update(Action::Right);
    let user = app.graph().id_of(&f.tenant.users[0].id).expect("user");
    app.update(Action::Jump(user));
    app
}

#[test]
fn entity_relationships() {
    // An entity with its relationships.
    let mut app = first_user();
    insta::assert_snapshot!("entity_relationships", screen(&mut app, 120, 40));
}

#[test]
fn entity_80x24() {
    // The same at the smallest supported size.
    let mut app = first_user();
    insta::assert_snapshot!("entity_80x24", screen(&mut app, 80, 24));
}

#[test]
fn help() {
    let mut app = first_user();
    app.update(Action::ToggleHelp);
    insta::assert_snapshot!("help", screen(&mut app, 120, 40));
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn source_failed() {
    // A source that failed, in red in the status bar and the message line:
    // through a real fetch, its errors as the service words them.
    let s = start(40, 5, "forbid=defender").await;
    let mut app = fetched(&s).await;
    let text = screen(&mut app, 120, 40);
    assert!(text.contains("defender ✗"), "{text}");
    insta::assert_snapshot!("source_failed", text);
    s.stop().await;
}

#[test]
fn jumping_through_a_relationship_and_back() {
    let f = small();
    let mut app = read(&f);
    let t = &f.tenant;
    // A user who owns a device.
    let owner = t
        .devices
        .iter()
        .find_map(|d| d.user)
        .expect("an owned device");
    let user = app
        .graph()
        .id_of(&t.users[owner as usize].id)
        .expect("user");
    app.update(Action::Jump(user));
    assert_eq!(app.selected_entity(), Some(user));

    app.update(Action::FocusNext);
    app.update(Action::FocusNext);
    assert_eq!(app.focus, Focus::Relations);
    let rows = app.rel_rows();
    let target_row = rows
        .iter()
        .position(|r| matches!(r, RelRow::Entity(e) if app.graph().entity(*e).kind.is_device()))
        .expect("a device row");
    for _ in 0..target_row {
        app.update(Action::Down);
    }
    let RelRow::Entity(device) = rows[target_row] else {
        unreachable!()
    };
    app.update(Action::Enter);
    assert_eq!(
        app.selected_entity(),
        Some(device),
        "Enter jumps to the related entity"
    );
    assert_eq!(app.focus, Focus::Tree);

    // The device is revealed: every ancestor open, the row visible.
    let path = app.tree.selected().to_vec();
    assert_eq!(path.last(), Some(&Node::Entity(device)));
    for i in 1..path.len() {
        assert!(
            app.tree.opened().contains(&path[..i].to_vec()),
            "ancestor {i} is open"
        );
    }
    assert!(app.visible().contains(&path));

    app.update(Action::Back);
    assert_eq!(
        app.selected_entity(),
        Some(user),
        "back returns to the user"
    );
    // The walk began on the tenant (the root), where the cursor started.
    app.update(Action::Back);
    assert_eq!(app.tree.selected(), &[Node::Root]);
    app.update(Action::Back);
    assert!(
        app.message
            .as_ref()
            .is_some_and(|m| m.0.contains("no earlier entity"))
    );
    app.update(Action::Forward);
    app.update(Action::Forward);
    assert_eq!(
        app.selected_entity(),
        Some(device),
        "forward goes to the device again"
    );
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn batches_arriving_while_a_node_is_open() {
    let s = start(2500, 7, "").await;
    let mut app = new_app();
    app.start_fetch(&Source::ALL);
    let mut rx = tenx::fetch::spawn(sim::http(&s, sim::quick()), &Source::ALL);
    // Apply events until some users are in, then open Users.
    let users_list = loop {
        let ev = rx.recv().await.expect("event");
        assert!(
            !app.on_fetch(ev),
            "the fetch should not end before users arrive"
        );
        app.sync();
        if app
            .graph()
            .of_kind(tenx::model::EntityKind::AzureUser)
            .len()
            >= 100
        {
            break app.index.top[0];
        }
    };
    app.update(Action::Down);
    app.update(Action::Right);
    let open_path = vec![Node::Root, Node::List(users_list)];
    assert!(app.tree.opened().contains(&open_path));
    assert_eq!(app.tree.selected(), open_path.as_slice());
    let before = app.index.lists[users_list as usize].members.len();
    while let Some(ev) = rx.recv().await {
        if app.on_fetch(ev) {
            break;
        }
        app.sync();
    }
    app.sync();
    assert!(
        app.tree.opened().contains(&open_path),
        "the node stays open"
    );
    assert_eq!(
        app.tree.selected(),
        open_path.as_slice(),
        "the cursor stays put"
    );
    assert_eq!(app.index.lists[users_list as usize].members.len(), 2500);
    assert!(
        before < 2500,
        "users arrived while the node was open ({before} before)"
    );
    // The open node's rows follow: 2,500 users now show as five chunks.
    let rows = app.visible();
    let chunks = rows
        .iter()
        .filter(|r| {
            r.len() == 3 && r[1] == Node::List(users_list) && matches!(r[2], Node::Chunk(..))
        })
        .count();
    assert_eq!(chunks, 5);
    s.stop().await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn big_lists_open_in_chunks_and_keys_move_the_cursor() {
    let s = start(1200, 8, "").await;
    let mut app = fetched(&s).await;
    app.update(Action::Down);
    app.update(Action::Right);
    let rows = app.visible();
    // 1,200 users: three chunks, no row per user until a chunk opens.
    let chunks: Vec<_> = rows
        .iter()
        .filter(|r| matches!(r.last(), Some(Node::Chunk(..))))
        .collect();
    assert_eq!(chunks.len(), 3);
    assert!(rows.len() < 40);
    app.update(Action::Down);
    app.update(Action::Enter);
    assert_eq!(app.visible().len(), rows.len() + 500);
    app.update(Action::End);
    assert_eq!(
        app.tree.selected(),
        app.visible().last().map(Vec::as_slice).unwrap_or_default()
    );
    app.update(Action::Home);
    assert_eq!(app.tree.selected(), &[Node::Root]);
    app.update(Action::Quit);
    assert!(app.quit);
    s.stop().await;
}

#[test]
fn the_mouse_selects_opens_and_scrolls() {
    let mut app = read(&small());
    screen(&mut app, 120, 40);
    let tree = app.areas.tree;
    // The third visible row is the second category (Groups): click selects it...
    app.update(Action::Click(tree.x + 4, tree.y + 3));
    let groups = app.visible()[2].clone();
    assert_eq!(app.tree.selected(), groups.as_slice());
    // ...and a second click opens it.
    app.update(Action::Click(tree.x + 4, tree.y + 3));
    assert!(app.tree.opened().contains(&groups));
    app.update(Action::ScrollDown(tree.x + 4, tree.y + 5));
    assert_eq!(
        app.tree.selected(),
        app.visible()[5].as_slice(),
        "the wheel moves three rows"
    );
    // A click in the relations pane focuses it.
    let rel = app.areas.relations;
    app.update(Action::Click(rel.x + 2, rel.y + 1));
    assert_eq!(app.focus, Focus::Relations);
}

/// Runs effects in place as the event loop would run them off the UI
/// task — searches and exports, their results handed back — and returns
/// the triage statuses the loop would write.
fn run_effects(app: &mut App, effects: Vec<Effect>) -> Vec<TriageSave> {
    let mut saves = Vec::new();
    let mut queue: std::collections::VecDeque<Effect> = effects.into();
    while let Some(e) = queue.pop_front() {
        let done = match e {
            Effect::Search(job) => {
                let (generation, results) = job.run();
                Done::Searched(generation, results)
            }
            Effect::Export(job) => Done::Exported(job.run()),
            Effect::SaveTriage(save) => {
                saves.push(save);
                continue;
            }
            _ => continue,
        };
        queue.extend(app.handle(Msg::Done(done)));
    }
    saves
}

/// Types text into the open search and runs the job as the event loop would.
fn type_search(app: &mut App, text: &str) {
    for c in text.chars() {
        let fx = app.update(Action::Char(c));
        run_effects(app, fx);
    }
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn search_finds_jumps_and_reveals() {
    let s = start(200, 11, "").await;
    let mut app = fetched(&s).await;
    let t = &s.tenant;
    let user = &t.users[17];
    let upn_local = user.upn.split('@').next().expect("local part").to_string();
    let target = app.graph().id_of(&user.id).expect("user");

    // Esc leaves the selection as it was.
    let before = app.tree.selected().to_vec();
    app.update(Action::OpenSearch);
    type_search(&mut app, &upn_local);
    app.update(Action::Escape);
    assert!(app.search().is_none());
    assert_eq!(app.tree.selected(), before.as_slice());

    // The UPN finds the user first; Enter jumps, reveals and records history.
    app.update(Action::OpenSearch);
    type_search(&mut app, &format!("user:{upn_local}"));
    let ui = app.search().expect("open");
    let r = ui.results.as_ref().expect("results");
    assert_eq!(
        r.hits.first().map(|h| h.id),
        Some(target),
        "{:?}",
        r.hits
            .iter()
            .take(3)
            .map(|h| app.graph().entity(h.id).display_name.to_string())
            .collect::<Vec<_>>()
    );
    let text = screen(&mut app, 120, 40);
    assert!(text.contains("Search") && text.contains("match"), "{text}");
    app.update(Action::Enter);
    assert!(app.search().is_none());
    assert_eq!(app.selected_entity(), Some(target));
    let path = app.tree.selected().to_vec();
    for i in 1..path.len() {
        assert!(app.tree.opened().contains(&path[..i].to_vec()));
    }
    app.update(Action::Back);
    assert_eq!(
        app.tree.selected(),
        &[Node::Root],
        "the jump entered the history"
    );
    s.stop().await;
}

#[test]
fn search_overlay() {
    let mut app = read(&small());
    app.update(Action::OpenSearch);
    type_search(&mut app, "ai");
    insta::assert_snapshot!("search_overlay", screen(&mut app, 120, 40));
    // Tab cycles the kind filter.
    let fx = app.update(Action::CycleKind);
    run_effects(&mut app, fx);
    let text = screen(&mut app, 120, 40);
    assert!(text.contains("in users"), "{text}");
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn search_results_follow_a_running_fetch() {
    let s = start(300, 12, "").await;
    let mut app = new_app();
    app.start_fetch(&Source::ALL);
    app.update(Action::OpenSearch);
    let machine = s.tenant.machines[0].host.clone();
    type_search(&mut app, &format!("machine:{machine}"));
    let mut rx = tenx::fetch::spawn(sim::http(&s, sim::quick()), &Source::ALL);
    while let Some(ev) = rx.recv().await {
        let mut fx = app.handle(Msg::Fetch(ev));
        // Before each frame, arrived entities are filed and searched.
        let now = app.now;
        fx.extend(app.handle(Msg::Frame(now)));
        run_effects(&mut app, fx);
        if !app.fetching {
            break;
        }
    }
    let r = app
        .search()
        .and_then(|s| s.results.clone())
        .expect("results");
    assert!(
        r.total >= 1,
        "the machine became findable while the search was open"
    );
    assert_eq!(
        app.graph().entity(r.hits[0].id).display_name.to_string(),
        machine
    );
    s.stop().await;
}

#[test]
fn mark_then_export_writes_the_file() {
    let f = small();
    let mut app = read(&f);
    let t = &f.tenant;
    let a = app.graph().id_of(&t.users[0].id).expect("user");
    let b = app.graph().id_of(&t.users[1].id).expect("user");
    app.update(Action::Jump(a));
    app.update(Action::ToggleMark);
    app.update(Action::Jump(b));
    app.update(Action::ToggleMark);
    assert_eq!(app.marks.len(), 2);
    let text = screen(&mut app, 120, 40);
    assert!(
        text.contains("● 2 marked") && text.contains("● [user]"),
        "marks show in the tree and status bar:\n{text}"
    );

    app.update(Action::OpenExport);
    let ui = app.export().expect("dialog");
    assert_eq!(ui.seeds.len(), 2);
    insta::assert_snapshot!("export_dialog", screen(&mut app, 120, 40));
    // Depth 0: just the two users.
    app.update(Action::Left);
    assert_eq!(app.export().map(|u| u.preview), Some((2, 0)));
    // Format → csv, then name the file.
    for _ in 0..4 {
        app.update(Action::Down);
    }
    for _ in 0..4 {
        app.update(Action::Right);
    }
    assert_eq!(
        app.export().map(|u| u.format),
        Some(tenx::export::Format::Csv)
    );
    app.update(Action::Down);
    let dir = tempfile::Builder::new()
        .prefix("tenx-ui-export-")
        .tempdir()
        .expect("temp dir");
    let dir = dir.path();
    let len = app.export().map(|u| u.path.chars().count()).unwrap_or(0);
    for _ in 0..len {
        app.update(Action::DeleteChar);
    }
    for c in dir.join("two-users.csv").display().to_string().chars() {
        app.update(Action::Char(c));
    }
    let fx = app.update(Action::Enter);
    assert!(app.export().is_none(), "the dialog closes");
    assert!(
        fx.iter().any(|e| matches!(e, Effect::Export(_))),
        "an export job"
    );
    run_effects(&mut app, fx);
    assert!(
        app.message
            .as_ref()
            .is_some_and(|m| m.0.contains("wrote 2 entities and 0 relationships")),
        "{:?}",
        app.message
    );
    let mut rd = csv::Reader::from_path(dir.join("two-users-entities.csv")).expect("csv");
    let keys: Vec<String> = rd
        .records()
        .map(|r| r.expect("row")[0].to_string())
        .collect();
    assert_eq!(keys.len(), 2);
    assert!(keys.contains(&t.users[0].id) && keys.contains(&t.users[1].id));
    app.update(Action::ClearMarks);
    assert!(app.marks.is_empty());
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn the_triage_view() {
    use tenx::tui::app::TriageLine;
    let s = start(60, 5, "").await;
    let mut app = fetched(&s).await;
    let want = tenx_sim::Manifest::of(&s.tenant).noncompliant_devices.len();
    app.update(Action::ToggleTriage);
    let devices = app
        .triage_lines()
        .iter()
        .filter(|l| matches!(l, TriageLine::Device(_)))
        .count();
    assert_eq!(devices, want, "one row per device with an open finding");
    insta::assert_snapshot!("triage", screen(&mut app, 120, 40));

    // A status and a note, saved (the loop writes them to the store).
    let mut fx = app.update(Action::SetStatus(tenx::triage::Status::Investigating));
    fx.extend(app.update(Action::EditNote));
    for c in "asked the owner".chars() {
        fx.extend(app.update(Action::Char(c)));
    }
    fx.extend(app.update(Action::Enter));
    let saves = run_effects(&mut app, fx);
    assert_eq!(saves.len(), 2);
    assert_eq!(saves[1].status, tenx::triage::Status::Investigating);
    assert_eq!(saves[1].note, "asked the owner");

    // Grouped by policy: a header per policy.
    app.update(Action::GroupNext);
    let lines = app.triage_lines();
    assert!(matches!(lines[0], TriageLine::Group(..)));
    // Filtering narrows the rows.
    app.update(Action::GroupNext);
    app.update(Action::GroupNext);
    app.update(Action::GroupNext);
    app.update(Action::GroupNext);
    assert!(
        app.triage_lines()
            .iter()
            .all(|l| matches!(l, TriageLine::Device(_)))
    );
    let first = app.triage().map(|t| t.rows[0].name.clone()).expect("a row");
    app.update(Action::Filter);
    for c in first.chars() {
        app.update(Action::Char(c));
    }
    app.update(Action::Enter);
    assert!(app.triage_lines().len() < devices);

    // Enter opens the device in the explorer; Backspace comes back.
    let TriageLine::Device(i) = app.triage_lines()[0] else {
        panic!("a device row")
    };
    let device = app.triage().map(|t| t.rows[i].device).expect("row");
    app.update(Action::Enter);
    assert!(app.triage().is_none());
    assert_eq!(app.selected_entity(), Some(device));
    app.update(Action::Back);
    assert!(app.triage().is_some(), "back to the triage view");
    assert_eq!(
        app.triage().map(|t| t.filter.clone()),
        Some(first),
        "with its filter kept"
    );
    s.stop().await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_snapshot_arriving_during_a_live_fetch_shows_at_once_and_the_fetch_replaces_it() {
    let s = start(60, 13, "").await;
    let snapshot = fetched(&s).await;
    let users = snapshot
        .graph()
        .of_kind(tenx::model::EntityKind::AzureUser)
        .len();
    let mut app = new_app();
    app.start_fetch(&Source::ALL);
    let mut rx = tenx::fetch::spawn(sim::http(&s, sim::quick()), &Source::ALL);
    // The fetch has begun filling the screen when the snapshot arrives.
    let first = rx.recv().await.expect("an event");
    app.on_fetch(first);
    app.load_snapshot(snapshot.graph().clone(), None, Default::default());
    app.sync();
    assert_eq!(
        app.graph()
            .of_kind(tenx::model::EntityKind::AzureUser)
            .len(),
        users,
        "the snapshot shows at once"
    );
    assert!(
        app.incoming.is_some(),
        "the fetch goes on into a second graph"
    );
    while let Some(ev) = rx.recv().await {
        if app.on_fetch(ev) {
            break;
        }
    }
    assert!(app.incoming.is_none());
    assert_eq!(
        app.graph().entity_count(),
        snapshot.graph().entity_count(),
        "the fresh graph replaced the snapshot"
    );
    s.stop().await;
}

/// A tenant with more machines than one fetch's 100 logon-user calls
/// (the old API's budget; advanced hunting reads every machine's), read
/// through the old API: some machines' logon users wait for a later fetch.
async fn read_in_part() -> (App, usize) {
    let s = start(150, 23, "").await;
    let old_api = tenx::fetch::FetchOptions {
        defender: tenx::fetch::DefenderApi::Mde,
        today: chrono::NaiveDate::from_ymd_opt(2026, 12, 1),
        ..Default::default()
    };
    let app = fetched_with(&s, old_api).await;
    let machines = s.tenant.machines.len();
    assert!(machines > 100, "{machines}");
    s.stop().await;
    (app, machines)
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn what_was_read() {
    let (mut app, machines) = read_in_part().await;
    let text = screen(&mut app, 120, 40);
    assert!(
        text.contains("What was read")
            && text.contains(&format!("100 of {machines} machines read now")),
        "{text}"
    );
    insta::assert_snapshot!("what_was_read", text);
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn machine_logons_not_read() {
    // A machine whose logon users wait for a later fetch says so; one read
    // now says when.
    let (mut app, _) = read_in_part().await;
    let g = app.graph();
    let kind = tenx::model::EntityKind::DefenderMachine;
    let unread = *g
        .of_kind(kind)
        .iter()
        .filter(|&&i| g.read_at(i).is_none())
        .min_by_key(|&&i| g.entity(i).key.clone())
        .expect("an unread machine");
    let read = *g
        .of_kind(kind)
        .iter()
        .find(|&&i| g.read_at(i).is_some())
        .expect("a read machine");
    app.update(Action::Jump(unread));
    let text = screen(&mut app, 120, 40);
    assert!(text.contains("Logon users read"), "{text}");
    insta::assert_snapshot!("machine_logons_not_read", text);
    app.update(Action::Jump(read));
    let text = screen(&mut app, 120, 40);
    let line = text
        .lines()
        .find(|l| l.contains("Logon users read"))
        .expect("the read line");
    assert!(!line.contains("not yet"), "{line}");
    assert!(line.contains("20"), "a date: {line}");
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn devices_count_the_same_by_platform_and_by_compliance_state() {
    let s = start(200, 3, "").await;
    let mut app = fetched(&s).await;
    for _ in 0..4 {
        app.update(Action::Down);
    }
    app.update(Action::Right);
    let text = screen(&mut app, 120, 40);
    let count = |label: &str| -> usize {
        let line = text
            .lines()
            .find(|l| l.contains(label))
            .unwrap_or_else(|| panic!("no {label} row: {text}"));
        let after = &line[line.find(label).expect("label") + label.len()..];
        let digits: String = after
            .chars()
            .skip_while(|c| !c.is_ascii_digit())
            .take_while(|c| c.is_ascii_digit() || *c == ',')
            .filter(char::is_ascii_digit)
            .collect();
        digits
            .parse()
            .unwrap_or_else(|_| panic!("no count for {label}: {line}"))
    };
    let devices = s.tenant.devices.len();
    assert_eq!(count("Devices"), devices, "{text}");
    assert_eq!(count("By platform"), devices, "{text}");
    assert_eq!(count("By compliance state"), devices, "{text}");
    s.stop().await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_refresh_that_reads_nothing_keeps_what_is_shown_and_says_so() {
    let f = small();
    let entities = f.graph.entity_count();
    let mut app = new_app();
    app.load_snapshot(f.graph.clone(), None, f.statuses.clone());
    app.sync();
    // The tenant is unreachable: every source fails.
    let gone = {
        let mut e = Endpoints::for_cloud(Cloud::Public);
        for base in [&mut e.login, &mut e.graph, &mut e.defender, &mut e.arm] {
            *base = url::Url::parse("http://127.0.0.1:9/x/").expect("url");
        }
        let creds = Credentials {
            tenant: f.tenant.tenant_id.clone(),
            client_id: f.tenant.client_id.clone(),
            secret: Secret::new(f.tenant.client_secret.clone()),
        };
        let opts = HttpOptions {
            backoff: std::time::Duration::from_millis(1),
            ..Default::default()
        };
        sim::http_with(creds, e, opts)
    };
    app.start_fetch(&Source::ALL);
    let mut rx = tenx::fetch::spawn(gone, &Source::ALL);
    while let Some(ev) = rx.recv().await {
        if app.on_fetch(ev) {
            break;
        }
    }
    app.sync();
    assert_eq!(app.graph().entity_count(), entities, "the data shown stays");
    assert!(app.refresh_failed);
    assert!(app.carry_wanted().is_none(), "nothing to complete or save");
    let (text, error) = app.message.clone().expect("a message");
    assert!(
        error && text.starts_with("refresh failed, still showing the earlier data"),
        "{text}"
    );
    let screen = screen(&mut app, 120, 30);
    assert!(!screen.contains("No data yet"), "{screen}");
    assert!(screen.contains("Users  40"), "{screen}");
}

/// Every cell of a frame drawn on a test backend, as one string per row.
fn cells(app: &mut App, w: u16, h: u16) -> Vec<String> {
    let mut t = Terminal::new(TestBackend::new(w, h)).expect("terminal");
    t.draw(|f| view::draw(f, app)).expect("draw");
    let buf = t.backend().buffer().clone();
    (0..h)
        .map(|y| (0..w).map(|x| buf[(x, y)].symbol().to_string()).collect())
        .collect()
}

/// The hostile tenant (escape sequences in names and properties) loaded
/// as a snapshot, with `key` selected.
fn hostile_app(key: &str) -> App {
    let mut app = new_app();
    app.load_snapshot(hostile::graph(), None, Default::default());
    app.sync();
    let id = app.graph().id_of(key).expect("the entity");
    app.update(Action::Jump(id));
    app
}

#[test]
fn a_tenants_escape_sequences_never_reach_the_terminal() {
    for key in [hostile::USER, hostile::VM] {
        let mut app = hostile_app(key);
        for (w, h) in [(120, 40), (80, 24)] {
            let rows = cells(&mut app, w, h);
            let text = rows.join("\n");
            assert!(text.contains("Ava"), "{text}");
            for (y, row) in rows.iter().enumerate() {
                assert!(
                    !row.chars().any(|c| c == '\x1b'
                        || c == '\x07'
                        || c == '\r'
                        || c == '\x7f'
                        || ('\u{80}'..='\u{9f}').contains(&c)),
                    "row {y} of {key} at {w}x{h} carries a control character: {row:?}"
                );
            }
        }
    }
}

/// The details pane shows an ARM resource's properties without the secrets
/// nested in them, by the same rule as export.
#[test]
fn the_details_pane_shows_no_secret_at_any_depth() {
    for key in [hostile::VM, hostile::WEB_APP, hostile::USER] {
        let app = hostile_app(key);
        let id = app.graph().id_of(key).expect("entity");
        let lines = tenx::tui::details::lines(
            app.graph(),
            id,
            app.now,
            FixedOffset::east_opt(0).expect("utc"),
        );
        let text: String = lines
            .iter()
            .map(|l| {
                l.spans
                    .iter()
                    .map(|s| s.content.as_ref())
                    .collect::<String>()
                    + "\n"
            })
            .collect();
        assert!(!text.contains(hostile::SECRET), "{key}:\n{text}");
        if key == hostile::VM {
            assert!(text.contains("azureuser"), "{text}");
        }
        if key == hostile::WEB_APP {
            assert!(
                text.contains("(redacted)") && text.contains("westeurope"),
                "{text}"
            );
        }
        // Drawn, too.
        let mut app = app;
        app.update(Action::Jump(id));
        let screen = cells(&mut app, 200, 60).join("\n");
        assert!(!screen.contains(hostile::SECRET), "{screen}");
    }
}

#[test]
fn ctrl_c_quits_from_the_triage_filter_and_note() {
    // Issue 23: Ctrl-C (quit in the keymap's text mode) was swallowed while
    // a triage filter or note was being typed.
    for open_input in [Action::Filter, Action::EditNote] {
        let mut app = read(&small());
        app.update(Action::ToggleTriage);
        assert!(app.triage().is_some());
        app.update(open_input);
        assert_eq!(
            app.key_mode(),
            tenx::tui::keymap::Mode::Text,
            "{open_input:?} takes typing"
        );
        app.update(Action::Char('x'));
        app.update(Action::Quit);
        assert!(app.quit, "Ctrl-C while typing after {open_input:?}");
    }
}
