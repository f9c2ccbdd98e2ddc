//! Fuzzy search over every entity. The index holds, per entity, one
//! haystack — its name and the field that tells it apart (UPN, serial, CVE
//! id, resource group…) — pre-converted for the matcher. It grows in
//! segments as entities arrive, so a search can run on another thread over
//! a cheap clone while the graph keeps growing.
//!
//! Matching uses nucleo-matcher: fuzzy-matcher needed 128–239 ms for one pass
//! over a million names here, more than a keystroke may take; nucleo-matcher
//! needs 20–94 ms, split across the cores, and less again when a growing
//! pattern searches only the previous matches.

use std::sync::Arc;
use std::sync::atomic::{AtomicU64, Ordering};

use nucleo_matcher::pattern::{AtomKind, CaseMatching, Normalization, Pattern};
use nucleo_matcher::{Config, Matcher, Utf32Str};

use crate::model::{EntityId, EntityKind, TenantGraph};

/// Kind filters, by the prefix a person types (`user:ava`).
pub const KIND_FILTERS: &[(&str, &str)] = &[
    ("user", "users"),
    ("group", "groups"),
    ("sp", "service principals"),
    ("dev", "devices"),
    ("finding", "findings (noncompliance and vulnerability)"),
    ("cve", "CVEs"),
    ("machine", "Defender machines"),
    ("policy", "compliance policies and configurations"),
    ("app", "applications"),
    ("sub", "subscriptions"),
    ("rg", "resource groups"),
    ("res", "Azure resources"),
    ("role", "role assignments and definitions"),
];

pub fn kind_matches(filter: &str, kind: EntityKind) -> bool {
    use EntityKind as K;
    match filter {
        "user" => matches!(
            kind,
            K::AzureUser | K::DefenderLogonUser | K::AzureGroupMember
        ),
        "group" => kind == K::AzureUserGroup,
        "sp" => kind == K::AzureServicePrincipal,
        "dev" => kind.is_device(),
        "finding" => matches!(
            kind,
            K::IntuneNoncomplianceFinding | K::DefenderVulnerability
        ),
        "cve" => kind == K::Cve,
        "machine" => kind == K::DefenderMachine,
        "policy" => matches!(
            kind,
            K::IntuneCompliancePolicy | K::IntuneDeviceConfiguration
        ),
        "app" => matches!(
            kind,
            K::IntuneDetectedApplication | K::IntuneManagedApplication
        ),
        "sub" => kind == K::AzureSubscription,
        "rg" => kind == K::AzureResourceGroup,
        "res" => kind.is_azure_resource(),
        "role" => matches!(kind, K::AzureRoleAssignment | K::AzureRoleDefinition),
        _ => true,
    }
}

#[derive(Debug, Clone, Copy)]
struct Item {
    id: EntityId,
    kind: EntityKind,
    /// Characters of the haystack that belong to the name (for highlighting).
    name_len: u32,
    /// Where the haystack is in its segment's arena.
    off: u32,
    len: u32,
    wide: bool,
    /// Breaks ties between equal matches the same way every run (arrival
    /// order varies): a hash of the entity's key.
    tie: u64,
}

/// A batch of indexed entities. Haystacks live back to back in two arenas
/// (ASCII bytes, other text as chars): a pass over a million of them reads
/// memory in order instead of chasing a million allocations.
#[derive(Debug, Default)]
struct Segment {
    items: Vec<Item>,
    ascii: Vec<u8>,
    wide: Vec<char>,
}

impl Segment {
    fn hay(&self, it: &Item) -> Utf32Str<'_> {
        let (o, l) = (it.off as usize, it.len as usize);
        if it.wide {
            Utf32Str::Unicode(&self.wide[o..o + l])
        } else {
            Utf32Str::Ascii(&self.ascii[o..o + l])
        }
    }
}

