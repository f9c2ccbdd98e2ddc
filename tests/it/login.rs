//! Sign-in: `tenx login` against the simulated tenant, the secret in a real
//! OS keyring read by another process, clear errors, and no secret anywhere
//! it should not be. The keyring tests need a Secret Service (`.ci/run`
//! starts one); without it they say so and skip, except under CI.

use crate::common;

use std::io::Write;
use std::path::{Path, PathBuf};
use std::process::{Command, Output, Stdio};

// The binary with a clean environment: only the given dirs, no credentials.
use common::bin::bare as tenx;
use common::{runtime, sim, tempdir};
use tenx::auth::secret::Secret;
use tenx::auth::secrets::{OsKeyring, SecretStore};
use tenx_sim::RunningTenant;

fn start(rt: &tokio::runtime::Runtime, seed: u64, faults: &str) -> RunningTenant {
    rt.block_on(sim::start(60, seed, sim::faults(faults)))
}

/// `tenx login` for the simulated tenant, the secret on standard input.
fn login(
    home: &Path,
    s: &RunningTenant,
    profile: &str,
    tenant: &str,
    client_id: &str,
    secret: &str,
) -> Output {
    login_with(home, s, profile, tenant, client_id, secret, &[])
}

/// `login`, with more arguments.
fn login_with(
    home: &Path,
    s: &RunningTenant,
    profile: &str,
    tenant: &str,
    client_id: &str,
    secret: &str,
    extra: &[&str],
) -> Output {
    let b = s.base_url();
    let mut c = tenx(home);
    c.env("TENX_TODAY", "2026-12-01");
    c.args([
        "login",
        "--profile",
        profile,
        "--secret-stdin",
        "--tenant",
        tenant,
        "--client-id",
        client_id,
    ])
    .args([
        "--login-url",
        &format!("{b}/login"),
        "--graph-url",
        &format!("{b}/graph"),
    ])
    .args([
        "--defender-url",
        &format!("{b}/defender"),
        "--arm-url",
        &format!("{b}/arm"),
    ])
    .args(extra)
    .stdin(Stdio::piped())
    .stdout(Stdio::piped())
    .stderr(Stdio::piped());
    let mut child = c.spawn().expect("tenx login runs");
    child
        .stdin
        .take()
        .expect("stdin")
        .write_all(format!("{secret}\n").as_bytes())
        .expect("write secret");
    child.wait_with_output().expect("login ends")
}

fn text(o: &Output) -> String {
    format!(
        "{}{}",
        String::from_utf8_lossy(&o.stdout),
        String::from_utf8_lossy(&o.stderr)
    )
}

/// Whether a Secret Service answers; under CI its absence is a failure.
fn keyring_or_skip(test: &str) -> bool {
    let probe = format!("tenx-probe-{}-{test}", std::process::id());
    let ok = OsKeyring.set(&probe, &Secret::new("probe")).is_ok()
        && OsKeyring.delete(&probe).unwrap_or(false);
    if !ok {
        assert!(
            std::env::var("CI").is_err(),
            "{test}: no Secret Service in CI; .ci/run must start one"
        );
        eprintln!(
            "skipping {test}: no Secret Service is running (start gnome-keyring under dbus-run-session, as .ci/run does)"
        );
    }
    ok
}

fn contains(path: &Path, needle: &[u8]) -> Vec<PathBuf> {
    let mut hits = Vec::new();
    if path.is_dir() {
        for e in std::fs::read_dir(path).expect("dir").flatten() {
            hits.extend(contains(&e.path(), needle));
        }
    } else if let Ok(bytes) = std::fs::read(path) {
        if bytes.windows(needle.len()).any(|w| w == needle) {
            hits.push(path.to_path_buf());
        }
    }
    hits
}

