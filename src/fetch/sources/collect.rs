//! How a source reads its collections, so that a source declares what it
//! reads: a collection page by page into the graph (`Ctx::read`), one whose
//! records name what is read next (`Ctx::list`), and a collection per item
//! listed, through `$batch` (`Ctx::each`). Each keeps its collection's
//! outcome (`Ctx::finish`), and a collection that cannot be read because
//! its listing failed is said not read, never an empty one.

use super::context::Ctx;
use crate::auth::endpoints::Api;
use crate::fetch::http::HttpError;
use crate::fetch::record::Record;
use crate::ingest::Batch;

/// What a listing kept of its records, and whether it was read whole.
pub struct Listed<T> {
    /// The collection listed.
    pub collection: &'static str,
    /// What `Ctx::list`'s `ingest` returned of each record, in order: of
    /// every record, or of those before the listing broke off.
    pub items: Vec<T>,
    /// The records listed, when the listing was read whole.
    pub read: Option<usize>,
}

impl<T> Listed<T> {
    pub fn whole(&self) -> bool {
        self.read.is_some()
    }
}

impl Ctx {
    /// Reads a collection along its next links: each page's records through
    /// `ingest` as the page arrives (counted and sent to the graph,
    /// `Ctx::ingest`), then the collection's outcome kept. The records
    /// read, when read whole.
    pub async fn read(
        &self,
        api: Api,
        collection: &'static str,
        path: &str,
        mut ingest: impl FnMut(&Record<'_>, &mut Batch),
    ) -> Option<usize> {
        let r = self
            .http
            .get_pages(api, path, |records| {
                self.ingest(collection, &records, &mut ingest)
            })
            .await;
        let read = r.as_ref().ok().copied();
        self.finish(collection, r);
        read
    }

    /// `read`, keeping what `ingest` returns of each record: the ids that
    /// later requests need.
    pub async fn list<T>(
        &self,
        api: Api,
        collection: &'static str,
        path: &str,
        mut ingest: impl FnMut(&Record<'_>, &mut Batch) -> Option<T>,
    ) -> Listed<T> {
        let mut items = Vec::new();
        let read = self
            .read(api, collection, path, |v, b| items.extend(ingest(v, b)))
            .await;
        Listed {
            collection,
            items,
            read,
        }
    }

    /// Whether the collections read per item of `listed` can be: when the
    /// listing was not read whole, each of `per_item` is said not read.
    pub fn can_read_per_item<T>(&self, listed: &Listed<T>, per_item: &[&'static str]) -> bool {
        if !listed.whole() {
            let because = format!("the {} could not be listed", listed.collection);
            for collection in per_item {
                self.not_read(collection, &because);
            }
        }
        listed.whole()
    }

    /// A collection read per item listed, at `path(item)` (`read_each`),
    /// then its outcome kept: the first item that could not be read fails
    /// it. Not read when the listing was not read whole (`can_read_per_item`);
    /// nothing at all when it listed nothing.
    pub async fn each<T: Sync>(
        &self,
        listed: &Listed<T>,
        collection: &'static str,
        path: impl Fn(&T) -> String,
        ingest: impl Fn(&T, &Record<'_>, &mut Batch),
    ) {
        if !self.can_read_per_item(listed, &[collection]) || listed.items.is_empty() {
            return;
        }
        let results = self
            .read_each(collection, &listed.items, path, ingest)
            .await;
        self.finish(collection, first_error(results));
    }

    /// `path(item)` of each item, through Graph `$batch` (20 a request, each
    /// then followed along its next links), each page's records through
    /// `ingest(item, record, batch)` into `collection`: what became of each
    /// item, its outcome not yet kept.
    pub async fn read_each<T: Sync>(
        &self,
        collection: &'static str,
        items: &[T],
        path: impl Fn(&T) -> String,
        ingest: impl Fn(&T, &Record<'_>, &mut Batch),
    ) -> Vec<Result<usize, HttpError>> {
        let paths: Vec<String> = items.iter().map(path).collect();
        self.http
            .batch_pages("v1.0", &paths, |i, records| {
                self.ingest(collection, &records, |v, b| ingest(&items[i], v, b))
            })
            .await
    }
}

/// The items of every read, or the first error.
pub fn first_error(results: Vec<Result<usize, HttpError>>) -> Result<usize, HttpError> {
    let mut total = 0;
    for r in results {
        total += r?;
    }
    Ok(total)
}
