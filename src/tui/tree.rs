//! The explorer's tree: categories built incrementally as entities arrive,
//! entity nodes that open into their relationships grouped by verb and
//! type, and big lists cut into chunks so no node ever holds more than
//! `CHUNK` children (tui-tree-widget flattens every opened node each frame).
//!
//! Size: long because the tree's categories, chunking and relationship
//! groups share one index of node ids; split, each would reach into the
//! others.

use std::collections::HashMap;

use ratatui::text::{Line, Span};
use tui_tree_widget::TreeItem;

use crate::model::{EntityId, EntityKind, TenantGraph, Verb};

use super::theme;

/// The most children a node shows; longer lists open into chunks.
pub const CHUNK: usize = 500;

pub type ListId = u32;

/// A node's identity in the tree: small and `Copy`, so flattening stays cheap.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash, PartialOrd, Ord)]
pub enum Node {
    Root,
    List(ListId),
    /// Members `start..start + CHUNK` of a list.
    Chunk(ListId, u32),
    Entity(EntityId),
    /// One relationship group of an entity (index into `rel_groups`).
    Rel(EntityId, u16),
    RelChunk(EntityId, u16, u32),
    /// Stands in for the children of a closed node, so it shows an arrow.
    Placeholder,
}

/// What groups entities in a list.
#[derive(Debug, Clone, PartialEq, Eq, Hash)]
pub enum ListKey {
    Category(Category),
    Platform(String),
    Compliance(String),
    FindingsOf(String),
    Severity(String),
    Kind(EntityKind),
}

#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash, PartialOrd, Ord)]
pub enum Category {
    Users,
    Groups,
    ServicePrincipals,
    Devices,
    DevicesByPlatform,
    DevicesByCompliance,
    Findings,
    Policies,
    Configurations,
    Applications,
    Machines,
    Vulnerabilities,
    Azure,
    Other,
}

impl Category {
    /// The source whose records fill this category; none for `Other`,
    /// which holds several.
    pub fn source(self) -> Option<crate::fetch::Source> {
        use crate::fetch::Source;
        match self {
            Category::Users | Category::Groups | Category::ServicePrincipals => {
                Some(Source::Directory)
            }
            Category::Devices
            | Category::DevicesByPlatform
            | Category::DevicesByCompliance
            | Category::Findings
            | Category::Policies
            | Category::Configurations
            | Category::Applications => Some(Source::Intune),
            Category::Machines | Category::Vulnerabilities => Some(Source::Defender),
            Category::Azure => Some(Source::Arm),
            Category::Other => None,
        }
    }

    fn label(self) -> &'static str {
        match self {
            Category::Users => "Users",
            Category::Groups => "Groups",
            Category::ServicePrincipals => "Service principals",
            Category::Devices => "Devices",
            Category::DevicesByPlatform => "By platform",
            Category::DevicesByCompliance => "By compliance state",
            Category::Findings => "Noncompliance findings",
            Category::Policies => "Compliance policies",
            Category::Configurations => "Configurations",
            Category::Applications => "Applications",
            Category::Machines => "Defender machines",
            Category::Vulnerabilities => "Vulnerabilities",
            Category::Azure => "Azure subscriptions",
            Category::Other => "Other",
        }
    }
}

#[derive(Debug, Clone)]
pub struct List {
    pub key: ListKey,
    pub parent: Option<ListId>,
    pub children: Vec<ListId>,
    pub members: Vec<EntityId>,
    /// Entities counted in this list and every list below it.
    pub total: usize,
    sorted: bool,
}

/// Lists of entities by category, kept up to date as the graph grows.
#[derive(Debug, Clone, Default)]
pub struct TreeIndex {
    pub lists: Vec<List>,
    by_key: HashMap<ListKey, ListId>,
    /// Top-level lists in display order.
    pub top: Vec<ListId>,
    seen: usize,
    /// Where each entity lives (its canonical list).
    home: HashMap<EntityId, ListId>,
}

const TOP: [Category; 12] = [
    Category::Users,
    Category::Groups,
    Category::ServicePrincipals,
    Category::Devices,
    Category::Findings,
    Category::Policies,
    Category::Configurations,
    Category::Applications,
    Category::Machines,
    Category::Vulnerabilities,
    Category::Azure,
    Category::Other,
];