/// The most telling field besides the name, per kind.
pub fn secondary(g: &TenantGraph, id: EntityId) -> String {
    use EntityKind as K;
    let e = g.entity(id);
    let p = e.properties();
    let s = |f: &str| p.get(f).and_then(|v| v.as_str()).unwrap_or("").to_string();
    match e.kind {
        K::AzureUser => s("userPrincipalName"),
        K::AzureUserGroup => s("mail"),
        K::AzureServicePrincipal => s("appId"),
        k if k.is_device() => {
            let os = [s("operatingSystem"), s("osVersion")]
                .join(" ")
                .trim()
                .to_string();
            let owner = s("userDisplayName");
            let serial = s("serialNumber");
            [os, owner, serial]
                .into_iter()
                .filter(|x| !x.is_empty())
                .collect::<Vec<_>>()
                .join(" · ")
        }
        K::IntuneNoncomplianceFinding => s("state"),
        K::DefenderVulnerability | K::Cve => s("severity"),
        K::DefenderMachine => [s("osPlatform"), s("riskScore")].join(" · "),
        K::AzureResourceGroup | K::AzureSubscription => s("location"),
        k if k.is_azure_resource() => {
            let rg = e.key.split('/').nth(4).unwrap_or("").to_string();
            if rg.is_empty() {
                s("type")
            } else {
                format!("{} · {rg}", s("type"))
            }
        }
        _ => String::new(),
    }
}

/// What is searched besides the name: identifiers people type.
fn searchable_extra(g: &TenantGraph, id: EntityId) -> String {
    use EntityKind as K;
    let e = g.entity(id);
    let p = e.properties();
    let s = |f: &str| p.get(f).and_then(|v| v.as_str()).unwrap_or("").to_string();
    // The local part of an address is what people type; the tenant's domain
    // is the same everywhere and would only lengthen every haystack.
    let local = |f: &str| s(f).split('@').next().unwrap_or("").to_string();
    let parts: Vec<String> = match e.kind {
        K::AzureUser => vec![local("userPrincipalName")],
        K::AzureUserGroup => vec![local("mail")],
        k if k.is_device() => vec![s("serialNumber"), local("userPrincipalName")],
        K::DefenderMachine => vec![s("lastIpAddress")],
        K::DefenderVulnerability => vec![s("cveId")],
        K::AzureResourceGroup | K::AzureSubscription => vec![s("subscriptionId")],
        k if k.is_azure_resource() => vec![e.key.split('/').nth(4).unwrap_or("").to_string()],
        _ => vec![],
    };
    parts
        .into_iter()
        .filter(|x| !x.is_empty() && x.as_str() != &*e.display_name)
        .collect::<Vec<_>>()
        .join(" ")
}

/// The index: segments of items, shared read-only with searches.
#[derive(Debug, Clone, Default)]
pub struct SearchIndex {
    segments: Vec<Arc<Segment>>,
    seen: usize,
}

impl SearchIndex {
    pub fn new() -> SearchIndex {
        SearchIndex::default()
    }

    pub fn build(g: &TenantGraph) -> SearchIndex {
        let mut s = SearchIndex::new();
        s.update(g);
        s
    }

    pub fn len(&self) -> usize {
        self.segments.iter().map(|s| s.items.len()).sum()
    }

    pub fn is_empty(&self) -> bool {
        self.len() == 0
    }

    /// Indexes the entities that arrived since the last call, as a new segment.
    pub fn update(&mut self, g: &TenantGraph) {
        let n = g.entity_count();
        if n <= self.seen {
            return;
        }
        let mut seg = Segment::default();
        for i in self.seen..n {
            let id = i as EntityId;
            let e = g.entity(id);
            let name = if e.display_name.is_empty() {
                e.key.to_string()
            } else {
                e.display_name.to_string()
            };
            let name_len = name.chars().count() as u32;
            let extra = searchable_extra(g, id);
            let hay = if extra.is_empty() {
                name
            } else {
                format!("{name}  {extra}")
            };
            let wide = !hay.is_ascii();
            let (off, len) = if wide {
                let off = seg.wide.len();
                seg.wide.extend(hay.chars());
                (off, seg.wide.len() - off)
            } else {
                let off = seg.ascii.len();
                seg.ascii.extend_from_slice(hay.as_bytes());
                (off, hay.len())
            };
            let tie = {
                use std::hash::{Hash, Hasher};
                let mut h = rustc_hash::FxHasher::default();
                e.key.hash(&mut h);
                h.finish()
            };
            seg.items.push(Item {
                id,
                kind: e.kind,
                name_len,
                off: off as u32,
                len: len as u32,
                wide,
                tie,
            });
        }
        seg.items.shrink_to_fit();
        seg.ascii.shrink_to_fit();
        seg.wide.shrink_to_fit();
        self.seen = n;
        self.segments.push(Arc::new(seg));
    }

