//! What the explorer shows and where it came from: a fetch's events
//! applied as they arrive, the carry-over that completes it, a refresh
//! swapped in whole, a snapshot loaded.

use std::collections::BTreeMap;

use chrono::{DateTime, Utc};
use tui_tree_widget::TreeState;

use crate::fetch::{FetchEvent, GraphBuilder, Source};
use crate::model::TenantGraph;
use crate::tui::app::{App, SourceProgress};
use crate::tui::tree::{Node, RelCache, TreeIndex};

impl App {
    /// A fetch is starting. With data on screen it fills a second graph that
    /// replaces the first when complete; without, the tree fills live.
    pub fn start_fetch(&mut self, sources: &[Source]) {
        self.fetching = true;
        self.progress = sources
            .iter()
            .map(|s| (*s, SourceProgress::default()))
            .collect();
        if self.graph().entity_count() > 0 {
            self.incoming = Some(GraphBuilder::new());
            self.set_message("refreshing from the tenant…", false);
        }
    }

    /// Applies one fetch event; returns true when the fetch is done.
    pub fn on_fetch(&mut self, ev: FetchEvent) -> bool {
        match &ev {
            FetchEvent::Progress {
                source,
                collection,
                count,
                done,
            } => {
                let p = self.progress.entry(*source).or_default();
                p.collection = collection.to_string();
                p.count = p.count.max(*count);
                if *done {
                    p.collection.clear();
                }
                return false;
            }
            FetchEvent::SourceDone { source, status } => {
                let p = self.progress.entry(*source).or_default();
                p.done = true;
                p.outcome = Some(status.outcome);
                p.count = status.counts.values().sum();
                if let Some(first) = status.errors.first() {
                    p.error = Some(first.clone());
                    self.set_message(format!("{}: {first}", source.name()), true);
                }
            }
            _ => {}
        }
        let done = matches!(ev, FetchEvent::Done { .. });
        match self.incoming.as_mut() {
            Some(b) => {
                b.apply(ev);
            }
            None => {
                self.data.apply(ev);
            }
        }
        if done {
            self.fetching = false;
            match self.incoming.take() {
                // A refresh that read nothing keeps what is shown.
                Some(fresh) if !fresh.read_any() => {
                    let why = fresh
                        .statuses
                        .values()
                        .find_map(|s| s.errors.first().cloned())
                        .unwrap_or_else(|| "no source could be read".into());
                    self.refresh_failed = true;
                    self.set_message(
                        format!("refresh failed, still showing the earlier data: {why}"),
                        true,
                    );
                    return done;
                }
                Some(fresh) => {
                    self.data_time = Some(self.now);
                    self.swap_in(fresh);
                }
                None => self.data_time = Some(self.now),
            }
            self.refresh_failed = !self.data.read_any();
            self.index.update(&self.data.graph);
            self.index.sort_all(&self.data.graph);
            let failed: Vec<&str> = self
                .progress
                .iter()
                .filter(|(_, p)| p.error.is_some())
                .map(|(s, _)| s.name())
                .collect();
            if failed.is_empty() {
                self.set_message(
                    format!(
                        "read {} entities and {} relationships",
                        self.graph().entity_count(),
                        self.graph().relationship_count()
                    ),
                    false,
                );
            }
        }
        done
    }

    /// The statuses of the fetch just done, for `Store::carry_patch`; none
    /// when it read nothing (the data on screen stays as it was).
    pub fn carry_wanted(&self) -> Option<BTreeMap<Source, crate::fetch::SourceStatus>> {
        if self.refresh_failed {
            return None;
        }
        let mut statuses = self.data.statuses.clone();
        crate::store::Store::mark_not_asked(&mut statuses);
        Some(statuses)
    }

    /// Adds the sources the fetch did not read, carried over from an
    /// earlier snapshot, to the data on screen.
    pub fn apply_carry(&mut self, patch: crate::store::CarryPatch) {
        crate::store::Store::mark_not_asked(&mut self.data.statuses);
        let carried = patch.apply(&mut self.data.graph, &mut self.data.statuses);
        if carried.is_empty() {
            return;
        }
        self.index.update(&self.data.graph);
        self.index.sort_all(&self.data.graph);
        self.search_index.update(&self.data.graph);
        self.rels = RelCache::default();
        let names: Vec<&str> = carried.iter().map(|s| s.name()).collect();
        self.set_message(
            format!(
                "not read now, carried over from an earlier snapshot: {}",
                names.join(", ")
            ),
            false,
        );
    }

    /// Files newly arrived entities into the tree and the search index
    /// (once per frame); an open search runs again over the grown index.
    pub fn sync(&mut self) {
        self.index.update(&self.data.graph);
        let before = self.search_index.len();
        self.search_index.update(&self.data.graph);
        if self.search_index.len() != before
            && self
                .modes
                .search()
                .is_some_and(|s| !s.pending && !s.input.is_empty())
        {
            self.request_search(false);
        }
    }

    /// Replaces the graph, keeping the cursor on the same entity by key.
    pub(in crate::tui) fn swap_in(&mut self, fresh: GraphBuilder) {
        let keep = self
            .selected_entity()
            .map(|id| self.graph().entity(id).key.to_string());
        self.data = fresh;
        self.index = TreeIndex::new();
        self.index.update(&self.data.graph);
        self.index.sort_all(&self.data.graph);
        self.search_index = crate::search::SearchIndex::build(&self.data.graph);
        self.marked_ids = self
            .marks
            .iter()
            .filter_map(|k| self.data.graph.id_of(k))
            .collect();
        let opened_top = self.tree.opened().contains(&vec![Node::Root]);
        self.tree = TreeState::default();
        if opened_top {
            self.tree.open(vec![Node::Root]);
        }
        self.tree.select(vec![Node::Root]);
        self.history.clear();
        self.history_pos = 0;
        if let Some(id) = keep.and_then(|k| self.graph().id_of(&k)) {
            self.reveal(id);
        }
    }

    /// A snapshot loaded from disk becomes the data on screen. A fetch that
    /// was filling the screen live goes on filling a second graph, which
    /// replaces the snapshot when complete.
    pub fn load_snapshot(
        &mut self,
        graph: TenantGraph,
        created: Option<DateTime<Utc>>,
        statuses: BTreeMap<Source, crate::fetch::SourceStatus>,
    ) {
        if self.fetching && self.incoming.is_none() {
            let live = std::mem::replace(&mut self.data, GraphBuilder::new());
            self.incoming = Some(live);
        }
        let mut b = GraphBuilder::new();
        b.graph = graph;
        b.statuses = statuses;
        self.swap_in(b);
        self.data_time = created;
        self.loading = None;
    }
}
