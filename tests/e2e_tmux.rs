//! The real `tenx demo` in a real terminal: tmux runs it at 120×40, keys go
//! in with send-keys, the screen comes back with capture-pane, and the test
//! waits for text to appear as a person would. Skipped (with the reason
//! printed) where tmux is missing; CI installs it.

mod common;

use std::process::Command;
use std::time::{Duration, Instant};

struct Session {
    name: String,
}

/// The tests' own tmux server: never the person's.
fn socket() -> String {
    format!("tenx-e2e-{}", std::process::id())
}

fn tmux() -> Command {
    let mut c = Command::new("tmux");
    // Its own server, without the person's ~/.tmux.conf.
    c.args(["-L", &socket(), "-f", "/dev/null"]);
    c
}

impl Session {
    fn start(name: &str, cmd: &str) -> Session {
        let ok = tmux()
            .args([
                "new-session",
                "-d",
                "-s",
                name,
                "-x",
                "120",
                "-y",
                "40",
                cmd,
            ])
            .status()
            .expect("tmux runs");
        assert!(ok.success(), "tmux new-session failed");
        Session {
            name: name.to_string(),
        }
    }

    fn screen(&self) -> String {
        let out = tmux()
            .args(["capture-pane", "-t", &self.name, "-p"])
            .output()
            .expect("capture-pane");
        String::from_utf8_lossy(&out.stdout).into_owned()
    }

    fn keys(&self, keys: &[&str]) {
        let mut args = vec!["send-keys", "-t", self.name.as_str()];
        args.extend_from_slice(keys);
        tmux().args(&args).status().expect("send-keys");
    }

    /// Waits until the screen no longer shows `text`. A key sent right after
    /// Escape would reach the explorer in the same read and be taken as
    /// Alt with that key; waiting for Escape's effect keeps them apart.
    fn wait_gone(&self, text: &str, timeout: Duration) {
        let start = Instant::now();
        while self.screen().contains(text) {
            assert!(
                start.elapsed() < timeout,
                "'{text}' stayed on screen for {timeout:?}:\n{}",
                self.screen()
            );
            std::thread::sleep(Duration::from_millis(100));
        }
    }

    /// Waits until the screen shows `text`; fails with the screen if it never does.
    fn wait_for(&self, text: &str, timeout: Duration) -> String {
        let start = Instant::now();
        loop {
            let s = self.screen();
            if s.contains(text) {
                return s;
            }
            assert!(
                start.elapsed() < timeout,
                "'{text}' did not appear within {timeout:?}; the screen:\n{s}"
            );
            std::thread::sleep(Duration::from_millis(100));
        }
    }

    fn alive(&self) -> bool {
        tmux()
            .args(["has-session", "-t", &self.name])
            .output()
            .map(|o| o.status.success())
            .unwrap_or(false)
    }

    fn wait_exit(&self, timeout: Duration) {
        let start = Instant::now();
        while self.alive() {
            assert!(
                start.elapsed() < timeout,
                "tenx did not exit; the screen:\n{}",
                self.screen()
            );
            std::thread::sleep(Duration::from_millis(100));
        }
    }
}

impl Drop for Session {
    fn drop(&mut self) {
        let _ = tmux().args(["kill-session", "-t", &self.name]).output();
    }
}

fn tmux_or_skip() -> bool {
    let ok = tmux()
        .arg("-V")
        .output()
        .map(|o| o.status.success())
        .unwrap_or(false);
    if !ok {
        assert!(
            std::env::var("CI").is_err(),
            "tmux is missing in CI; .ci/run must install it"
        );
        eprintln!("skipping the tmux end-to-end test: tmux is not installed");
    }
    ok
}

fn demo_command(dir: &std::path::Path) -> String {
    format!(
        "TENX_DATA_DIR={d}/data TENX_CONFIG_DIR={d}/config {bin} demo --users 150 --latency-ms 2",
        d = dir.display(),
        bin = env!("CARGO_BIN_EXE_tenx")
    )
}