    /// Bytes the index holds on the heap (for the benchmark's per-entity figure).
    pub fn heap_bytes(&self) -> usize {
        self.segments
            .iter()
            .map(|s| {
                s.items.capacity() * std::mem::size_of::<Item>()
                    + s.ascii.capacity()
                    + s.wide.capacity() * 4
            })
            .sum()
    }

    fn at(&self, at: (u32, u32)) -> (&Segment, &Item) {
        let seg = &self.segments[at.0 as usize];
        (seg, &seg.items[at.1 as usize])
    }
}

/// A parsed query: an optional kind filter and the text.
#[derive(Debug, Clone, PartialEq, Eq, Default)]
pub struct Query {
    pub kind: Option<String>,
    pub text: String,
}

impl Query {
    /// `user:ava` filters by kind; a filter chosen by Tab applies when the
    /// text names none.
    pub fn parse(raw: &str, chosen: Option<&str>) -> Query {
        let raw = raw.trim_start();
        if let Some((prefix, rest)) = raw.split_once(':') {
            let p = prefix.trim().to_ascii_lowercase();
            if KIND_FILTERS.iter().any(|(k, _)| *k == p) {
                return Query {
                    kind: Some(p),
                    text: rest.trim().to_string(),
                };
            }
        }
        Query {
            kind: chosen.map(String::from),
            text: raw.trim().to_string(),
        }
    }
}

#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Hit {
    pub id: EntityId,
    pub score: u32,
    /// Matched character positions within the name.
    pub name_indices: Vec<u32>,
}

#[derive(Debug, Clone, Default)]
pub struct Results {
    pub query: Query,
    /// How many entities match.
    pub total: usize,
    /// The best matches, best first.
    pub hits: Vec<Hit>,
    /// Every match, for narrowing when the pattern grows.
    matched: Arc<Vec<(u32, u32)>>,
}

/// A match: its score and where the item is (segment, position).
type Scored = (u32, (u32, u32));

fn pattern(text: &str) -> Pattern {
    Pattern::new(
        text,
        CaseMatching::Smart,
        Normalization::Smart,
        AtomKind::Fuzzy,
    )
}

fn config() -> Config {
    let mut c = Config::DEFAULT;
    c.prefer_prefix = true;
    c
}

