//! Where sources meet. A Defender machine MANAGES the Intune device whose
//! `azureADDeviceId` equals the machine's `aadDeviceId` (falling back to the
//! host name, case-insensitively), and a Defender logon user IS the Entra
//! user whose UPN's local part is the account name. The two sides arrive
//! from different tasks in any order, so the linker remembers both and
//! answers with relationships as soon as a pair can be made. Its maps use
//! FxHash: every device, machine, user and logon user passes through them
//! on the graph's thread, and the keys are ids the services chose.

use rustc_hash::FxHashMap as HashMap;
use smallvec::SmallVec;

use super::JoinHint;
use crate::model::{RelRecord, Verb};

#[derive(Debug, Default)]
pub struct Linker {
    device_by_aad: HashMap<String, String>,
    device_by_host: HashMap<String, Only>,
    /// Machines with an Entra device id that no device has shown yet
    /// (nearly always one per id: kept inline).
    waiting_by_aad: HashMap<String, SmallVec<[String; 1]>>,
    /// Machines not matched yet: key → host name.
    unmatched: HashMap<String, String>,
    user_by_local: HashMap<String, Only>,
    logons_by_account: HashMap<String, Vec<String>>,
}

/// What a name (a host name, an account name) stands for: one key, or
/// more than one, which matches nothing. Most names are one device's or
/// one user's; a list per name was an allocation for every device and
/// user of a tenant.
#[derive(Debug)]
enum Only {
    One(String),
    Many,
}

/// Notes that `name` stands for `key` too.
fn note(map: &mut HashMap<String, Only>, name: String, key: String) {
    map.entry(name)
        .and_modify(|o| *o = Only::Many)
        .or_insert(Only::One(key));
}

impl Linker {
    /// Takes hints from a batch; returns the relationships that can be made
    /// now. Matches by Entra device id and account name happen as soon as
    /// both sides are known; host-name fallbacks wait for `finish`, when an
    /// ambiguous or better match can no longer arrive.
    pub fn add(&mut self, hints: Vec<JoinHint>) -> Vec<RelRecord> {
        let mut out = Vec::new();
        for h in hints {
            match h {
                JoinHint::Device {
                    key,
                    aad_device_id,
                    host,
                } => {
                    if let Some(a) = aad_device_id {
                        for m in self.waiting_by_aad.remove(&a).unwrap_or_default() {
                            self.unmatched.remove(&m);
                            out.push(RelRecord::new(m, Verb::Manages, key.as_str()));
                        }
                        self.device_by_aad.insert(a, key.clone());
                    }
                    if !host.is_empty() {
                        note(&mut self.device_by_host, host, key);
                    }
                }
                JoinHint::Machine {
                    key,
                    aad_device_id,
                    host,
                } => {
                    match aad_device_id
                        .as_ref()
                        .and_then(|a| self.device_by_aad.get(a))
                    {
                        Some(d) => out.push(RelRecord::new(key, Verb::Manages, d.as_str())),
                        None => {
                            if let Some(a) = aad_device_id {
                                self.waiting_by_aad.entry(a).or_default().push(key.clone());
                            }
                            self.unmatched.insert(key, host);
                        }
                    }
                }
                JoinHint::User { key, upn_local } => {
                    if let Some(logons) = self.logons_by_account.remove(&upn_local) {
                        for l in logons {
                            out.push(RelRecord::new(l, Verb::Is, key.as_str()));
                        }
                    }
                    note(&mut self.user_by_local, upn_local, key);
                }
                JoinHint::LogonUser { key, account } => match self.user_by_local.get(&account) {
                    Some(Only::One(user)) => out.push(RelRecord::new(key, Verb::Is, user.as_str())),
                    Some(Only::Many) => {}
                    None => self.logons_by_account.entry(account).or_default().push(key),
                },
            }
        }
        out
    }

    /// Everything has arrived: unmatched machines try the host name, which
    /// must name exactly one device.
    pub fn finish(&mut self) -> Vec<RelRecord> {
        let mut out = Vec::new();
        let mut machines: Vec<(String, String)> = self.unmatched.drain().collect();
        machines.sort();
        for (machine, host) in machines {
            if let Some(Only::One(device)) = self.device_by_host.get(&host) {
                out.push(RelRecord::new(machine, Verb::Manages, device.as_str()));
            }
        }
        self.waiting_by_aad.clear();
        out
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn device(key: &str, aad: Option<&str>, host: &str) -> JoinHint {
        JoinHint::Device {
            key: key.into(),
            aad_device_id: aad.map(String::from),
            host: host.into(),
        }
    }
    fn machine(key: &str, aad: Option<&str>, host: &str) -> JoinHint {
        JoinHint::Machine {
            key: key.into(),
            aad_device_id: aad.map(String::from),
            host: host.into(),
        }
    }

    #[test]
    fn machines_meet_devices_by_entra_id_in_either_order() {
        let mut l = Linker::default();
        assert!(
            l.add(vec![machine("m1", Some("a1"), "laptop-1")])
                .is_empty()
        );
        let rels = l.add(vec![device("d1", Some("a1"), "other-name")]);
        assert_eq!(rels, vec![RelRecord::new("m1", Verb::Manages, "d1")]);
        let rels = l.add(vec![machine("m2", Some("a1"), "x")]);
        assert_eq!(
            rels.len(),
            1,
            "a device can be managed by a re-onboarded machine too"
        );
    }

    #[test]
    fn host_names_are_the_fallback() {
        let mut l = Linker::default();
        l.add(vec![
            device("d1", Some("a1"), "laptop-1"),
            device("d2", None, "dup"),
            device("d3", None, "dup"),
        ]);
        // Host names wait for the end: a better match may still arrive.
        assert!(l.add(vec![machine("m1", None, "laptop-1")]).is_empty());
        assert!(
            l.add(vec![machine("m2", Some("zz"), "laptop-1")])
                .is_empty()
        );
        // Ambiguous host names match nothing.
        assert!(l.add(vec![machine("m3", None, "dup")]).is_empty());
        assert_eq!(
            l.finish(),
            vec![
                RelRecord::new("m1", Verb::Manages, "d1"),
                RelRecord::new("m2", Verb::Manages, "d1")
            ]
        );
    }

    #[test]
    fn logon_users_meet_entra_users_by_account_name() {
        let mut l = Linker::default();
        assert!(
            l.add(vec![JoinHint::LogonUser {
                key: "contoso\\ava".into(),
                account: "ava".into()
            }])
            .is_empty()
        );
        let rels = l.add(vec![
            JoinHint::User {
                key: "u1".into(),
                upn_local: "ava".into(),
            },
            JoinHint::User {
                key: "u2".into(),
                upn_local: "bo".into(),
            },
        ]);
        assert_eq!(rels, vec![RelRecord::new("contoso\\ava", Verb::Is, "u1")]);
        assert!(
            l.add(vec![JoinHint::LogonUser {
                key: "workgroup\\administrator".into(),
                account: "administrator".into()
            }])
            .is_empty()
        );
        // Two users with one account name: a logon user of that name is
        // neither of them.
        l.add(vec![JoinHint::User {
            key: "u3".into(),
            upn_local: "bo".into(),
        }]);
        assert!(
            l.add(vec![JoinHint::LogonUser {
                key: "contoso\\bo".into(),
                account: "bo".into()
            }])
            .is_empty()
        );
    }
}
