//! One pass over a collection page's JSON that both checks it and finds
//! what ingest reads: each `value` item's top-level fields and the next
//! link.
//!
//! A page was first checked by serde (which builds nothing, but reads every
//! byte) and its items then split into fields by a second pass; together
//! they were about a quarter of a fetch's CPU. Checking while splitting
//! reads each byte once: about half the time on a page of managed devices.
//! It accepts exactly the JSON serde accepts when it skips values (tests
//! hold it to serde on mutated pages), and it keeps only offsets, so the
//! records are made later, where they are read, without another pass.
//! A `$batch` answer is read the same way (`batch`): its sub-responses'
//! pages are scanned as they are met.
//!
//! Size: long because it is one hand-written pass over JSON that checks and
//! splits at once; its states share one cursor, and split across files the
//! single pass would have to be re-assembled.

use std::borrow::Cow;
use std::fmt;
use std::ops::Range;

/// What is wrong with a page, and where.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct ScanError {
    /// Byte offset in the answer's body.
    pub at: usize,
    pub what: &'static str,
}

impl fmt::Display for ScanError {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        write!(f, "{} at byte {}", self.what, self.at)
    }
}

impl std::error::Error for ScanError {}

type Scanned<T> = Result<T, ScanError>;

/// A top-level field of an item: where its name (quotes included) and its
/// value are in the body.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct FieldAt {
    pub name: (u32, u32),
    pub value: (u32, u32),
    pub flags: u8,
}

/// The name holds escapes.
pub const NAME_ESCAPED: u8 = 1;
/// The value is a string.
pub const STRING: u8 = 2;
/// The value is a string that holds escapes.
pub const VALUE_ESCAPED: u8 = 4;

/// A `value` item: its span, and for an object its fields (a range of
/// `PageScan::fields`), whether it has white space outside strings and
/// whether any of its fields' names or string values hold escapes.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct ItemAt {
    pub span: (u32, u32),
    pub fields: Option<(u32, u32)>,
    pub compact: bool,
    pub escapes: bool,
    /// The item holds what serde cannot build a value of, though it is
    /// JSON: nesting deeper than `MAX_DEPTH`, or a number out of the range
    /// of a double. `repair` makes it a record that can be read.
    pub odd: bool,
}

/// Nesting a record may have (the record's own object is level 1). serde
/// builds values up to 128 levels; a record's properties are built inside
/// a few levels more (an export's entity, a page).
pub const MAX_DEPTH: usize = 100;

#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub struct PageScan {
    pub items: Vec<ItemAt>,
    pub fields: Vec<FieldAt>,
    /// `@odata.nextLink`, else `nextLink`; an empty one is none.
    pub next: Option<String>,
    /// Whether the page has its array of items (`value`, or `data`): a
    /// page without one is not a page, though it is JSON (`null`, an error
    /// object answered with 200, `{"value": null}`).
    pub has_items: bool,
    /// Where the page is in the body.
    pub span: (u32, u32),
}

impl PageScan {
    /// Whether any item needs `repair` before it can be read.
    pub fn has_odd(&self) -> bool {
        self.items.iter().any(|i| i.odd)
    }
}

/// Where a kind of page keeps its items and its next link.
#[derive(Debug, Clone, Copy)]
pub struct Shape {
    /// The array of items.
    pub items: &'static str,
    /// The next link's field.
    pub link: &'static str,
    /// Another field for it, read when `link` is absent.
    pub fallback: Option<&'static str>,
}

/// A Graph, Defender or ARM collection page: `value`, and
/// `@odata.nextLink` or `nextLink`.
pub const COLLECTION: Shape = Shape {
    items: "value",
    link: "@odata.nextLink",
    fallback: Some("nextLink"),
};

/// An Azure Resource Graph answer: `data`, and `$skipToken` for the next
/// query (a token, not a link).
pub const RESOURCE_GRAPH: Shape = Shape {
    items: "data",
    link: "$skipToken",
    fallback: None,
};

/// A Graph security advanced hunting answer (`huntingQueryResults`): its
/// rows are `results`. The service never pages a result (it cuts it at
/// the row limit instead); a next link is still read, so one would show.
pub const HUNTING: Shape = Shape {
    items: "results",
    link: "@odata.nextLink",
    fallback: None,
};

/// Scans the part `within` of a body (all of it, or a `$batch`
/// sub-response's body). Offsets are the body's.
pub fn page(body: &[u8], within: Range<usize>) -> Scanned<PageScan> {
    page_of(COLLECTION, body, within)
}

/// `page`, of a page of another shape.
pub fn page_of(shape: Shape, body: &[u8], within: Range<usize>) -> Scanned<PageScan> {
    let mut c = Cursor::over(body, within)?;
    c.ws();
    if c.peek() != Some(b'{') {
        return c.bad("an answer that is not a JSON object");
    }
    // Records' fields take 30–40 bytes of text each: sized once for the
    // whole page, the list is not grown and copied a dozen times.
    let scan = c.page(shape, (c.end - c.i) / 32)?;
    c.ws();
    if c.i != c.end {
        return c.bad("characters after the answer");
    }
    if !scan.has_items {
        return Err(ScanError {
            at: scan.span.0 as usize,
            what: missing_items(shape),
        });
    }
    Ok(scan)
}