#[test]
fn browse_jump_back_help_and_quit_in_a_real_terminal() {
    if !tmux_or_skip() {
        return;
    }
    let dir = tempfile::Builder::new()
        .prefix("tenx-e2e-")
        .tempdir()
        .expect("temp dir");
    let dir = dir.path();
    let s = Session::start(
        &format!("tenx-e2e-{}", std::process::id()),
        &demo_command(dir),
    );
    let t = Duration::from_secs(60);
    // The tree fills as sources arrive; the status bar ends with every source read.
    let screen = s.wait_for("data just now", t);
    assert!(
        screen.contains("Users  150") && screen.contains("Devices  180"),
        "{screen}"
    );
    assert!(
        screen.contains("directory ✓")
            && screen.contains("intune ✓")
            && screen.contains("defender ✓"),
        "{screen}"
    );

    // Open Users and step onto the first user.
    s.keys(&["Down", "Right", "Down"]);
    let screen = s.wait_for("User principal name", t);
    let user = screen
        .lines()
        .find_map(|l| {
            l.split("[user] ")
                .nth(1)
                .map(|rest| rest.split('│').next().unwrap_or("").trim().to_string())
        })
        .filter(|n| !n.is_empty())
        .expect("a user row");

    // Jump through the relationships pane and back.
    s.keys(&["Tab", "Tab", "Down", "Enter"]);
    s.wait_for("→ ", t);
    s.keys(&["BSpace"]);
    s.wait_for(&format!("→ {user}"), t);

    // Search: type part of a name, Enter, and the entity is selected.
    let first = user
        .split_whitespace()
        .next()
        .expect("first name")
        .to_string();
    s.keys(&["/"]);
    s.wait_for("type a name", t);
    s.keys(&["-l", &format!("user:{user}")]);
    s.wait_for("1 match in users", t);
    s.keys(&["Enter"]);
    let start = Instant::now();
    let screen = loop {
        let sc = s.screen();
        if !sc.contains("┌ Search") {
            break sc;
        }
        assert!(start.elapsed() < t, "the search did not close:\n{sc}");
        std::thread::sleep(Duration::from_millis(100));
    };
    assert!(
        screen.contains(&format!("→ {user}"))
            && screen.contains(&format!("[user] {first}"))
            && screen.contains("User principal name"),
        "{screen}"
    );

    // Help overlay, generated from the keymap.
    s.keys(&["?"]);
    s.wait_for("forward in jump history", t);
    s.keys(&["Escape"]);
    let start = Instant::now();
    while s.screen().contains("forward in jump history") {
        assert!(start.elapsed() < t, "help did not close");
        std::thread::sleep(Duration::from_millis(100));
    }

    s.keys(&["q"]);
    s.wait_exit(t);
}

#[test]
fn ctrl_c_quits_while_the_fetch_runs() {
    if !tmux_or_skip() {
        return;
    }
    let dir = tempfile::Builder::new()
        .prefix("tenx-e2e-c-")
        .tempdir()
        .expect("temp dir");
    let dir = dir.path();
    let cmd = demo_command(dir).replace("--latency-ms 2", "--latency-ms 200");
    let s = Session::start(&format!("tenx-e2e-c-{}", std::process::id()), &cmd);
    s.wait_for("reading…", Duration::from_secs(60));
    s.keys(&["C-c"]);
    s.wait_exit(Duration::from_secs(20));
}

fn pane_pid(s: &Session) -> Option<u32> {
    let out = tmux()
        .args(["list-panes", "-t", &s.name, "-F", "#{pane_pid}"])
        .output()
        .ok()?;
    String::from_utf8_lossy(&out.stdout).trim().parse().ok()
}

#[test]
fn sigterm_ends_the_explorer() {
    if !tmux_or_skip() {
        return;
    }
    let dir = tempfile::Builder::new()
        .prefix("tenx-e2e-t-")
        .tempdir()
        .expect("temp dir");
    let dir = dir.path();
    // `exec` makes the pane's process tenx itself, so the signal reaches it.
    let cmd = format!("exec env {}", demo_command(dir));
    let s = Session::start(&format!("tenx-e2e-t-{}", std::process::id()), &cmd);
    s.wait_for("Tenant", Duration::from_secs(60));
    let pid = pane_pid(&s).expect("pane pid");
    Command::new("kill")
        .args(["-TERM", &pid.to_string()])
        .status()
        .expect("kill");
    s.wait_exit(Duration::from_secs(20));
}