impl TreeIndex {
    pub fn new() -> TreeIndex {
        let mut t = TreeIndex::default();
        for c in TOP {
            let id = t.list(ListKey::Category(c), None);
            t.top.push(id);
        }
        let devices = t.by_key[&ListKey::Category(Category::Devices)];
        t.list(
            ListKey::Category(Category::DevicesByPlatform),
            Some(devices),
        );
        t.list(
            ListKey::Category(Category::DevicesByCompliance),
            Some(devices),
        );
        t
    }

    fn list(&mut self, key: ListKey, parent: Option<ListId>) -> ListId {
        if let Some(&id) = self.by_key.get(&key) {
            return id;
        }
        let id = self.lists.len() as ListId;
        self.lists.push(List {
            key: key.clone(),
            parent,
            children: vec![],
            members: vec![],
            total: 0,
            sorted: true,
        });
        self.by_key.insert(key, id);
        if let Some(p) = parent {
            self.lists[p as usize].children.push(id);
        }
        id
    }

    fn add(&mut self, list: ListId, e: EntityId, home: bool) {
        let l = &mut self.lists[list as usize];
        l.members.push(e);
        l.sorted = false;
        let mut cur = Some(list);
        while let Some(c) = cur {
            self.lists[c as usize].total += 1;
            cur = self.lists[c as usize].parent;
        }
        if home {
            self.home.insert(e, list);
        }
    }

    fn cat(&self, c: Category) -> ListId {
        self.by_key[&ListKey::Category(c)]
    }

    /// Files the entities that arrived since the last call.
    pub fn update(&mut self, g: &TenantGraph) {
        let n = g.entity_count();
        for id in self.seen..n {
            self.file(g, id as EntityId);
        }
        self.seen = n;
    }

    fn file(&mut self, g: &TenantGraph, id: EntityId) {
        use EntityKind as K;
        let e = g.entity(id);
        let top = match e.kind {
            K::AzureAccount => return,
            K::AzureUser => Category::Users,
            K::AzureUserGroup => Category::Groups,
            K::AzureServicePrincipal => Category::ServicePrincipals,
            k if k.is_device() => {
                let p = e.properties();
                let os = p
                    .get("operatingSystem")
                    .and_then(|v| v.as_str())
                    .filter(|s| !s.is_empty())
                    .unwrap_or("Unknown")
                    .to_string();
                let state = p
                    .get("complianceState")
                    .and_then(|v| v.as_str())
                    .filter(|s| !s.is_empty())
                    .unwrap_or("unknown")
                    .to_string();
                let by_platform = self.cat(Category::DevicesByPlatform);
                let by_state = self.cat(Category::DevicesByCompliance);
                let pl = self.list(ListKey::Platform(os), Some(by_platform));
                let st = self.list(ListKey::Compliance(state), Some(by_state));
                self.add(pl, id, true);
                // Counted once in "Devices", under the platform; the
                // compliance lists repeat members, so their total stops at
                // "By compliance state".
                self.lists[st as usize].members.push(id);
                self.lists[st as usize].sorted = false;
                self.lists[st as usize].total += 1;
                self.lists[by_state as usize].total += 1;
                return;
            }
            K::IntuneNoncomplianceFinding => {
                let policy = e
                    .prop("policyId")
                    .and_then(|v| v.as_str().map(String::from))
                    .unwrap_or_default();
                let parent = self.cat(Category::Findings);
                let l = self.list(ListKey::FindingsOf(policy), Some(parent));
                self.add(l, id, true);
                return;
            }
            K::IntuneCompliancePolicy => Category::Policies,
            K::IntuneDeviceConfiguration => Category::Configurations,
            K::IntuneDetectedApplication | K::IntuneManagedApplication => {
                let parent = self.cat(Category::Applications);
                let l = self.list(ListKey::Kind(e.kind), Some(parent));
                self.add(l, id, true);
                return;
            }
            K::DefenderMachine => Category::Machines,
            K::Cve => {
                let sev = e
                    .prop("severity")
                    .and_then(|v| v.as_str().map(String::from))
                    .unwrap_or_else(|| "Unknown".into());
                let parent = self.cat(Category::Vulnerabilities);
                let l = self.list(ListKey::Severity(sev), Some(parent));
                self.add(l, id, true);
                return;
            }
            K::AzureSubscription => Category::Azure,
            _ => {
                let parent = self.cat(Category::Other);
                let l = self.list(ListKey::Kind(e.kind), Some(parent));
                self.add(l, id, true);
                return;
            }
        };
        let l = self.cat(top);
        self.add(l, id, true);
    }