/// What a page without its array of items lacks, in words.
pub fn missing_items(shape: Shape) -> &'static str {
    match shape.items {
        "data" => "an answer without a `data` array of rows",
        "results" => "an answer without a `results` array of rows",
        _ => "an answer without a `value` array of records",
    }
}

/// Scans one record (a JSON value on its own, not in a page): its item and
/// fields, offsets from the start of `text`. `None` when it is not JSON.
pub fn record(text: &[u8]) -> Option<(ItemAt, Vec<FieldAt>)> {
    let mut c = Cursor::over(text, 0..text.len()).ok()?;
    let mut scan = PageScan::default();
    c.ws();
    c.item(&mut scan).ok()?;
    c.ws();
    if c.i != c.end {
        return None;
    }
    let item = scan.items.pop()?;
    Some((item, scan.fields))
}

/// A `$batch` sub-response as scanned: its id, status, `Retry-After`,
/// `x-ms-throttle-limit-percentage`, and where its body is; a body that is
/// an object is scanned as a page in the same pass.
#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub struct SubScan {
    pub id: Option<String>,
    pub status: u16,
    pub retry_after: Option<String>,
    pub throttle_percentage: Option<String>,
    pub body: Option<Range<usize>>,
    pub page: Option<PageScan>,
}

/// Scans a `$batch` answer (`{"responses": [...]}`) in one pass: its
/// sub-responses' bodies are checked and split as they are met, not
/// skipped first and read again.
pub fn batch(body: &[u8]) -> Scanned<Vec<SubScan>> {
    let mut c = Cursor::over(body, 0..body.len())?;
    let mut subs = Vec::new();
    c.ws();
    if c.peek() != Some(b'{') {
        return c.bad("an answer that is not a JSON object");
    }
    c.object(
        |c, name, escaped| match (c.peek(), c.decode(name, escaped)?.as_str()) {
            (Some(b'['), "responses") => {
                subs.clear();
                c.array(|c| {
                    if c.peek() != Some(b'{') {
                        return c.value();
                    }
                    let mut sub = SubScan::default();
                    c.object(|c, name, escaped| {
                        let start = c.i;
                        match c.decode(name, escaped)?.as_str() {
                            "id" => sub.id = c.id()?,
                            "status" => {
                                c.value()?;
                                let text =
                                    std::str::from_utf8(&c.b[start..c.i]).unwrap_or_default();
                                sub.status = text.parse::<u64>().map_or(0, |n| n.min(999) as u16);
                            }
                            "headers" if c.peek() == Some(b'{') => {
                                sub.retry_after = None;
                                sub.throttle_percentage = None;
                                c.object(|c, name, escaped| {
                                    let header = c.decode(name, escaped)?;
                                    let kept = if header.eq_ignore_ascii_case("retry-after") {
                                        &mut sub.retry_after
                                    } else if header
                                        .eq_ignore_ascii_case("x-ms-throttle-limit-percentage")
                                    {
                                        &mut sub.throttle_percentage
                                    } else {
                                        return c.value();
                                    };
                                    if c.peek() == Some(b'"') {
                                        let at = c.i;
                                        let escaped = c.string()?;
                                        *kept = Some(c.decode((at, c.i), escaped)?);
                                        Ok(())
                                    } else {
                                        c.value()
                                    }
                                })?;
                            }
                            "body" if c.peek() == Some(b'{') => {
                                let page = c.page(COLLECTION, 0)?;
                                sub.body = Some(start..c.i);
                                sub.page = Some(page);
                            }
                            "body" => {
                                c.value()?;
                                sub.body = Some(start..c.i);
                                sub.page = None;
                            }
                            _ => c.value()?,
                        }
                        Ok(())
                    })?;
                    subs.push(sub);
                    Ok(())
                })
            }
            _ => c.value(),
        },
    )?;
    c.ws();
    if c.i != c.end {
        return c.bad("characters after the answer");
    }
    Ok(subs)
}

/// A record made readable: what `repair` changed, and whether anything was
/// lost (a cut) rather than only written another way.
#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub struct Repair {
    /// One line per change: the top-level field and what became of it.
    pub notes: Vec<String>,
    /// A value was cut (nested too deep); numbers kept as text lose nothing.
    pub lost: bool,
}