#[test]
fn login_keeps_the_secret_in_the_keyring_for_other_processes() {
    if !keyring_or_skip("login_keeps_the_secret") {
        return;
    }
    let rt = runtime();
    let s = start(&rt, 31, "");
    let home = tempdir("login-keyring");
    let home = home.path();
    let profile = format!("lab-{}", std::process::id());
    let t = s.tenant.clone();
    let out = login(
        home,
        &s,
        &profile,
        &t.tenant_id,
        &t.client_id,
        &t.client_secret,
    );
    assert!(out.status.success(), "{}", text(&out));
    assert!(
        text(&out).contains("directory  working") && text(&out).contains("arm        working"),
        "{}",
        text(&out)
    );
    // Another process finds the secret: `profiles` says it is stored...
    let out = tenx(home).arg("profiles").output().expect("profiles");
    let listing = text(&out);
    assert!(
        listing.contains(&profile) && listing.contains("stored") && listing.contains(&t.client_id),
        "{listing}"
    );
    // ...and a fetch with no secret in the environment signs in with it.
    let out = tenx(home)
        .args(["fetch", "--profile", &profile])
        .output()
        .expect("fetch");
    assert_eq!(out.status.code(), Some(0), "{}", text(&out));
    // The one profile is the default.
    let out = tenx(home)
        .args(["fetch", "--sources", "arm"])
        .output()
        .expect("fetch");
    assert_eq!(out.status.code(), Some(0), "{}", text(&out));
    // TENX_CLIENT_SECRET overrides the keyring.
    let out = tenx(home)
        .args(["fetch", "--profile", &profile, "--sources", "directory"])
        .env("TENX_CLIENT_SECRET", "not-the-secret")
        .output()
        .expect("fetch");
    assert_eq!(out.status.code(), Some(1));
    assert!(text(&out).contains("AADSTS7000215"));
    // Export, then look for the secret everywhere tenx writes.
    let export = home.join("export.json");
    let out = tenx(home)
        .args(["export", "--profile", &profile, "-o"])
        .arg(&export)
        .output()
        .expect("export");
    assert!(out.status.success(), "{}", text(&out));
    let hits = contains(home, t.client_secret.as_bytes());
    assert!(hits.is_empty(), "the secret was written to {hits:?}");
    #[cfg(unix)]
    {
        use std::os::unix::fs::PermissionsExt;
        let mode = |p: &Path| std::fs::metadata(p).expect("meta").permissions().mode() & 0o777;
        assert_eq!(
            mode(&home.join("config/profiles").join(format!("{profile}.toml"))),
            0o600
        );
        assert_eq!(mode(&home.join("config/profiles")), 0o700);
        assert_eq!(mode(&home.join("config")), 0o700);
        assert_eq!(mode(&home.join("data")), 0o700);
        assert_eq!(
            mode(&home.join("data").join(format!("{profile}.sqlite"))),
            0o600
        );
        assert_eq!(mode(&export), 0o600);
    }
    // After logout the same fetch fails and names the fix.
    let out = tenx(home)
        .args(["logout", "--profile", &profile])
        .output()
        .expect("logout");
    assert!(out.status.success(), "{}", text(&out));
    assert_eq!(OsKeyring.get(&profile).expect("keyring"), None);
    let out = tenx(home)
        .args(["fetch", "--profile", &profile])
        .output()
        .expect("fetch");
    assert_eq!(out.status.code(), Some(1));
    assert!(
        text(&out).contains(&format!("tenx login --profile {profile}")),
        "{}",
        text(&out)
    );
}