#[test]
fn a_profile_opens_its_latest_snapshot_at_once_and_refreshes_in_the_background() {
    if !tmux_or_skip() {
        return;
    }
    let rt = common::runtime();
    let opts = tenx_sim::ServerOptions {
        latency: Duration::from_millis(3000),
        ..Default::default()
    };
    let server = rt.block_on(common::sim::start(120, 9, opts));
    let dir = tempfile::Builder::new()
        .prefix("tenx-e2e-p-")
        .tempdir()
        .expect("temp dir");
    let dir = dir.path();
    let env: Vec<String> = server
        .env()
        .into_iter()
        .map(|(k, v)| format!("{k}={v}"))
        .collect();
    let prefix = format!(
        "env TENX_DATA_DIR={d}/data TENX_CONFIG_DIR={d}/config {}",
        env.join(" "),
        d = dir.display()
    );
    // A first, headless fetch leaves a snapshot.
    let out = Command::new("sh")
        .arg("-c")
        .arg(format!("{prefix} {} fetch", env!("CARGO_BIN_EXE_tenx")))
        .output()
        .expect("fetch");
    assert!(
        out.status.success(),
        "{}",
        String::from_utf8_lossy(&out.stderr)
    );
    // The explorer shows it long before the refresh ends.
    let s = Session::start(
        &format!("tenx-e2e-p-{}", std::process::id()),
        &format!("exec {prefix} {}", env!("CARGO_BIN_EXE_tenx")),
    );
    // At 3 s a request the refresh cannot show a user for 6 s (a token,
    // then a page); the snapshot is on screen well before.
    let screen = s.wait_for("Users  120", Duration::from_secs(5));
    assert!(
        screen.contains("reading…"),
        "the refresh runs in the background:\n{screen}"
    );
    s.keys(&["q"]);
    s.wait_exit(Duration::from_secs(20));
    rt.block_on(server.stop());
}

impl Session {
    /// A tmux format about the pane, e.g. `#{alternate_on}`.
    fn display(&self, format: &str) -> String {
        let out = tmux()
            .args(["display-message", "-p", "-t", &self.name, format])
            .output()
            .expect("display-message");
        String::from_utf8_lossy(&out.stdout).trim().to_string()
    }
}

/// The processes whose parent is `pid`.
fn children(pid: u32) -> Vec<u32> {
    let out = Command::new("ps")
        .args(["-o", "pid=", "--ppid", &pid.to_string()])
        .output()
        .expect("ps");
    String::from_utf8_lossy(&out.stdout)
        .split_whitespace()
        .filter_map(|p| p.parse().ok())
        .collect()
}

/// A signal while the explorer is still reading a large simulated tenant:
/// the terminal comes back as it was (main screen, cursor shown, mouse off,
/// line editing and echo on) and the exit status is 128 + the signal.
#[test]
fn every_signal_restores_the_terminal_and_sets_the_exit_status() {
    if !tmux_or_skip() {
        return;
    }
    for (signal, status) in [("INT", 130), ("HUP", 129), ("TERM", 143), ("QUIT", 131)] {
        let dir = tempfile::Builder::new()
            .prefix("tenx-e2e-sig-")
            .tempdir()
            .expect("temp dir");
        let d = dir.path();
        std::fs::create_dir(d.join("tmp")).expect("tmp");
        let cmd = format!(
            "TMPDIR={d}/tmp TENX_DATA_DIR={d}/data TENX_CONFIG_DIR={d}/config {bin} demo --users 20000 --latency-ms 20; \
             echo \"tenx-exit=$?\"; \
             echo \"stty: $(stty -a | tr ' ;' '\\n\\n' | grep -xE -- '-?(icanon|echo|isig)' | tr '\\n' ' ')\"; \
             sleep 300",
            d = d.display(),
            bin = env!("CARGO_BIN_EXE_tenx")
        );
        let s = Session::start(
            &format!("tenx-e2e-sig{signal}-{}", std::process::id()),
            &cmd,
        );
        let t = Duration::from_secs(120);
        s.wait_for("reading…", t);
        assert_eq!(s.display("#{alternate_on}"), "1", "the explorer is on");
        let shell = pane_pid(&s).expect("pane pid");
        let tenx = children(shell);
        assert_eq!(tenx.len(), 1, "tenx under the pane's shell: {tenx:?}");
        Command::new("kill")
            .args([&format!("-{signal}"), &tenx[0].to_string()])
            .status()
            .expect("kill");
        let screen = s.wait_for("stty: ", t);
        assert!(
            screen.contains(&format!("tenx-exit={status}")),
            "SIG{signal}: {screen}"
        );
        let stty = screen
            .lines()
            .find(|l| l.starts_with("stty: "))
            .expect("stty line");
        for flag in ["icanon", "echo", "isig"] {
            assert!(
                stty.split_whitespace().any(|f| f == flag),
                "SIG{signal}: {flag} is off after tenx: {stty}"
            );
        }
        assert_eq!(
            s.display("#{alternate_on}"),
            "0",
            "SIG{signal}: still on the alternate screen"
        );
        assert_eq!(
            s.display("#{cursor_flag}"),
            "1",
            "SIG{signal}: the cursor is hidden"
        );
        assert_eq!(
            s.display("#{mouse_any_flag}"),
            "0",
            "SIG{signal}: the mouse is still captured"
        );
        let left: Vec<_> = std::fs::read_dir(d.join("tmp"))
            .expect("tmp")
            .filter_map(Result::ok)
            .map(|e| e.file_name())
            .collect();
        assert!(
            left.is_empty(),
            "SIG{signal}: the demo store stayed: {left:?}"
        );
    }
}