/// Rewrites a record's JSON text (an object the scan accepted) so that serde
/// can build its value, keeping all it can: a value nested deeper than
/// `MAX_DEPTH` becomes a string saying it was cut, and a number out of a
/// double's range becomes the string of its digits. Everything else is
/// copied as written (white space outside strings dropped). `None` when the
/// text is not JSON.
pub fn repair(text: &[u8]) -> Option<(String, Repair)> {
    let mut c = Cursor::over(text, 0..text.len()).ok()?;
    let src = std::str::from_utf8(text).ok()?;
    let mut out = String::with_capacity(text.len());
    let mut repair = Repair::default();
    // Closers of the containers open, the record's own first.
    let mut open: Vec<u8> = Vec::new();
    // The top-level field being written, for the notes.
    let mut field = String::new();
    let mut noted: Vec<(String, String)> = Vec::new();
    c.ws();
    loop {
        // At a value.
        match c.peek() {
            Some(b'{' | b'[') if open.len() + 1 > MAX_DEPTH => {
                c.nested().ok()?;
                out.push_str(&format!("\"(cut: nested deeper than {MAX_DEPTH} levels)\""));
                repair.lost = true;
                noted.push((
                    field.clone(),
                    format!("a value nested deeper than {MAX_DEPTH} levels was cut"),
                ));
            }
            Some(opener @ (b'{' | b'[')) => {
                let closer = if opener == b'{' { b'}' } else { b']' };
                out.push(opener as char);
                if c.open_empty(closer) {
                    out.push(closer as char);
                } else {
                    open.push(closer);
                    if closer == b'}' {
                        let (name, escaped) = c.name().ok()?;
                        if open.len() == 1 {
                            field = c.decode(name, escaped).ok()?;
                        }
                        out.push_str(&src[name.0..name.1]);
                        out.push(':');
                    }
                    continue;
                }
            }
            Some(b'-' | b'0'..=b'9') => {
                let start = c.i;
                c.number().ok()?;
                let number = &src[start..c.i];
                if serde_json::from_str::<serde_json::Number>(number).is_ok() {
                    out.push_str(number);
                } else {
                    out.push('"');
                    out.push_str(number);
                    out.push('"');
                    noted.push((
                        field.clone(),
                        format!(
                            "the number {}{} is out of range and was kept as text",
                            &number[..number.len().min(40)],
                            if number.len() > 40 { "…" } else { "" }
                        ),
                    ));
                }
            }
            _ => {
                let start = c.i;
                c.value().ok()?;
                out.push_str(&src[start..c.i]);
            }
        }
        // After a value: close what ends here, then the next member or
        // element.
        loop {
            let &closer = open.last()?;
            if c.next_or_close(closer).ok()? {
                out.push(',');
                if closer == b'}' {
                    let (name, escaped) = c.name().ok()?;
                    if open.len() == 1 {
                        field = c.decode(name, escaped).ok()?;
                    }
                    out.push_str(&src[name.0..name.1]);
                    out.push(':');
                }
                break;
            }
            out.push(closer as char);
            open.pop();
            if open.is_empty() {
                c.ws();
                if c.i != c.end {
                    return None;
                }
                noted.dedup();
                repair.notes = noted
                    .into_iter()
                    .map(|(f, what)| format!("`{f}`: {what}"))
                    .collect();
                return Some((out, repair));
            }
        }
    }
}

/// A scanned string's text, quotes included, as the string it spells:
/// borrowed unless it holds escapes (`escaped`, as the scan found); `None`
/// when an escape does not decode (a lone surrogate).
pub fn unquote(text: &str, escaped: bool) -> Option<Cow<'_, str>> {
    if escaped {
        serde_json::from_str::<String>(text).ok().map(Cow::Owned)
    } else {
        text.get(1..text.len().checked_sub(1)?).map(Cow::Borrowed)
    }
}

const ONES: u64 = 0x0101_0101_0101_0101;
const HIGH: u64 = 0x8080_8080_8080_8080;

struct Cursor<'a> {
    b: &'a [u8],
    /// Where the part being scanned ends.
    end: usize,
    i: usize,
    /// Whether white space was skipped since last reset (an item is compact
    /// without any).
    spaced: bool,
    /// Whether something serde cannot build a value of was met since last
    /// reset (see `ItemAt::odd`).
    odd: bool,
}