#[test]
fn a_missing_permission_is_named_at_login() {
    if !keyring_or_skip("a_missing_permission") {
        return;
    }
    let rt = runtime();
    let s = start(
        &rt,
        32,
        "missing-role=ThreatHunting.Read.All,missing-role=Machine.Read.All,missing-role=DeviceManagementApps.Read.All",
    );
    let home = tempdir("login-permission");
    let home = home.path();
    let profile = format!("perm-{}", std::process::id());
    let t = s.tenant.clone();
    let out = login(
        home,
        &s,
        &profile,
        &t.tenant_id,
        &t.client_id,
        &t.client_secret,
    );
    let said = text(&out);
    assert!(out.status.success(), "{said}");
    assert!(
        said.contains("defender   missing application permission ThreatHunting.Read.All"),
        "{said}"
    );
    assert!(
        said.contains("intune     missing application permission DeviceManagementApps.Read.All"),
        "{said}"
    );
    assert!(
        said.contains("not Delegated") && said.contains("admin consent"),
        "{said}"
    );
    assert!(said.contains("directory  working"));
    let _ = tenx(home).args(["logout", "--profile", &profile]).output();
    // Through the old API, its own permission.
    let out = tenx_login_mde(home, &s, &profile);
    let said = text(&out);
    assert!(
        said.contains("defender   missing application permission Machine.Read.All"),
        "{said}"
    );
    let _ = tenx(home).args(["logout", "--profile", &profile]).output();
}

/// `tenx login` of the simulated app, choosing the old Defender API.
fn tenx_login_mde(home: &Path, s: &RunningTenant, profile: &str) -> Output {
    let t = s.tenant.clone();
    login_with(
        home,
        s,
        profile,
        &t.tenant_id,
        &t.client_id,
        &t.client_secret,
        &["--defender-api", "mde"],
    )
}

#[test]
fn wrong_credentials_are_explained_and_nothing_is_saved() {
    let rt = runtime();
    let s = start(&rt, 33, "");
    let home = tempdir("login-wrong");
    let home = home.path();
    let t = s.tenant.clone();
    let cases = [
        (
            t.tenant_id.clone(),
            t.client_id.clone(),
            "wrong-secret-value".to_string(),
            "AADSTS7000215",
            "Value, not its Secret ID",
        ),
        (
            t.tenant_id.clone(),
            t.client_id.clone(),
            t.secret_id.clone(),
            "AADSTS7000215",
            "Value, not its Secret ID",
        ),
        (
            t.tenant_id.clone(),
            "0c0c0c0c-1111-2222-3333-444444444444".to_string(),
            t.client_secret.clone(),
            "AADSTS700016",
            "was not found in this tenant",
        ),
        (
            "fabrikam-typo.onmicrosoft.com".to_string(),
            t.client_id.clone(),
            t.client_secret.clone(),
            "AADSTS90002",
            "tenant was not found",
        ),
    ];
    for (tenant, client, secret, code, words) in cases {
        let out = login(home, &s, "wrong", &tenant, &client, &secret);
        let said = text(&out);
        assert_eq!(out.status.code(), Some(1), "{said}");
        assert!(
            said.contains(code) && said.contains(words) && said.contains("nothing was saved"),
            "{said}"
        );
        assert!(
            !said.contains(&secret),
            "the secret is never repeated: {said}"
        );
        assert!(!home.join("config/profiles/wrong.toml").exists());
    }
}

#[test]
fn without_a_keyring_login_says_what_is_missing_and_writes_no_file() {
    let rt = runtime();
    let s = start(&rt, 34, "");
    let home = tempdir("login-nokeyring");
    let home = home.path();
    let t = s.tenant.clone();
    let b = s.base_url();
    let mut c = tenx(home);
    c.env(
        "DBUS_SESSION_BUS_ADDRESS",
        format!("unix:path={}", home.join("no-bus").display()),
    )
    .args([
        "login",
        "--profile",
        "nokr",
        "--secret-stdin",
        "--tenant",
        &t.tenant_id,
        "--client-id",
        &t.client_id,
    ])
    .args([
        "--login-url",
        &format!("{b}/login"),
        "--graph-url",
        &format!("{b}/graph"),
        "--defender-url",
        &format!("{b}/defender"),
        "--arm-url",
        &format!("{b}/arm"),
    ])
    .stdin(Stdio::piped())
    .stdout(Stdio::piped())
    .stderr(Stdio::piped());
    let mut child = c.spawn().expect("runs");
    child
        .stdin
        .take()
        .expect("stdin")
        .write_all(t.client_secret.as_bytes())
        .expect("write");
    let out = child.wait_with_output().expect("ends");
    let said = text(&out);
    assert_eq!(out.status.code(), Some(1), "{said}");
    assert!(
        said.contains("no keyring is available")
            && said.contains("TENX_CLIENT_SECRET")
            && said.contains("nothing was saved"),
        "{said}"
    );
    assert!(contains(home, t.client_secret.as_bytes()).is_empty());
    assert!(!home.join("config/profiles/nokr.toml").exists());
}