/// A panic on a worker thread is logged; the explorer keeps the terminal
/// and goes on answering keys. (Debug builds panic a worker on purpose
/// when `TENX_DEBUG_WORKER_PANIC` is set.)
#[test]
fn a_worker_panic_leaves_the_explorer_running() {
    if !tmux_or_skip() {
        return;
    }
    let dir = tempfile::Builder::new()
        .prefix("tenx-e2e-panic-")
        .tempdir()
        .expect("temp dir");
    let d = dir.path();
    let cmd = format!(
        "TENX_DEBUG_WORKER_PANIC=1 {}; echo \"tenx-exit=$?\"; sleep 300",
        demo_command(d)
    );
    let s = Session::start(&format!("tenx-e2e-panic-{}", std::process::id()), &cmd);
    let t = Duration::from_secs(60);
    s.wait_for("data just now", t);
    // The panic has happened (300 ms in) and is in the log.
    let start = Instant::now();
    let log = d.join("data").join("tenx.log");
    loop {
        let text = std::fs::read_to_string(&log).unwrap_or_default();
        if text.contains("a worker thread panicked") {
            break;
        }
        assert!(start.elapsed() < t, "no panic in the log:\n{text}");
        std::thread::sleep(Duration::from_millis(100));
    }
    assert_eq!(
        s.display("#{alternate_on}"),
        "1",
        "the terminal was torn down"
    );
    assert!(!s.screen().contains("panicked"), "{}", s.screen());
    s.keys(&["?"]);
    s.wait_for("forward in jump history", t);
    s.keys(&["Escape"]);
    s.wait_gone("forward in jump history", t);
    s.keys(&["q"]);
    let screen = s.wait_for("tenx-exit=", t);
    assert!(screen.contains("tenx-exit=0"), "{screen}");
}

#[test]
fn a_users_keymap_rebinds_keys_and_help_shows_them_and_a_broken_theme_is_said() {
    if !tmux_or_skip() {
        return;
    }
    let dir = tempfile::Builder::new()
        .prefix("tenx-e2e-keys-")
        .tempdir()
        .expect("temp dir");
    let dir = dir.path();
    let config = dir.join("config");
    std::fs::create_dir_all(&config).expect("config dir");
    // Quit moves to Q, help to F1; q is then nobody's.
    std::fs::write(
        config.join("keymap.toml"),
        "[browse]\nquit = [\"Q\"]\nhelp = [\"F1\"]\n",
    )
    .expect("keymap");
    std::fs::write(
        config.join("theme.toml"),
        "[styles]\nkey = { fg = \"mauve\" }\n",
    )
    .expect("theme");
    let s = Session::start(
        &format!("tenx-e2e-keys-{}", std::process::id()),
        &demo_command(dir),
    );
    let t = Duration::from_secs(60);
    let screen = s.wait_for("data just now", t);
    assert!(
        screen.contains("theme.toml: [styles] key: fg = \"mauve\" is not a colour"),
        "the broken theme is said: {screen}"
    );
    s.keys(&["F1"]);
    let help = s.wait_for("Esc closes", t);
    let row = |keys: &str, what: &str| {
        help.lines().any(|l| {
            l.split('│')
                .any(|cell| cell.starts_with(&format!("{keys} ")) && cell.contains(what))
        })
    };
    assert!(row("Q", "quit"), "{help}");
    assert!(row("F1", "this help"), "{help}");
    assert!(!row("q", "quit"), "{help}");
    s.keys(&["Escape"]);
    s.wait_gone("Esc closes", t);
    s.keys(&["q"]);
    std::thread::sleep(Duration::from_millis(500));
    assert!(s.alive(), "q no longer quits: {}", s.screen());
    s.keys(&["Q"]);
    s.wait_exit(t);
}