    /// Sorts a list's members by name (when it changed since the last sort).
    pub fn sort(&mut self, g: &TenantGraph, list: ListId) {
        let l = &mut self.lists[list as usize];
        if !l.sorted {
            l.members.sort_by(|a, b| {
                let (ea, eb) = (g.entity(*a), g.entity(*b));
                ea.display_name
                    .to_lowercase()
                    .cmp(&eb.display_name.to_lowercase())
                    .then(a.cmp(b))
            });
            l.sorted = true;
        }
    }

    pub fn sort_all(&mut self, g: &TenantGraph) {
        for i in 0..self.lists.len() {
            self.sort(g, i as ListId);
        }
        // Sub-lists by label, with severities in their natural order.
        for i in 0..self.lists.len() {
            let mut ch = std::mem::take(&mut self.lists[i].children);
            ch.sort_by_key(|c| sort_key(g, &self.lists[*c as usize].key));
            self.lists[i].children = ch;
        }
    }

    /// The path to an entity in the tree: its canonical list, then the chunk
    /// holding it. Sorts that list first so the position is stable.
    pub fn path_to(&mut self, g: &TenantGraph, id: EntityId) -> Option<Vec<Node>> {
        // The tenant is the root.
        if g.get(id)
            .is_some_and(|e| e.kind == EntityKind::AzureAccount)
        {
            return Some(vec![Node::Root]);
        }
        let list = *self.home.get(&id)?;
        self.sort(g, list);
        let pos = self.lists[list as usize]
            .members
            .iter()
            .position(|&m| m == id)?;
        let mut path = vec![Node::Entity(id)];
        if self.lists[list as usize].members.len() > CHUNK {
            path.push(Node::Chunk(list, (pos / CHUNK * CHUNK) as u32));
        }
        let mut cur = Some(list);
        while let Some(c) = cur {
            path.push(Node::List(c));
            cur = self.lists[c as usize].parent;
        }
        path.push(Node::Root);
        path.reverse();
        Some(path)
    }

    pub fn label(&self, g: &TenantGraph, list: ListId) -> String {
        let l = &self.lists[list as usize];
        match &l.key {
            ListKey::Category(c) => c.label().to_string(),
            ListKey::Platform(p) => p.clone(),
            ListKey::Compliance(s) => compliance_label(s),
            ListKey::FindingsOf(policy) => match g.by_key(policy) {
                Some(p) => p.display_name.to_string(),
                None if policy.is_empty() => "Unknown policy".into(),
                None => format!("Policy {policy}"),
            },
            ListKey::Severity(s) => s.clone(),
            ListKey::Kind(k) => k.plural().to_string(),
        }
    }
}

fn sort_key(g: &TenantGraph, key: &ListKey) -> (u8, String) {
    match key {
        ListKey::Severity(s) => (
            match s.to_ascii_lowercase().as_str() {
                "critical" => 0,
                "high" => 1,
                "medium" => 2,
                "low" => 3,
                _ => 4,
            },
            s.clone(),
        ),
        ListKey::Compliance(s) => (
            if s.eq_ignore_ascii_case("compliant") {
                1
            } else {
                0
            },
            s.to_lowercase(),
        ),
        ListKey::FindingsOf(p) => (
            0,
            g.by_key(p)
                .map(|e| e.display_name.to_lowercase())
                .unwrap_or_default(),
        ),
        ListKey::Platform(p) => (0, p.to_lowercase()),
        ListKey::Kind(k) => (0, k.plural().to_string()),
        ListKey::Category(c) => (*c as u8, String::new()),
    }
}

pub fn compliance_label(s: &str) -> String {
    match s.to_ascii_lowercase().as_str() {
        "compliant" => "Compliant".into(),
        "noncompliant" => "Noncompliant".into(),
        "ingraceperiod" => "In grace period".into(),
        "error" => "Error".into(),
        "conflict" => "Conflict".into(),
        "configmanager" => "Managed by Configuration Manager".into(),
        _ => "Unknown".into(),
    }
}

/// One group of an entity's relationships: same direction, verb and kind.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct RelGroup {
    pub outgoing: bool,
    pub verb: Verb,
    pub kind: EntityKind,
    pub members: Vec<EntityId>,
}

impl RelGroup {
    /// "OWNS → 2 laptops" or "← HAS from 3 groups".
    pub fn label(&self) -> String {
        let n = self.members.len();
        let what = if n == 1 {
            self.kind.label().to_lowercase()
        } else {
            self.kind.plural().to_lowercase()
        };
        if self.outgoing {
            format!("{} → {n} {what}", self.verb)
        } else {
            format!("← {} from {n} {what}", self.verb)
        }
    }
}