#[test]
fn the_secret_is_never_a_command_line_argument() {
    let out = Command::new(env!("CARGO_BIN_EXE_tenx"))
        .args(["login", "--help"])
        .output()
        .expect("help");
    let help = String::from_utf8_lossy(&out.stdout);
    assert!(help.contains("--secret-stdin"));
    assert!(
        !help.contains("--secret ") && !help.contains("--client-secret"),
        "{help}"
    );
    let out = Command::new(env!("CARGO_BIN_EXE_tenx"))
        .args(["login", "--client-secret", "x"])
        .output()
        .expect("runs");
    assert!(!out.status.success());
}

#[test]
fn several_profiles_need_a_choice_and_bad_names_are_refused() {
    let home = tempdir("login-choice");
    let home = home.path();
    for name in ["a", "b"] {
        std::fs::create_dir_all(home.join("config/profiles")).expect("dir");
        std::fs::write(home.join(format!("config/profiles/{name}.toml")), "tenant = \"t.onmicrosoft.com\"\nclient_id = \"c\"\ncloud = \"public\"\nsources = [\"arm\"]\n").expect("write");
    }
    let out = tenx(home).arg("fetch").output().expect("fetch");
    assert_eq!(out.status.code(), Some(1));
    assert!(
        text(&out).contains("there are 2 profiles (a, b): choose one with --profile NAME"),
        "{}",
        text(&out)
    );
    let out = tenx(home)
        .args(["fetch", "--profile", "../etc"])
        .output()
        .expect("fetch");
    assert!(
        text(&out).contains("profile name '../etc' is not allowed"),
        "{}",
        text(&out)
    );
    std::fs::write(home.join("config/profiles/a.toml"), "tenant = [").expect("write");
    let out = tenx(home)
        .args(["fetch", "--profile", "a"])
        .output()
        .expect("fetch");
    assert!(
        text(&out).contains("a.toml is not a valid profile"),
        "{}",
        text(&out)
    );
}

/// A config folder that exists keeps its mode (tenx used to make it 0700);
/// the folders tenx creates in it are 0700, and a folder others can read
/// is warned about.
#[cfg(unix)]
#[test]
fn an_existing_config_folder_keeps_its_mode() {
    use std::os::unix::fs::PermissionsExt;
    if !keyring_or_skip("an_existing_config_folder") {
        return;
    }
    let rt = runtime();
    let s = start(&rt, 33, "");
    let home = tempdir("login-config-mode");
    let home = home.path();
    let config = home.join("config");
    std::fs::create_dir(&config).expect("dir");
    std::fs::set_permissions(&config, std::fs::Permissions::from_mode(0o755)).expect("chmod");
    let profile = format!("mode-{}", std::process::id());
    let t = s.tenant.clone();
    let out = login(
        home,
        &s,
        &profile,
        &t.tenant_id,
        &t.client_id,
        &t.client_secret,
    );
    assert!(out.status.success(), "{}", text(&out));
    let mode = |p: &Path| std::fs::metadata(p).expect("meta").permissions().mode() & 0o7777;
    assert_eq!(
        mode(&config),
        0o755,
        "tenx changed a folder it did not create"
    );
    assert_eq!(mode(&config.join("profiles")), 0o700);
    assert!(
        text(&out).contains("readable by other users"),
        "{}",
        text(&out)
    );
    let _ = tenx(home).args(["logout", "--profile", &profile]).output();
}