impl<'a> Cursor<'a> {
    /// A cursor over the part `within` of a body, checked to be UTF-8.
    fn over(body: &'a [u8], within: Range<usize>) -> Scanned<Cursor<'a>> {
        if body.len() > u32::MAX as usize {
            return Err(ScanError {
                at: 0,
                what: "an answer larger than 4 GiB",
            });
        }
        let part = body.get(within.clone()).ok_or(ScanError {
            at: within.start,
            what: "a part outside the answer",
        })?;
        if let Err(e) = std::str::from_utf8(part) {
            return Err(ScanError {
                at: within.start + e.valid_up_to(),
                what: "bytes that are not UTF-8",
            });
        }
        Ok(Cursor {
            b: body,
            end: within.end,
            i: within.start,
            spaced: false,
            odd: false,
        })
    }

    /// At `{`: a collection page, its items' fields and its next link;
    /// room for `fields` fields is made at the start.
    fn page(&mut self, shape: Shape, fields: usize) -> Scanned<PageScan> {
        let mut scan = PageScan {
            fields: Vec::with_capacity(fields),
            ..PageScan::default()
        };
        let (mut link, mut fallback) = (None, None);
        let start = self.i;
        self.object(|c, name, escaped| {
            let name = c.decode(name, escaped)?;
            match c.peek() {
                Some(b'[') if name == shape.items => {
                    // A repeated field counts once, the last, as JSON
                    // parsers keep it.
                    scan.items.clear();
                    scan.fields.clear();
                    scan.has_items = true;
                    c.array(|c| c.item(&mut scan))
                }
                // Items that are not an array are none, and the page is
                // not one.
                _ if name == shape.items => {
                    scan.items.clear();
                    scan.fields.clear();
                    scan.has_items = false;
                    c.value()
                }
                _ if name == shape.link => c.link().map(|l| link = l),
                _ if Some(name.as_str()) == shape.fallback => c.link().map(|l| fallback = l),
                _ => c.value(),
            }
        })?;
        scan.next = link.or(fallback).filter(|l: &String| !l.is_empty());
        scan.span = (start as u32, self.i as u32);
        Ok(scan)
    }

    /// A sub-response's id: a string, or a number as written.
    fn id(&mut self) -> Scanned<Option<String>> {
        let start = self.i;
        match self.peek() {
            Some(b'"') => {
                let escaped = self.string()?;
                self.decode((start, self.i), escaped).map(Some)
            }
            Some(b'-' | b'0'..=b'9') => {
                self.number()?;
                let text = std::str::from_utf8(&self.b[start..self.i]).unwrap_or_default();
                Ok(Some(text.to_string()))
            }
            _ => self.value().map(|_| None),
        }
    }

    fn bad<T>(&self, what: &'static str) -> Scanned<T> {
        Err(ScanError { at: self.i, what })
    }

    fn peek(&self) -> Option<u8> {
        (self.i < self.end).then(|| self.b[self.i])
    }

    fn ws(&mut self) {
        let start = self.i;
        while let Some(b' ' | b'\n' | b'\r' | b'\t') = self.peek() {
            self.i += 1;
        }
        self.spaced |= self.i != start;
    }

    /// The offset of the first quote, backslash or control character at or
    /// after `i`, sixteen bytes at a time with SSE2 (every x86-64 has it),
    /// else eight (the end when there is none).
    fn special(&self, mut i: usize) -> usize {
        let b = &self.b[..self.end];
        #[cfg(target_arch = "x86_64")]
        while let Some(chunk) = b.get(i..i + 16) {
            use std::arch::x86_64::{
                __m128i, _mm_cmpeq_epi8, _mm_loadu_si128, _mm_max_epu8, _mm_movemask_epi8,
                _mm_or_si128, _mm_set1_epi8,
            };
            // SAFETY: SSE2 is part of the x86-64 baseline; the load is
            // unaligned and reads the sixteen bytes of `chunk`.
            let hits = unsafe {
                let x = _mm_loadu_si128(chunk.as_ptr().cast::<__m128i>());
                let quote = _mm_cmpeq_epi8(x, _mm_set1_epi8(b'"' as i8));
                let slash = _mm_cmpeq_epi8(x, _mm_set1_epi8(b'\\' as i8));
                // Unsigned x <= 0x1f: max(x, 0x1f) is 0x1f.
                let low = _mm_set1_epi8(0x1f);
                let control = _mm_cmpeq_epi8(_mm_max_epu8(x, low), low);
                _mm_movemask_epi8(_mm_or_si128(_mm_or_si128(quote, slash), control)) as u32
            };
            if hits != 0 {
                return i + hits.trailing_zeros() as usize;
            }
            i += 16;
        }
        while let Some(chunk) = b.get(i..i + 8) {
            let mut word = [0u8; 8];
            word.copy_from_slice(chunk);
            let x = u64::from_le_bytes(word);
            let quote = x ^ (ONES * u64::from(b'"'));
            let slash = x ^ (ONES * u64::from(b'\\'));
            // A byte's high bit is set where it is zero (so equal) or below
            // 0x20; the lowest such byte is always a true one.
            let hits = ((quote.wrapping_sub(ONES) & !quote)
                | (slash.wrapping_sub(ONES) & !slash)
                | (x.wrapping_sub(ONES * 0x20) & !x))
                & HIGH;
            if hits != 0 {
                return i + (hits.trailing_zeros() / 8) as usize;
            }
            i += 8;
        }
        while i < b.len() && !matches!(b[i], b'"' | b'\\' | 0..=0x1f) {
            i += 1;
        }
        i
    }

    /// At a quote: moves past the string; whether it holds escapes.
    fn string(&mut self) -> Scanned<bool> {
        let mut i = self.i + 1;
        let mut escaped = false;
        loop {
            i = self.special(i);
            let at = |c: &mut Self, what| {
                c.i = i;
                c.bad(what)
            };
            match self.b[..self.end].get(i) {
                Some(b'"') => {
                    self.i = i + 1;
                    return Ok(escaped);
                }
                Some(b'\\') => {
                    escaped = true;
                    match self.b[..self.end].get(i + 1) {
                        Some(b'"' | b'\\' | b'/' | b'b' | b'f' | b'n' | b'r' | b't') => i += 2,
                        Some(b'u') => {
                            let hex = self.b[..self.end].get(i + 2..i + 6);
                            if !hex.is_some_and(|h| h.iter().all(u8::is_ascii_hexdigit)) {
                                return at(self, "an invalid \\u escape");
                            }
                            i += 6;
                        }
                        _ => return at(self, "an invalid escape in a string"),
                    }
                }
                Some(_) => return at(self, "a control character in a string"),
                None => return at(self, "a string that does not end"),
            }
        }
    }

    fn digits(&mut self) -> usize {
        let start = self.i;
        while let Some(b'0'..=b'9') = self.peek() {
            self.i += 1;
        }
        self.i - start
    }

    fn number(&mut self) -> Scanned<()> {
        if self.peek() == Some(b'-') {
            self.i += 1;
        }
        let mut digits = match self.peek() {
            Some(b'0') => {
                self.i += 1;
                1
            }
            Some(b'1'..=b'9') => self.digits(),
            _ => return self.bad("an invalid number"),
        };
        if self.peek() == Some(b'.') {
            self.i += 1;
            match self.digits() {
                0 => return self.bad("an invalid number"),
                n => digits += n,
            }
        }
        if let Some(b'e' | b'E') = self.peek() {
            self.i += 1;
            if let Some(b'+' | b'-') = self.peek() {
                self.i += 1;
            }
            match self.digits() {
                0 => return self.bad("an invalid number"),
                // An exponent of three digits or more may leave a double's
                // range (1.8e308): `repair` asks serde.
                n if n >= 3 => self.odd = true,
                _ => {}
            }
        }
        if digits >= 300 {
            self.odd = true;
        }
        Ok(())
    }

    fn literal(&mut self, word: &[u8]) -> Scanned<()> {
        if self.b[..self.end].get(self.i..self.i + word.len()) == Some(word) {
            self.i += word.len();
            Ok(())
        } else {
            self.bad("an invalid literal")
        }
    }

    /// Checks and skips the value at the cursor.
    fn value(&mut self) -> Scanned<()> {
        match self.peek() {
            Some(b'"') => self.string().map(|_| ()),
            Some(b'{' | b'[') => self.nested(),
            Some(b't') => self.literal(b"true"),
            Some(b'f') => self.literal(b"false"),
            Some(b'n') => self.literal(b"null"),
            Some(b'-' | b'0'..=b'9') => self.number(),
            Some(_) => self.bad("a character that begins no JSON value"),
            None => self.bad("the end where a value was expected"),
        }
    }

    /// A value that is not an object or array.
    fn scalar(&mut self) -> Scanned<()> {
        match self.peek() {
            Some(b'{' | b'[') => self.bad("a nested value where a scalar was expected"),
            _ => self.value(),
        }
    }

    // `name`, `open_empty` and `next_or_close` run for every member and
    // element: left to the compiler they were not inlined, and a page of
    // managed devices took 22% longer to scan (972 -> 1188 µs).

    /// A member's name and its colon, the cursor then at its value: the
    /// name's span (quotes included) and whether it holds escapes.
    #[inline(always)]
    fn name(&mut self) -> Scanned<((usize, usize), bool)> {
        if self.peek() != Some(b'"') {
            return self.bad("a member name was expected");
        }
        let start = self.i;
        let escaped = self.string()?;
        let name = (start, self.i);
        self.ws();
        if self.peek() != Some(b':') {
            return self.bad("a ':' was expected");
        }
        self.i += 1;
        self.ws();
        Ok((name, escaped))
    }

    /// At `{` or `[`: steps in; true when `closer` follows at once (an empty
    /// object or array, then stepped over).
    #[inline(always)]
    fn open_empty(&mut self, closer: u8) -> bool {
        self.i += 1;
        self.ws();
        let empty = self.peek() == Some(closer);
        if empty {
            self.i += 1;
        }
        empty
    }

    /// After a member or element: true at a comma (stepped over, the cursor
    /// at the next one), false at `closer` (stepped over).
    #[inline(always)]
    fn next_or_close(&mut self, closer: u8) -> Scanned<bool> {
        self.ws();
        match self.peek() {
            Some(b',') => {
                self.i += 1;
                self.ws();
                Ok(true)
            }
            Some(c) if c == closer => {
                self.i += 1;
                Ok(false)
            }
            _ if closer == b'}' => self.bad("a ',' or '}' was expected"),
            _ => self.bad("a ',' or ']' was expected"),
        }
    }

    /// Checks and skips the object or array at the cursor, keeping the
    /// brackets still open on a list rather than the call stack (as serde
    /// does when it skips): no nesting can exhaust the stack, and none is
    /// refused.
    fn nested(&mut self) -> Scanned<()> {
        let mut open: smallvec::SmallVec<[u8; 32]> = smallvec::SmallVec::new();
        loop {
            // At a value.
            match self.peek() {
                Some(open_with @ (b'{' | b'[')) => {
                    let closer = if open_with == b'{' { b'}' } else { b']' };
                    if !self.open_empty(closer) {
                        open.push(closer);
                        // A member's value is level 2 of its record.
                        if open.len() + 1 > MAX_DEPTH {
                            self.odd = true;
                        }
                        if closer == b'}' {
                            self.name()?;
                        }
                        continue;
                    }
                }
                _ => self.scalar()?,
            }
            // After a value: close what ends here, then the next member or
            // element.
            while let Some(&closer) = open.last() {
                if self.next_or_close(closer)? {
                    if closer == b'}' {
                        self.name()?;
                    }
                    break;
                }
                open.pop();
            }
            if open.is_empty() {
                return Ok(());
            }
        }
    }

    /// At `{`: hands each member's name span (quotes included) and whether
    /// it holds escapes to `member`, with the cursor at the member's value.
    fn object(
        &mut self,
        mut member: impl FnMut(&mut Self, (usize, usize), bool) -> Scanned<()>,
    ) -> Scanned<()> {
        if self.open_empty(b'}') {
            return Ok(());
        }
        loop {
            let (name, escaped) = self.name()?;
            member(self, name, escaped)?;
            if !self.next_or_close(b'}')? {
                return Ok(());
            }
        }
    }

    /// At `[`: `item` reads each element, the cursor at its start.
    fn array(&mut self, mut item: impl FnMut(&mut Self) -> Scanned<()>) -> Scanned<()> {
        if self.open_empty(b']') {
            return Ok(());
        }
        loop {
            item(self)?;
            if !self.next_or_close(b']')? {
                return Ok(());
            }
        }
    }

    /// One `value` item: an object's fields are noted; anything else is
    /// checked and kept as an item without fields (ingest skips it).
    fn item(&mut self, scan: &mut PageScan) -> Scanned<()> {
        let start = self.i;
        if self.peek() != Some(b'{') {
            self.value()?;
            scan.items.push(ItemAt {
                span: (start as u32, self.i as u32),
                fields: None,
                compact: false,
                escapes: false,
                odd: false,
            });
            return Ok(());
        }
        self.spaced = false;
        self.odd = false;
        let first = scan.fields.len() as u32;
        let mut escapes = false;
        self.object(|c, name, escaped| {
            let at = c.i;
            let flags = if c.peek() == Some(b'"') {
                STRING | if c.string()? { VALUE_ESCAPED } else { 0 }
            } else {
                c.value()?;
                0
            };
            let flags = flags | if escaped { NAME_ESCAPED } else { 0 };
            escapes |= flags & (NAME_ESCAPED | VALUE_ESCAPED) != 0;
            scan.fields.push(FieldAt {
                name: (name.0 as u32, name.1 as u32),
                value: (at as u32, c.i as u32),
                flags,
            });
            Ok(())
        })?;
        scan.items.push(ItemAt {
            span: (start as u32, self.i as u32),
            fields: Some((first, scan.fields.len() as u32)),
            compact: !self.spaced,
            escapes,
            odd: self.odd,
        });
        Ok(())
    }

    /// A string (quotes included) as its text.
    fn decode(&self, span: (usize, usize), escaped: bool) -> Scanned<String> {
        let text = std::str::from_utf8(&self.b[span.0..span.1]).unwrap_or_default();
        unquote(text, escaped)
            .map(Cow::into_owned)
            .ok_or(ScanError {
                at: span.0,
                what: "a string with an invalid escape",
            })
    }

    /// A next link: a string, or null for none.
    fn link(&mut self) -> Scanned<Option<String>> {
        match self.peek() {
            Some(b'"') => {
                let start = self.i;
                let escaped = self.string()?;
                self.decode((start, self.i), escaped).map(Some)
            }
            Some(b'n') => self.literal(b"null").map(|_| None),
            _ => self.bad("a next link that is not a string"),
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::fetch::record::{RawPage, serde_fields};
    use serde_json::{Value, json};

    fn scan(text: &[u8]) -> Scanned<PageScan> {
        page(text, 0..text.len())
    }

    /// What serde says of a page: `None` when it cannot say in the same
    /// terms (a lone surrogate is a valid escape to skip but not a string).
    enum Serde {
        Rejects,
        Accepts { items: usize, next: Option<String> },
    }

    fn serde_verdict(text: &[u8]) -> Option<Serde> {
        let skipped = serde_json::from_slice::<serde::de::IgnoredAny>(text).is_ok();
        let object = text
            .iter()
            .find(|b| !b.is_ascii_whitespace())
            .is_some_and(|&b| b == b'{');
        if !(skipped && object && std::str::from_utf8(text).is_ok()) {
            return Some(Serde::Rejects);
        }
        let v: Value = serde_json::from_slice(text).ok()?;
        let link = |name: &str| match v.get(name) {
            None | Some(Value::Null) => Ok(None),
            Some(Value::String(s)) => Ok(Some(s.clone())),
            Some(_) => Err(()),
        };
        let (Ok(odata), Ok(plain)) = (link("@odata.nextLink"), link("nextLink")) else {
            return Some(Serde::Rejects);
        };
        // A page has its array of records.
        if !v.get("value").is_some_and(Value::is_array) {
            return Some(Serde::Rejects);
        }
        Some(Serde::Accepts {
            items: v["value"].as_array().map_or(0, Vec::len),
            next: odata.or(plain).filter(|l| !l.is_empty()),
        })
    }

    /// The scan accepts what serde accepts, finds the same items and link,
    /// and each record's fields read as serde reads them.
    fn agrees(text: &[u8]) -> bool {
        let Some(expected) = serde_verdict(text) else {
            return false;
        };
        let ours = scan(text);
        match (expected, ours) {
            (Serde::Rejects, Err(_)) => true,
            (Serde::Rejects, Ok(_)) => panic!("accepted: {}", String::from_utf8_lossy(text)),
            (Serde::Accepts { .. }, Err(e)) => {
                panic!("rejected ({e}): {}", String::from_utf8_lossy(text))
            }
            (Serde::Accepts { items, next }, Ok(scan)) => {
                assert_eq!(scan.items.len(), items, "{}", String::from_utf8_lossy(text));
                assert_eq!(scan.next, next);
                let page = RawPage::scan(bytes::Bytes::copy_from_slice(text)).expect("scans");
                for r in page.records() {
                    let fields: Option<Vec<(String, String, Option<String>)>> =
                        r.is_object().then(|| {
                            r.fields()
                                .map(|s| (s.name.into(), s.raw.into(), s.text.map(Into::into)))
                                .collect()
                        });
                    assert_eq!(fields, serde_fields(r.raw()), "{}", r.raw());
                }
                true
            }
        }
    }

    fn seeds() -> Vec<String> {
        let records = json!([
            {"@odata.type": "#microsoft.graph.user", "id": "u1", "displayName": "Åsa \"Q\" Öberg",
             "mail": null, "accountEnabled": true, "n": -12.5e-3, "z": 0, "big": 12345678901234567890u64,
             "tags": ["a", "b\\c", "\u{1F600}"], "nested": {"deep": [[], [{}], {"k": "\n\t"}]}},
            {"id": "d\u{e9}", "esc\"aped": "\u{2603}", "empty": "", "arr": [1, 2.0, true, false, null]},
            "not an object",
            42
        ]);
        let compact = json!({
            "@odata.context": "https://graph.microsoft.com/v1.0/$metadata#users",
            "@odata.nextLink": "https://graph.microsoft.com/v1.0/users?$skiptoken=X%2F1",
            "value": records,
        });
        let defender = json!({"value": [{"id": "m1", "score": 7}], "nextLink": "n\u{e9}xt"});
        vec![
            compact.to_string(),
            serde_json::to_string_pretty(&compact).expect("json"),
            defender.to_string(),
            r#"{ "value" : [ ] , "@odata.nextLink" : null }"#.to_string(),
            r#"{"a":"\u00e9\ud83d\ude00\/","value":[{"x":"\\"}],"value":[{"y":1}]}"#.to_string(),
        ]
    }

    #[test]
    fn pages_read_as_serde_reads_them() {
        for s in seeds() {
            assert!(agrees(s.as_bytes()), "{s}");
        }
        for text in [
            "",
            " ",
            "[]",
            "null",
            "{",
            "}",
            r#"{"value":[{"a":1},]}"#,
            r#"{"value":[,]}"#,
            r#"{"value":[01]}"#,
            r#"{"value":[1.]}"#,
            r#"{"value":[-]}"#,
            r#"{"value":[1e]}"#,
            r#"{"value":[.5]}"#,
            r#"{"value":[tru]}"#,
            r#"{"value":[nulll]}"#,
            "{\"value\":[\"a\u{1}\"]}",
            r#"{"value":["\x"]}"#,
            r#"{"value":["\u12G4"]}"#,
            r#"{"value":["unterminated]}"#,
            r#"{"value":[]} x"#,
            r#"{"value":[]}{}"#,
            r#"{"value" [1]}"#,
            r#"{value:[1]}"#,
            r#"{"a":1,}"#,
            r#"{"nextLink":1}"#,
            r#"{"nextLink":"ok","value":{"not":"an array"}}"#,
            r#"{"value":"text"}"#,
            "{\"value\":[1]}\n\t ",
            "\u{feff}{}",
        ] {
            agrees(text.as_bytes());
        }
        // serde skips nesting of any depth (only building values has a
        // limit), and so does the scan, without recursion.
        let deep = format!(
            "{{\"value\":[{{\"a\":{}{{}}{}}}]}}",
            "[{\"k\":".repeat(50_000),
            "}]".repeat(50_000)
        );
        assert!(serde_json::from_slice::<serde::de::IgnoredAny>(deep.as_bytes()).is_ok());
        assert_eq!(scan(deep.as_bytes()).map(|s| s.items.len()), Ok(1));
        let ok = format!("{{\"value\":[{}1{}]}}", "[".repeat(120), "]".repeat(120));
        assert!(agrees(ok.as_bytes()));
        let unclosed = format!("{{\"value\":[{}1]}}", "[".repeat(100));
        assert!(agrees(unclosed.as_bytes()));
    }

    #[test]
    fn mutated_pages_are_accepted_or_refused_as_serde_does() {
        // A fixed sequence (splitmix64), so a failure can be replayed.
        let mut state = 0x5eed_u64;
        let mut next = move || {
            state = state.wrapping_add(0x9e37_79b9_7f4a_7c15);
            let mut z = state;
            z = (z ^ (z >> 30)).wrapping_mul(0xbf58_476d_1ce4_e5b9);
            z = (z ^ (z >> 27)).wrapping_mul(0x94d0_49bb_1331_11eb);
            z ^ (z >> 31)
        };
        let seeds: Vec<Vec<u8>> = seeds().into_iter().map(String::into_bytes).collect();
        let tokens: &[u8] = b"{}[]\":,\\ \t\n-+.0123456789eEtrufalsn/u\x01\x1f\x7f\xc3\xa9";
        let (mut accepted, mut compared) = (0, 0);
        for _ in 0..4000 {
            let mut text = seeds[next() as usize % seeds.len()].clone();
            for _ in 0..1 + next() % 3 {
                let at = next() as usize % (text.len() + 1);
                let byte = if next() % 4 == 0 {
                    next() as u8
                } else {
                    tokens[next() as usize % tokens.len()]
                };
                match next() % 4 {
                    0 if at < text.len() => {
                        text.remove(at);
                    }
                    1 if at < text.len() => text[at] = byte,
                    2 => text.insert(at, byte),
                    _ => text.truncate(at),
                }
            }
            if agrees(&text) {
                compared += 1;
                accepted += usize::from(scan(&text).is_ok());
            }
        }
        // Enough of both kinds to mean something.
        assert!(compared > 3500 && accepted > 300, "{compared} {accepted}");
    }

    #[test]
    fn records_serde_cannot_build_are_repaired_keeping_what_can_be_kept() {
        let deep = format!("{}1{}", "[".repeat(150), "]".repeat(150));
        let text = format!(
            r#"{{"value":[{{"id":"s1","quota":-1e999999,"n":1e400,"ok":1e2,"deep":{{"a":{deep}}},"name":"Åsa"}},{{"id":"s2"}}]}}"#
        );
        // serde cannot build the record's value: it would be lost.
        let record_text = &text[10..text.find(r#",{"id":"s2"}"#).expect("second")];
        assert!(serde_json::from_str::<Value>(record_text).is_err());
        let page = RawPage::scan(bytes::Bytes::from(text)).expect("a page");
        let records = page.records();
        assert_eq!(records.len(), 2, "the record is kept");
        let r = &records[0];
        let v = r.to_value();
        assert_eq!(v["id"], "s1");
        assert_eq!(v["quota"], "-1e999999", "out of range: kept as text");
        assert_eq!(v["n"], "1e400");
        assert_eq!(v["ok"], json!(100.0), "in range: a number still");
        assert_eq!(v["name"], "Åsa");
        // Cut where it nests past the levels kept, not before.
        let mut at = &v["deep"]["a"];
        let mut levels = 2;
        while let Some(inner) = at.as_array().and_then(|a| a.first()) {
            at = inner;
            levels += 1;
        }
        assert_eq!(levels, MAX_DEPTH);
        assert_eq!(
            at,
            &json!(format!("(cut: nested deeper than {MAX_DEPTH} levels)"))
        );
        let repair = r.repair().expect("said what changed");
        assert!(repair.lost, "a cut loses a value");
        assert_eq!(
            repair.notes,
            [
                "`quota`: the number -1e999999 is out of range and was kept as text",
                "`n`: the number 1e400 is out of range and was kept as text",
                "`deep`: a value nested deeper than 100 levels was cut"
            ]
        );
        assert!(records[1].repair().is_none());
        // Properties read back whole, as export and the details pane read them.
        let props: Value = serde_json::from_str(&r.props().to_json()).expect("json");
        assert_eq!(props["quota"], "-1e999999");
        assert!(props["deep"].is_object());
    }

    #[test]
    fn errors_say_what_is_wrong_and_where() {
        let e = scan(br#"{"value":[{"id":"a"} {"id":"b"}]}"#).expect_err("bad");
        assert_eq!(e.to_string(), "a ',' or ']' was expected at byte 21");
        let e = scan(b"<html>").expect_err("bad");
        assert_eq!(
            e.to_string(),
            "an answer that is not a JSON object at byte 0"
        );
        let e = scan(b"{\"value\":[\"caf\xe9\"]}").expect_err("bad");
        assert_eq!(e.what, "bytes that are not UTF-8");
        let body = br#"xx{"value":[{"id":"a"}],"nextLink":"n"}yy"#;
        let part = page(body, 2..body.len() - 2).expect("the part is a page");
        assert_eq!(part.items[0].span, (12, 22), "offsets are the body's");
        assert_eq!(part.next.as_deref(), Some("n"));
    }

    #[test]
    fn a_batch_answer_is_read_in_one_pass() {
        let answer = json!({"responses": [
            {"id": "1", "status": 200, "headers": {"Content-Type": "application/json", "x-ms-throttle-limit-percentage": "0.85"},
             "body": {"@odata.nextLink": "n1", "value": [{"id": "a"}, {"id": "b"}]}},
            {"id": 2, "status": 429, "headers": {"retry-after": "1.5"},
             "body": {"error": {"code": "TooManyRequests", "message": "slow down"}}},
            {"status": 503, "id": "3", "body": null, "headers": {"RETRY-AFTER": "Wed, 21 Oct 2026 07:28:00 GMT"}},
            {"id": "4", "status": 204},
            "not a response"
        ]})
        .to_string();
        let subs = batch(answer.as_bytes()).expect("scans");
        assert_eq!(subs.len(), 4);
        assert_eq!(subs[0].id.as_deref(), Some("1"));
        assert_eq!(subs[0].status, 200);
        assert_eq!(subs[0].throttle_percentage.as_deref(), Some("0.85"));
        assert_eq!(subs[1].throttle_percentage, None);
        let page = subs[0].page.as_ref().expect("a page");
        assert_eq!((page.items.len(), page.next.as_deref()), (2, Some("n1")));
        let body = subs[0].body.clone().expect("body");
        assert!(answer[body].starts_with("{\"@odata.nextLink\""));
        assert_eq!(subs[1].id.as_deref(), Some("2"));
        assert_eq!(
            (subs[1].status, subs[1].retry_after.as_deref()),
            (429, Some("1.5"))
        );
        assert_eq!(
            subs[2].retry_after.as_deref(),
            Some("Wed, 21 Oct 2026 07:28:00 GMT")
        );
        assert!(subs[2].page.is_none() && subs[2].body.is_some());
        assert_eq!((subs[3].status, subs[3].body.clone()), (204, None));
        // Anything that is not JSON, anywhere in it, is refused as serde
        // refuses it.
        for cut in 1..answer.len() {
            let part = &answer.as_bytes()[..cut];
            assert!(batch(part).is_err(), "{cut}");
        }
        assert!(batch(br#"{"responses":[{"id":"1","body":{"value":[1,]}}]}"#).is_err());
        assert_eq!(batch(br#"{"responses":null}"#), Ok(vec![]));
    }
}