/// An entity's relationships grouped by direction, verb and kind: outgoing
/// first, then incoming; members sorted by name.
pub fn rel_groups(g: &TenantGraph, id: EntityId) -> Vec<RelGroup> {
    let mut map: HashMap<(bool, Verb, EntityKind), Vec<EntityId>> = HashMap::new();
    for e in g.outgoing(id) {
        map.entry((true, e.verb, g.entity(e.other).kind))
            .or_default()
            .push(e.other);
    }
    for e in g.incoming(id) {
        map.entry((false, e.verb, g.entity(e.other).kind))
            .or_default()
            .push(e.other);
    }
    let mut groups: Vec<RelGroup> = map
        .into_iter()
        .map(|((outgoing, verb, kind), mut members)| {
            members.sort_by_cached_key(|m| {
                let e = g.entity(*m);
                (e.display_name.to_lowercase(), e.key.clone())
            });
            RelGroup {
                outgoing,
                verb,
                kind,
                members,
            }
        })
        .collect();
    groups.sort_by_key(|r| (!r.outgoing, r.verb, r.kind));
    groups
}

/// Relationship groups per entity, computed once per graph generation: the
/// tree and the relations pane both ask every frame.
#[derive(Debug, Default)]
pub struct RelCache {
    generation: std::cell::Cell<u64>,
    map: std::cell::RefCell<HashMap<EntityId, std::rc::Rc<Vec<RelGroup>>>>,
}

impl RelCache {
    pub fn get(&self, g: &TenantGraph, id: EntityId) -> std::rc::Rc<Vec<RelGroup>> {
        if self.generation.get() != g.generation() {
            self.map.borrow_mut().clear();
            self.generation.set(g.generation());
        }
        if let Some(r) = self.map.borrow().get(&id) {
            return r.clone();
        }
        let r = std::rc::Rc::new(rel_groups(g, id));
        self.map.borrow_mut().insert(id, r.clone());
        r
    }
}

/// How an entity appears as a row: kind, name.
pub fn entity_line(g: &TenantGraph, id: EntityId) -> Line<'static> {
    let e = g.entity(id);
    let name = if e.display_name.is_empty() {
        e.key.to_string()
    } else {
        e.display_name.to_string()
    };
    Line::from(vec![
        Span::styled(
            format!("{} ", theme::kind_icon(e.kind)),
            theme::kind_style(e.kind),
        ),
        Span::raw(name),
    ])
}

fn chunk_label(start: usize, len: usize) -> String {
    let end = (start + CHUNK).min(len);
    format!("{}–{} of {len}", start + 1, end)
}

/// Builds the items tui-tree-widget renders: only opened nodes get their
/// children; closed nodes with children get one placeholder so they show an
/// arrow.
pub struct Builder<'a> {
    pub g: &'a TenantGraph,
    pub index: &'a TreeIndex,
    pub opened: &'a std::collections::HashSet<Vec<Node>>,
    pub root_label: String,
    pub rels: &'a RelCache,
    pub marked: &'a std::collections::HashSet<EntityId>,
    /// Per source whose data is not a complete read of this fetch: a few
    /// words shown after its categories' counts ("carried over, 3 h old").
    pub gaps: &'a std::collections::BTreeMap<crate::fetch::Source, String>,
}