/// Searches the index. With `previous` results of a query that this one
/// extends (same kind, longer text), only their matches are searched.
/// Returns None when `cancel` moved past `generation` (a newer keystroke).
pub fn search(
    index: &SearchIndex,
    q: &Query,
    limit: usize,
    previous: Option<&Results>,
    cancel: &AtomicU64,
    generation: u64,
) -> Option<Results> {
    let mut chars = q.text.chars();
    if let (Some(c), None) = (chars.next(), chars.next()) {
        return one_char(index, q, c, limit, cancel, generation);
    }
    let pat = pattern(&q.text);
    let narrowing = previous.filter(|p| {
        p.query.kind == q.kind && !p.query.text.is_empty() && q.text.starts_with(&p.query.text)
    });
    let candidates: Vec<(u32, u32)> = match narrowing {
        Some(p) => p.matched.to_vec(),
        None => index
            .segments
            .iter()
            .enumerate()
            .flat_map(|(s, seg)| (0..seg.items.len() as u32).map(move |i| (s as u32, i)))
            .collect(),
    };
    let threads = std::thread::available_parallelism()
        .map(|n| n.get())
        .unwrap_or(1)
        .clamp(1, 8);
    let per = candidates.len().div_ceil(threads).max(1);
    let filter = q.kind.as_deref();
    let parts: Vec<Option<Vec<Scored>>> = std::thread::scope(|sc| {
        let handles: Vec<_> = candidates
            .chunks(per)
            .map(|chunk| {
                let pat = &pat;
                sc.spawn(move || {
                    let mut m = Matcher::new(config());
                    let mut out = Vec::new();
                    for (n, &at) in chunk.iter().enumerate() {
                        if n % 16_384 == 0 && cancel.load(Ordering::Relaxed) != generation {
                            return None;
                        }
                        let (seg, item) = index.at(at);
                        if filter.is_some_and(|f| !kind_matches(f, item.kind)) {
                            continue;
                        }
                        if let Some(score) = pat.score(seg.hay(item), &mut m) {
                            out.push((score, at));
                        }
                    }
                    Some(out)
                })
            })
            .collect();
        handles
            .into_iter()
            .map(|h| h.join().ok().flatten())
            .collect()
    });
    let mut all: Vec<Scored> = Vec::new();
    for p in parts {
        all.extend(p?);
    }
    if cancel.load(Ordering::Relaxed) != generation {
        return None;
    }
    let total = all.len();
    let matched: Vec<(u32, u32)> = all.iter().map(|(_, at)| *at).collect();
    // Best first; ties go to the shorter name, then a stable order by key.
    let key = |&(score, at): &Scored| {
        let it = index.at(at).1;
        (std::cmp::Reverse(score), it.name_len, it.tie)
    };
    let take = limit.min(all.len());
    if take > 0 && take < all.len() {
        all.select_nth_unstable_by_key(take - 1, key);
        all.truncate(take);
    }
    all.sort_by_key(key);
    let mut m = Matcher::new(config());
    let mut idx = Vec::new();
    let hits = all
        .into_iter()
        .map(|(score, at)| {
            let (seg, it) = index.at(at);
            idx.clear();
            pat.indices(seg.hay(it), &mut m, &mut idx);
            idx.sort_unstable();
            idx.dedup();
            Hit {
                id: it.id,
                score,
                name_indices: idx.iter().copied().filter(|&i| i < it.name_len).collect(),
            }
        })
        .collect();
    Some(Results {
        query: q.clone(),
        total,
        hits,
        matched: Arc::new(matched),
    })
}

/// A one-letter query matches nearly everything, and fuzzy scores between
/// such matches say little: count the haystacks holding the letter and rank
/// names that start with it first, shorter names first.
fn one_char(
    index: &SearchIndex,
    q: &Query,
    c: char,
    limit: usize,
    cancel: &AtomicU64,
    generation: u64,
) -> Option<Results> {
    // Smart case: an upper-case letter must match exactly.
    let exact = c.is_uppercase() || !c.is_ascii();
    let (a, b) = if exact {
        (c, c)
    } else {
        (c.to_ascii_lowercase(), c.to_ascii_uppercase())
    };
    let (ab, bb) = (a as u32 as u8, b as u32 as u8);
    let mut matched = Vec::new();
    let mut ranked: Vec<(u8, u32, u64, (u32, u32))> = Vec::new();
    for (si, seg) in index.segments.iter().enumerate() {
        if cancel.load(Ordering::Relaxed) != generation {
            return None;
        }
        for (i, it) in seg.items.iter().enumerate() {
            if q.kind.as_deref().is_some_and(|f| !kind_matches(f, it.kind)) {
                continue;
            }
            let (o, l) = (it.off as usize, it.len as usize);
            let (first, any) = if it.wide {
                let h = &seg.wide[o..o + l];
                (
                    h.first().is_some_and(|&x| x == a || x == b),
                    h.iter().any(|&x| x == a || x == b),
                )
            } else if !a.is_ascii() {
                (false, false)
            } else {
                let h = &seg.ascii[o..o + l];
                (
                    h.first().is_some_and(|&x| x == ab || x == bb),
                    h.iter().any(|&x| x == ab || x == bb),
                )
            };
            if any {
                let at = (si as u32, i as u32);
                matched.push(at);
                ranked.push((u8::from(!first), it.name_len, it.tie, at));
            }
        }
    }
    let total = matched.len();
    let take = limit.min(ranked.len());
    if take > 0 && take < ranked.len() {
        ranked.select_nth_unstable(take - 1);
        ranked.truncate(take);
    }
    ranked.sort_unstable();
    let hits = ranked
        .into_iter()
        .map(|(not_first, _, _, at)| {
            let (seg, it) = index.at(at);
            let pos = seg.hay(it).chars().position(|x| x == a || x == b);
            let name_indices = pos
                .filter(|&p| (p as u32) < it.name_len)
                .map(|p| vec![p as u32])
                .unwrap_or_default();
            Hit {
                id: it.id,
                score: if not_first == 0 { 2 } else { 1 },
                name_indices,
            }
        })
        .collect();
    Some(Results {
        query: q.clone(),
        total,
        hits,
        matched: Arc::new(matched),
    })
}

