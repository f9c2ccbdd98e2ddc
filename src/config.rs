//! Profiles: which tenant, which app, which cloud and endpoints, which
//! sources. TOML files in the config directory (`TENX_CONFIG_DIR`, else the
//! platform's, e.g. `~/.config/tenx`), one per profile, 0600 in a 0700
//! folder. Never a secret: that lives in the OS keyring (`secrets`).

use std::path::{Path, PathBuf};

use serde::{Deserialize, Serialize};

use crate::auth::endpoints::{Cloud, EndpointError, Endpoints, parse_base};
use crate::base::outfile::OutputError;
use crate::store::StoreError;

/// Why a profile cannot be used, by what the person does about it.
#[derive(Debug, thiserror::Error)]
pub enum ProfileError {
    /// No such profile, none yet, or several and none chosen.
    #[error("{0}")]
    NotChosen(String),
    /// A name or a file tenx cannot use.
    #[error("{0}")]
    Invalid(String),
    #[error(transparent)]
    Endpoint(#[from] EndpointError),
    #[error(transparent)]
    Output(#[from] OutputError),
    #[error(transparent)]
    Store(#[from] StoreError),
    #[error("{what}: {cause}")]
    Io { what: String, cause: std::io::Error },
}

macro_rules! fail {
    ($kind:ident, $($arg:tt)*) => {
        return Err(ProfileError::$kind(format!($($arg)*)))
    };
}
use crate::fetch::Source;

#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct Profile {
    #[serde(skip)]
    pub name: String,
    /// Tenant GUID or verified domain.
    pub tenant: String,
    pub client_id: String,
    pub cloud: Cloud,
    pub sources: Vec<Source>,
    /// Which API Defender is read through: `graph` (Microsoft Graph
    /// security advanced hunting, the default) or `mde` (the Defender for
    /// Endpoint API, retired on 1 February 2027).
    #[serde(default)]
    pub defender: crate::fetch::DefenderApi,
    /// Endpoints that differ from the cloud's (custom or simulated tenants).
    #[serde(default, skip_serializing_if = "EndpointOverrides::is_empty")]
    pub endpoints: EndpointOverrides,
}

#[derive(Debug, Clone, Default, PartialEq, Eq, Serialize, Deserialize)]
pub struct EndpointOverrides {
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub login: Option<String>,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub graph: Option<String>,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub defender: Option<String>,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub arm: Option<String>,
}

impl EndpointOverrides {
    pub fn is_empty(&self) -> bool {
        self.login.is_none()
            && self.graph.is_none()
            && self.defender.is_none()
            && self.arm.is_none()
    }
}

impl Profile {
    /// The cloud's endpoints with the profile's overrides, then the
    /// `TENX_*_URL` environment overrides.
    pub fn endpoints(&self) -> Result<Endpoints, ProfileError> {
        let mut e = Endpoints::for_cloud(self.cloud);
        let o = &self.endpoints;
        for (what, value, slot) in [
            ("login endpoint", &o.login, &mut e.login),
            ("graph endpoint", &o.graph, &mut e.graph),
            ("defender endpoint", &o.defender, &mut e.defender),
            ("arm endpoint", &o.arm, &mut e.arm),
        ] {
            if let Some(v) = value {
                *slot = parse_base(&format!("profile '{}': {what}", self.name), v)?;
            }
        }
        if self.cloud == Cloud::Custom && o.is_empty() {
            fail!(
                Invalid,
                "profile '{}': cloud is custom but no endpoint is set",
                self.name
            );
        }
        Ok(e.with_env_overrides()?)
    }
}

/// The config directory: `TENX_CONFIG_DIR`, else the platform's.
pub fn config_dir() -> Result<PathBuf, ProfileError> {
    if let Ok(d) = std::env::var("TENX_CONFIG_DIR") {
        if !d.trim().is_empty() {
            return Ok(PathBuf::from(d));
        }
    }
    directories::ProjectDirs::from("", "", "tenx")
        .map(|p| p.config_dir().to_path_buf())
        .ok_or_else(|| {
            ProfileError::NotChosen(
                "cannot find a home directory for the configuration; set TENX_CONFIG_DIR".into(),
            )
        })
}

fn profiles_dir() -> Result<PathBuf, ProfileError> {
    Ok(config_dir()?.join("profiles"))
}

/// Profile names are file names: letters, digits, `-`, `_`, `.`; 1–64 long.
pub fn check_name(name: &str) -> Result<(), ProfileError> {
    let ok = !name.is_empty()
        && name.len() <= 64
        && !name.starts_with('.')
        && name
            .chars()
            .all(|c| c.is_ascii_alphanumeric() || c == '-' || c == '_' || c == '.');
    if !ok {
        fail!(
            Invalid,
            "profile name '{name}' is not allowed: use 1–64 letters, digits, '-', '_' or '.'"
        );
    }
    Ok(())
}

fn path_of(name: &str) -> Result<PathBuf, ProfileError> {
    check_name(name)?;
    Ok(profiles_dir()?.join(format!("{name}.toml")))
}

pub fn load(name: &str) -> Result<Profile, ProfileError> {
    let path = path_of(name)?;
    let text = match std::fs::read_to_string(&path) {
        Ok(t) => t,
        Err(e) if e.kind() == std::io::ErrorKind::NotFound => {
            fail!(
                NotChosen,
                "no profile named '{name}': run `tenx login --profile {name}` to create it"
            )
        }
        Err(cause) => {
            return Err(ProfileError::Io {
                what: format!("cannot read {}", path.display()),
                cause,
            });
        }
    };
    let mut p: Profile = toml::from_str(&text).map_err(|e| {
        ProfileError::Invalid(format!(
            "{} is not a valid profile: {}",
            path.display(),
            e.to_string().trim_end()
        ))
    })?;
    if p.sources.is_empty() {
        fail!(
            Invalid,
            "profile '{name}' in {} reads no source (sources = []): list at least one of directory, intune, defender, arm",
            path.display()
        );
    }
    p.name = name.to_string();
    Ok(p)
}

pub fn save(p: &Profile) -> Result<PathBuf, ProfileError> {
    let path = path_of(&p.name)?;
    let dir = profiles_dir()?;
    crate::store::private_dir(&config_dir()?)?;
    crate::store::private_dir(&dir)?;
    let text = toml::to_string_pretty(p)
        .map_err(|e| ProfileError::Invalid(format!("cannot write profile '{}': {e}", p.name)))?;
    crate::base::outfile::write_atomic(&path, |w| std::io::Write::write_all(w, text.as_bytes()))?;
    Ok(path)
}

/// Removes a profile; false when there was none.
pub fn delete(name: &str) -> Result<bool, ProfileError> {
    let path = path_of(name)?;
    match std::fs::remove_file(&path) {
        Ok(()) => Ok(true),
        Err(e) if e.kind() == std::io::ErrorKind::NotFound => Ok(false),
        Err(cause) => Err(ProfileError::Io {
            what: format!("cannot remove {}", path.display()),
            cause,
        }),
    }
}

/// Every profile, sorted by name. Unreadable files are reported, not fatal.
pub fn list() -> Result<Vec<Result<Profile, String>>, ProfileError> {
    let dir = profiles_dir()?;
    let mut names: Vec<String> = match std::fs::read_dir(&dir) {
        Ok(rd) => rd
            .filter_map(Result::ok)
            .filter_map(|e| {
                e.file_name()
                    .to_str()
                    .and_then(|n| n.strip_suffix(".toml"))
                    .map(String::from)
            })
            .filter(|n| check_name(n).is_ok())
            .collect(),
        Err(e) if e.kind() == std::io::ErrorKind::NotFound => Vec::new(),
        Err(cause) => {
            return Err(ProfileError::Io {
                what: format!("cannot read {}", dir.display()),
                cause,
            });
        }
    };
    names.sort();
    Ok(names
        .into_iter()
        .map(|n| load(&n).map_err(|e| format!("{e:#}")))
        .collect())
}

/// The profile to use: the one named (`--profile`, else `TENX_PROFILE`), or
/// the only one there is.
pub fn resolve(name: Option<&str>) -> Result<Profile, ProfileError> {
    let env = std::env::var("TENX_PROFILE")
        .ok()
        .filter(|s| !s.trim().is_empty());
    if let Some(n) = name.map(String::from).or(env) {
        return load(&n);
    }
    let (all, broken): (Vec<_>, Vec<_>) = list()?.into_iter().partition(Result::is_ok);
    // A profile that cannot be read is never skipped in silence: it may be
    // the one meant.
    if let Some(Err(e)) = broken.into_iter().next() {
        fail!(Invalid, "{e}");
    }
    let all: Vec<Profile> = all.into_iter().filter_map(Result::ok).collect();
    match all.len() {
        0 => fail!(
            NotChosen,
            "no profile yet: run `tenx login` (or set TENX_TENANT_ID, TENX_CLIENT_ID and TENX_CLIENT_SECRET)"
        ),
        1 => all
            .into_iter()
            .next()
            .ok_or_else(|| ProfileError::NotChosen("no profile yet".into())),
        _ => fail!(
            NotChosen,
            "there are {} profiles ({}): choose one with --profile NAME",
            all.len(),
            all.iter()
                .map(|p| p.name.as_str())
                .collect::<Vec<_>>()
                .join(", ")
        ),
    }
}

pub fn exists(name: &str) -> bool {
    path_of(name)
        .map(|p| Path::new(&p).exists())
        .unwrap_or(false)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn names_are_checked() {
        for ok in ["default", "contoso-prod", "a.b_c", "X1"] {
            assert!(check_name(ok).is_ok(), "{ok}");
        }
        for bad in ["", ".hidden", "a/b", "../x", "sp ace", "ä"] {
            assert!(check_name(bad).is_err(), "{bad}");
        }
    }

    #[test]
    fn profiles_round_trip_through_toml_without_secrets() {
        let p = Profile {
            name: "x".into(),
            tenant: "contoso.onmicrosoft.com".into(),
            client_id: "c".into(),
            cloud: Cloud::UsGov,
            sources: vec![Source::Directory, Source::Arm],
            defender: crate::fetch::DefenderApi::Mde,
            endpoints: EndpointOverrides {
                graph: Some("http://127.0.0.1:9/graph".into()),
                ..Default::default()
            },
        };
        let text = toml::to_string_pretty(&p).expect("toml");
        assert!(
            text.contains("cloud = \"usgov\"")
                && text.contains("sources = [")
                && !text.contains("secret")
        );
        let mut back: Profile = toml::from_str(&text).expect("parse");
        back.name = "x".into();
        assert_eq!(back, p);
        let e = back.endpoints().expect("endpoints");
        assert_eq!(e.graph.as_str(), "http://127.0.0.1:9/graph");
        assert_eq!(e.arm.as_str(), "https://management.usgovcloudapi.net/");
    }
}