impl Builder<'_> {
    pub fn build(&self) -> Vec<TreeItem<'static, Node>> {
        let path = vec![Node::Root];
        let children = if self.opened.contains(&path) {
            self.index
                .top
                .iter()
                .map(|&l| self.list_item(&path, l))
                .collect()
        } else {
            vec![placeholder()]
        };
        let root = TreeItem::new(
            Node::Root,
            Line::from(Span::styled(self.root_label.clone(), theme::title())),
            children,
        );
        root.map(|r| vec![r]).unwrap_or_default()
    }

    fn with(&self, path: &[Node], n: Node) -> Vec<Node> {
        let mut p = path.to_vec();
        p.push(n);
        p
    }

    fn list_item(&self, parent: &[Node], list: ListId) -> TreeItem<'static, Node> {
        let path = self.with(parent, Node::List(list));
        let l = &self.index.lists[list as usize];
        let count = if l.children.is_empty() {
            l.members.len()
        } else {
            l.total
        };
        let mut label = Line::from(vec![
            Span::styled(self.index.label(self.g, list), theme::category()),
            Span::styled(format!("  {count}"), theme::count()),
        ]);
        // A count from data not read by this fetch says so.
        if let ListKey::Category(c) = &l.key {
            if let Some(gap) = c.source().and_then(|s| self.gaps.get(&s)) {
                label
                    .spans
                    .push(Span::styled(format!("  {gap}"), theme::error()));
            }
        }
        let has_children = !l.children.is_empty() || !l.members.is_empty();
        let children = if !has_children {
            vec![]
        } else if !self.opened.contains(&path) {
            vec![placeholder()]
        } else {
            let mut c: Vec<TreeItem<'static, Node>> = l
                .children
                .iter()
                .map(|&ch| self.list_item(&path, ch))
                .collect();
            if l.members.len() > CHUNK {
                for start in (0..l.members.len()).step_by(CHUNK) {
                    c.push(self.chunk_item(&path, list, start));
                }
            } else {
                c.extend(l.members.iter().map(|&m| self.entity_item(&path, m)));
            }
            c
        };
        item(Node::List(list), label, children)
    }

    fn chunk_item(&self, parent: &[Node], list: ListId, start: usize) -> TreeItem<'static, Node> {
        let node = Node::Chunk(list, start as u32);
        let path = self.with(parent, node);
        let members = &self.index.lists[list as usize].members;
        let label = Line::from(Span::styled(
            chunk_label(start, members.len()),
            theme::count(),
        ));
        let children = if self.opened.contains(&path) {
            members[start..(start + CHUNK).min(members.len())]
                .iter()
                .map(|&m| self.entity_item(&path, m))
                .collect()
        } else {
            vec![placeholder()]
        };
        item(node, label, children)
    }

    fn entity_item(&self, parent: &[Node], id: EntityId) -> TreeItem<'static, Node> {
        let path = self.with(parent, Node::Entity(id));
        let has_rels = !self.g.outgoing(id).is_empty() || !self.g.incoming(id).is_empty();
        let children = if !has_rels {
            vec![]
        } else if self.opened.contains(&path) {
            self.rels
                .get(self.g, id)
                .iter()
                .enumerate()
                .map(|(i, grp)| self.rel_item(&path, id, i as u16, grp))
                .collect()
        } else {
            vec![placeholder()]
        };
        let mut line = entity_line(self.g, id);
        if self.marked.contains(&id) {
            line.spans.insert(0, Span::styled("● ", theme::marked()));
        }
        item(Node::Entity(id), line, children)
    }

    fn rel_item(
        &self,
        parent: &[Node],
        id: EntityId,
        gi: u16,
        grp: &RelGroup,
    ) -> TreeItem<'static, Node> {
        let node = Node::Rel(id, gi);
        let path = self.with(parent, node);
        let label = Line::from(Span::styled(grp.label(), theme::relation()));
        let children = if !self.opened.contains(&path) {
            vec![placeholder()]
        } else if grp.members.len() > CHUNK {
            (0..grp.members.len())
                .step_by(CHUNK)
                .map(|start| {
                    let cn = Node::RelChunk(id, gi, start as u32);
                    let cpath = self.with(&path, cn);
                    let ch = if self.opened.contains(&cpath) {
                        grp.members[start..(start + CHUNK).min(grp.members.len())]
                            .iter()
                            .map(|&m| self.entity_item(&cpath, m))
                            .collect()
                    } else {
                        vec![placeholder()]
                    };
                    item(
                        cn,
                        Line::from(Span::styled(
                            chunk_label(start, grp.members.len()),
                            theme::count(),
                        )),
                        ch,
                    )
                })
                .collect()
        } else {
            grp.members
                .iter()
                .map(|&m| self.entity_item(&path, m))
                .collect()
        };
        item(node, label, children)
    }
}

fn placeholder() -> TreeItem<'static, Node> {
    TreeItem::new_leaf(
        Node::Placeholder,
        Line::from(Span::styled("…", theme::dim())),
    )
}

fn item(
    node: Node,
    label: Line<'static>,
    children: Vec<TreeItem<'static, Node>>,
) -> TreeItem<'static, Node> {
    // Identifiers are unique among siblings by construction (lists, chunks
    // and entities each appear once under a parent); fall back to a leaf.
    match TreeItem::new(node, label.clone(), children) {
        Ok(i) => i,
        Err(_) => TreeItem::new_leaf(node, label),
    }
}