/// A one-off search (CLI, tests): no cancellation.
pub fn search_once(index: &SearchIndex, q: &Query, limit: usize) -> Results {
    let c = AtomicU64::new(0);
    search(index, q, limit, None, &c, 0).unwrap_or_default()
}

/// Characters of a name for display with the matched ones marked.
pub fn split_highlight(name: &str, indices: &[u32]) -> Vec<(String, bool)> {
    let mut out: Vec<(String, bool)> = Vec::new();
    for (i, c) in name.chars().enumerate() {
        let hit = indices.binary_search(&(i as u32)).is_ok();
        match out.last_mut() {
            Some((s, h)) if *h == hit => s.push(c),
            _ => out.push((c.to_string(), hit)),
        }
    }
    out
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::model::Entity;
    use serde_json::json;

    fn graph(names: &[(&str, EntityKind, serde_json::Value)]) -> TenantGraph {
        let mut g = TenantGraph::new();
        for (i, (name, kind, props)) in names.iter().enumerate() {
            let p = props.as_object().cloned().unwrap_or_default();
            g.upsert(Entity::new(
                format!("k{i}"),
                *kind,
                format!("k{i}"),
                *name,
                &p,
            ));
        }
        g
    }

    fn names(g: &TenantGraph, r: &Results) -> Vec<String> {
        r.hits
            .iter()
            .map(|h| g.entity(h.id).display_name.to_string())
            .collect()
    }

    #[test]
    fn exact_prefix_ranks_above_a_scattered_match() {
        let g = graph(&[
            ("Maria Valdes", EntityKind::AzureUser, json!({})),
            ("Mark Anderson", EntityKind::AzureUser, json!({})),
            ("Marcus", EntityKind::AzureUser, json!({})),
        ]);
        let idx = SearchIndex::build(&g);
        let r = search_once(&idx, &Query::parse("mar", None), 10);
        assert_eq!(r.total, 3);
        let r = search_once(&idx, &Query::parse("mark", None), 10);
        assert_eq!(names(&g, &r)[0], "Mark Anderson");
        let r = search_once(&idx, &Query::parse("marcus", None), 10);
        assert_eq!(names(&g, &r), ["Marcus"]);
    }

    #[test]
    fn kinds_filter_by_prefix_and_smart_case_and_unicode_work() {
        let g = graph(&[
            (
                "Åsa Lindqvist",
                EntityKind::AzureUser,
                json!({"userPrincipalName": "asa.lindqvist@contoso.com"}),
            ),
            (
                "李小龙",
                EntityKind::AzureUser,
                json!({"userPrincipalName": "li.xiaolong@contoso.com"}),
            ),
            (
                "ASA-LAPTOP",
                EntityKind::Laptop,
                json!({"serialNumber": "SN123"}),
            ),
            (
                "CVE-2024-3094",
                EntityKind::Cve,
                json!({"severity": "Critical"}),
            ),
        ]);
        let idx = SearchIndex::build(&g);
        assert_eq!(search_once(&idx, &Query::parse("asa", None), 10).total, 2);
        assert_eq!(
            names(&g, &search_once(&idx, &Query::parse("user:asa", None), 10)),
            ["Åsa Lindqvist"]
        );
        assert_eq!(
            names(&g, &search_once(&idx, &Query::parse("dev:asa", None), 10)),
            ["ASA-LAPTOP"]
        );
        assert_eq!(
            names(
                &g,
                &search_once(&idx, &Query::parse("asa", Some("dev")), 10)
            ),
            ["ASA-LAPTOP"]
        );
        // Smart case: an upper-case letter makes the query case-sensitive.
        assert_eq!(
            names(&g, &search_once(&idx, &Query::parse("ASA", None), 10)),
            ["ASA-LAPTOP"]
        );
        // Non-ASCII in the query matches exactly; ASCII finds the accented name too.
        assert_eq!(
            names(&g, &search_once(&idx, &Query::parse("Åsa", None), 10)),
            ["Åsa Lindqvist"]
        );
        assert_eq!(
            names(&g, &search_once(&idx, &Query::parse("小龙", None), 10)),
            ["李小龙"]
        );
        // Identifiers people type: UPNs, serials, CVE ids.
        assert_eq!(
            names(&g, &search_once(&idx, &Query::parse("li.xiao", None), 10)),
            ["李小龙"]
        );
        assert_eq!(
            names(&g, &search_once(&idx, &Query::parse("sn123", None), 10)),
            ["ASA-LAPTOP"]
        );
        assert_eq!(
            names(&g, &search_once(&idx, &Query::parse("cve:3094", None), 10)),
            ["CVE-2024-3094"]
        );
        // The highlight covers the matched characters of the name.
        let r = search_once(&idx, &Query::parse("user:lind", None), 10);
        assert_eq!(r.hits[0].name_indices, vec![4, 5, 6, 7]);
        assert_eq!(
            split_highlight("Åsa Lindqvist", &r.hits[0].name_indices)[1],
            ("Lind".to_string(), true)
        );
    }

    #[test]
    fn a_growing_pattern_searches_only_previous_matches_and_stale_searches_stop() {
        let g = graph(&[
            ("alpha", EntityKind::AzureUser, json!({})),
            ("alps", EntityKind::AzureUser, json!({})),
            ("beta", EntityKind::AzureUser, json!({})),
        ]);
        let idx = SearchIndex::build(&g);
        let c = AtomicU64::new(1);
        let first = search(&idx, &Query::parse("al", None), 10, None, &c, 1).expect("results");
        assert_eq!(first.total, 2);
        let second =
            search(&idx, &Query::parse("alp", None), 10, Some(&first), &c, 1).expect("results");
        assert_eq!(second.total, 2);
        let third =
            search(&idx, &Query::parse("alph", None), 10, Some(&second), &c, 1).expect("results");
        assert_eq!(names(&g, &third), ["alpha"]);
        c.store(2, Ordering::Relaxed);
        assert!(
            search(&idx, &Query::parse("a", None), 10, None, &c, 1).is_none(),
            "a stale search is dropped"
        );
    }

    #[test]
    fn the_index_grows_with_the_graph() {
        let mut g = graph(&[("alpha", EntityKind::AzureUser, json!({}))]);
        let mut idx = SearchIndex::build(&g);
        g.upsert(Entity::new(
            "k9",
            EntityKind::AzureUserGroup,
            "k9",
            "alpha team",
            &serde_json::Map::new(),
        ));
        idx.update(&g);
        assert_eq!(search_once(&idx, &Query::parse("alpha", None), 10).total, 2);
        assert_eq!(
            Query::parse("nope:x", None),
            Query {
                kind: None,
                text: "nope:x".into()
            }
        );
    }
}
