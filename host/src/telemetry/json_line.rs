//! The JSON log line, written straight into the line being formatted.
//!
//! It has the members of `tracing-subscriber`'s own JSON format as `telemetry` configures
//! it (flattened event fields, the current span without the span list): `timestamp`,
//! `level`, the event's fields, `target`, and `span` (its fields and `name`; outside any
//! span, the request being served, if any: see [`super::request`]). That format
//! parses the current span's fields back from JSON for every event, and formats each
//! field into a map first; on a server logging a line per request, that cost several
//! percent of its throughput (BENCHMARKS.md). Here a span's fields are written once, as a
//! JSON object, when the span opens ([`SpanFields`]; `JsonFields` builds a map of them
//! first), and copied as they are into each line; each field goes straight through
//! serde_json's serializer, which escapes it.

use super::ACCESS_LOG_TARGET;
use super::request::{self, FINISHED, Micros, RequestScope};
use serde::Serializer as _;
use std::cell::Cell;
use std::fmt;
use std::io;
use std::time::Duration;
use tracing::field::{Field, Visit};
use tracing::span::Record;
use tracing::{Event, Subscriber};
use tracing_subscriber::field::RecordFields;
use tracing_subscriber::fmt::format::{JsonFields, Writer};
use tracing_subscriber::fmt::{FmtContext, FormatEvent, FormatFields, FormattedFields};
use tracing_subscriber::registry::LookupSpan;

/// Formats each event as one JSON object on its own line.
pub struct JsonLine;

impl<S> FormatEvent<S, SpanFields> for JsonLine
where
    S: Subscriber + for<'a> LookupSpan<'a>,
{
    fn format_event(
        &self,
        ctx: &FmtContext<'_, S, SpanFields>,
        mut writer: Writer<'_>,
        event: &Event<'_>,
    ) -> fmt::Result {
        let meta = event.metadata();
        writer.write_str("{\"timestamp\":\"")?;
        write_timestamp(&mut writer, std::time::SystemTime::now())?;
        write!(writer, "\",\"level\":\"{}\"", meta.level())?;
        let mut fields = FieldWriter { writer: &mut writer, comma: true, result: Ok(()) };
        event.record(&mut fields);
        fields.result?;
        writer.write_str(",\"target\":")?;
        json(&mut writer, |s| s.serialize_str(meta.target()))?;
        let span = event.parent().and_then(|id| ctx.span(id)).or_else(|| ctx.lookup_current());
        if let Some(span) = span {
            writer.write_str(",\"span\":{")?;
            let extensions = span.extensions();
            let stored = extensions.get::<FormattedFields<SpanFields>>().map_or("", |f| f.fields.as_str());
            // An object, or nothing for a span without fields: its members, then a comma.
            let members = stored.strip_prefix('{').and_then(|s| s.strip_suffix('}')).unwrap_or("");
            if !members.is_empty() {
                writer.write_str(members)?;
                writer.write_char(',')?;
            }
            writer.write_str("\"name\":")?;
            json(&mut writer, |s| s.serialize_str(span.name()))?;
            writer.write_char('}')?;
        } else if let Some(written) = request::with_current(|request| request_span(&mut writer, request)) {
            written?;
        }
        writer.write_str("}\n")
    }
}

/// The closing line of a request: the line [`JsonLine`] writes for
/// `info!(target: ACCESS_LOG_TARGET, latency = %"… μs", status, "finished processing request")`
/// logged in the request's scope, written without tracing's field visitors and formatting
/// machinery, which cost 4% of the host's CPU on `/predict` (BENCHMARKS.md).
pub fn access_line(line: &mut String, request: &RequestScope, status: u16, latency: Duration) -> fmt::Result {
    let mut writer = Writer::new(line);
    writer.write_str("{\"timestamp\":\"")?;
    write_timestamp(&mut writer, std::time::SystemTime::now())?;
    write!(
        writer,
        "\",\"level\":\"INFO\",\"message\":\"{FINISHED}\",\"latency\":\"{}\",\"status\":{status},\"target\":\"{ACCESS_LOG_TARGET}\"",
        Micros(latency)
    )?;
    request_span(&mut writer, request)?;
    writer.write_str("}\n")
}

thread_local! {
    /// The second last written by this thread, and its text up to the fraction.
    static SECOND: Cell<(u64, [u8; 19])> = const { Cell::new((u64::MAX, [0; 19])) };
}

/// RFC 3339 UTC with microseconds, as tracing-subscriber writes it
/// (`2026-12-02T06:33:03.672664Z`); the date and time of day are formatted once a second.
fn write_timestamp(writer: &mut Writer<'_>, now: std::time::SystemTime) -> fmt::Result {
    let since_epoch = now.duration_since(std::time::UNIX_EPOCH).unwrap_or_default();
    let (second, mut text) = SECOND.get();
    if second != since_epoch.as_secs() {
        let whole = humantime::format_rfc3339_seconds(now).to_string();
        text.copy_from_slice(&whole.as_bytes()[..19]);
        SECOND.set((since_epoch.as_secs(), text));
    }
    let date_and_time = std::str::from_utf8(&text).map_err(|_| fmt::Error)?;
    write!(writer, "{date_and_time}.{:06}Z", since_epoch.subsec_micros())
}

/// Writes the request being served as the `span` member a span named `request` with
/// these fields would give (see [`super::request`]).
fn request_span(writer: &mut Writer<'_>, request: &RequestScope) -> fmt::Result {
    writer.write_str(",\"span\":{\"request_id\":")?;
    json(writer, |s| s.serialize_str(request.id()))?;
    writer.write_str(",\"method\":")?;
    json(writer, |s| s.serialize_str(request.method.as_str()))?;
    writer.write_str(",\"path\":")?;
    json(writer, |s| s.serialize_str(request.uri.path()))?;
    writer.write_str(",\"name\":\"request\"}")
}

/// Stores a span's fields as the text of a JSON object, written as the span opens.
pub struct SpanFields;

impl<'w> FormatFields<'w> for SpanFields {
    fn format_fields<R: RecordFields>(&self, mut writer: Writer<'w>, fields: R) -> fmt::Result {
        writer.write_char('{')?;
        let mut members = FieldWriter { writer: &mut writer, comma: false, result: Ok(()) };
        fields.record(&mut members);
        members.result?;
        writer.write_char('}')
    }

    /// Fields recorded after the span opened (none of the host's spans do) are merged as
    /// `JsonFields` merges them: a field recorded again replaces its earlier value.
    fn add_fields(&self, current: &'w mut FormattedFields<Self>, fields: &Record<'_>) -> fmt::Result {
        let mut merged = FormattedFields::<JsonFields>::new(std::mem::take(&mut current.fields));
        let result = JsonFields::new().add_fields(&mut merged, fields);
        current.fields = merged.fields;
        result
    }
}

/// Writes each field as `"name":value`, after a comma from the second on (or from the
/// first, with `comma` set); the first failure stops the rest.
struct FieldWriter<'a, 'w> {
    writer: &'a mut Writer<'w>,
    comma: bool,
    result: fmt::Result,
}

impl FieldWriter<'_, '_> {
    fn member(&mut self, field: &Field, value: impl FnOnce(&mut Json<'_, '_>) -> serde_json::Result<()>) {
        if self.result.is_ok() {
            self.result = (|| {
                if std::mem::replace(&mut self.comma, true) {
                    self.writer.write_char(',')?;
                }
                json(self.writer, |s| s.serialize_str(field.name()))?;
                self.writer.write_char(':')?;
                json(self.writer, value)
            })();
        }
    }
}

impl Visit for FieldWriter<'_, '_> {
    fn record_bool(&mut self, field: &Field, value: bool) {
        self.member(field, |s| s.serialize_bool(value));
    }

    fn record_i64(&mut self, field: &Field, value: i64) {
        self.member(field, |s| s.serialize_i64(value));
    }

    fn record_u64(&mut self, field: &Field, value: u64) {
        self.member(field, |s| s.serialize_u64(value));
    }

    fn record_f64(&mut self, field: &Field, value: f64) {
        self.member(field, |s| s.serialize_f64(value));
    }

    fn record_str(&mut self, field: &Field, value: &str) {
        self.member(field, |s| s.serialize_str(value));
    }

    fn record_debug(&mut self, field: &Field, value: &dyn fmt::Debug) {
        self.member(field, |s| s.collect_str(&format_args!("{value:?}")));
    }
}

/// serde_json's serializer, writing into the line.
type Json<'a, 'w> = serde_json::Serializer<LineSink<'a, 'w>>;

/// Writes one JSON value into the line with serde_json, which does the escaping.
fn json(
    writer: &mut Writer<'_>,
    value: impl FnOnce(&mut Json<'_, '_>) -> serde_json::Result<()>,
) -> fmt::Result {
    value(&mut serde_json::Serializer::new(LineSink(writer))).map_err(|_| fmt::Error)
}

/// The line as an `io::Write`, which serde_json writes to. It is only ever handed
/// whole UTF-8 pieces of valid JSON.
struct LineSink<'a, 'w>(&'a mut Writer<'w>);

impl io::Write for LineSink<'_, '_> {
    fn write(&mut self, bytes: &[u8]) -> io::Result<usize> {
        let text = std::str::from_utf8(bytes).map_err(io::Error::other)?;
        self.0.write_str(text).map_err(io::Error::other)?;
        Ok(bytes.len())
    }

    fn flush(&mut self) -> io::Result<()> {
        Ok(())
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use std::sync::{Arc, Mutex};
    use std::time::Duration;
    use tracing_subscriber::fmt::MakeWriter;

    /// Lines written, shared with the test.
    #[derive(Clone, Default)]
    struct Captured(Arc<Mutex<Vec<u8>>>);

    impl io::Write for Captured {
        fn write(&mut self, bytes: &[u8]) -> io::Result<usize> {
            self.0.lock().unwrap().extend_from_slice(bytes);
            Ok(bytes.len())
        }

        fn flush(&mut self) -> io::Result<()> {
            Ok(())
        }
    }

    impl MakeWriter<'_> for Captured {
        type Writer = Self;

        fn make_writer(&self) -> Self {
            self.clone()
        }
    }

    /// Events of every field kind, in and out of spans, with text that needs escaping.
    fn emit() {
        tracing::info!("outside any span");
        let request =
            tracing::info_span!("request", request_id = "r-1", method = %"POST", path = %"/predict");
        let _entered = request.enter();
        tracing::info!(latency = ?Duration::from_micros(21), status = 200u16, "finished processing request");
        tracing::warn!(
            error = %"quote \" backslash \\ newline \n tab \t bell \u{7} accent é crab 🦀",
            ok = true, count = -3i64, big = u64::MAX, ratio = 0.25f64, nan = f64::NAN, wide = 1u128 << 100,
            "failed: {}", "formatted \"message\""
        );
        tracing::debug_span!("no_fields")
            .in_scope(|| tracing::error!(kind = "inner", "in a span without fields"));
        let other = tracing::info_span!("other", id = 7, label = "x");
        tracing::info!(parent: &other, "with an explicit parent");
        tracing::trace!(parent: None, "explicitly without a parent");
        let recorded = tracing::info_span!("recorded", first = 1, later = tracing::field::Empty);
        recorded.record("later", "then");
        recorded.record("first", 2);
        tracing::info!(parent: &recorded, "fields recorded after the span opened");
    }

    /// The lines `emit` writes, parsed, with `JsonLine` or with tracing-subscriber's JSON.
    fn lines(json_line: bool) -> Vec<serde_json::Value> {
        let captured = Captured::default();
        let builder = tracing_subscriber::fmt()
            .with_writer(captured.clone())
            .with_max_level(tracing::Level::TRACE)
            .with_ansi(false);
        if json_line {
            let subscriber = builder.fmt_fields(SpanFields).event_format(JsonLine).finish();
            tracing::subscriber::with_default(subscriber, emit);
        } else {
            let subscriber = builder.json().flatten_event(true).with_span_list(false).finish();
            tracing::subscriber::with_default(subscriber, emit);
        }
        let text = String::from_utf8(captured.0.lock().unwrap().clone()).unwrap();
        assert!(text.ends_with('\n'));
        text.lines()
            .map(|line| serde_json::from_str(line).unwrap_or_else(|e| panic!("{e}: {line}")))
            .collect()
    }

    #[test]
    fn lines_carry_what_tracing_subscribers_json_format_does() {
        let (ours, reference) = (lines(true), lines(false));
        assert_eq!(ours.len(), 7);
        assert_eq!(ours.len(), reference.len());
        for (mut ours, mut reference) in ours.into_iter().zip(reference) {
            let (a, b) = (ours["timestamp"].take(), reference["timestamp"].take());
            let (a, b) = (a.as_str().unwrap(), b.as_str().unwrap());
            assert!(a.ends_with('Z') && a.len() == b.len(), "timestamps {a} and {b}");
            assert_eq!(ours, reference);
        }
    }

    /// A line logged while a request is served carries the request as the `span` a tracing
    /// span named `request` with its fields would give; its closing line, written without
    /// tracing, is the line tracing would write.
    #[test]
    fn a_line_logged_while_a_request_is_served_carries_it_as_its_span() {
        use axum::http::{HeaderValue, Method, Uri};
        let scope = || RequestScope {
            id: HeaderValue::from_static("r-\"1"),
            method: Method::POST,
            uri: Uri::from_static("/predict?debug=1"),
        };
        let captured = Captured::default();
        let subscriber = tracing_subscriber::fmt()
            .with_writer(captured.clone())
            .with_ansi(false)
            .fmt_fields(SpanFields)
            .event_format(JsonLine)
            .finish();
        tracing::subscriber::with_default(subscriber, || {
            let runtime = tokio::runtime::Builder::new_current_thread().build().unwrap();
            runtime.block_on(scope().serve(async {
                tracing::warn!(kind = "trap", "prediction failed");
                tokio::task::yield_now().await;
                tracing::warn!(kind = "trap", "prediction failed");
            }));
            // Lines are not JSON_LINES here, so the closing line goes through tracing.
            scope().finish(200, Duration::from_micros(21));
            let span =
                tracing::info_span!("request", request_id = "r-\"1", method = "POST", path = "/predict");
            span.in_scope(|| tracing::warn!(kind = "trap", "prediction failed"));
            tracing::info!("after the request");
        });
        let mut direct = String::new();
        access_line(&mut direct, &scope(), 200, Duration::from_micros(21)).unwrap();
        let text = String::from_utf8(captured.0.lock().unwrap().clone()).unwrap() + &direct;
        let mut lines: Vec<serde_json::Value> =
            text.lines().map(|l| serde_json::from_str(l).unwrap()).collect();
        for line in &mut lines {
            let timestamp = line["timestamp"].take();
            let timestamp = timestamp.as_str().unwrap();
            assert!(timestamp.len() == 27 && timestamp.ends_with('Z'), "{timestamp}");
        }
        assert_eq!(lines.len(), 6, "{text}");
        let span = serde_json::json!({"request_id": "r-\"1", "method": "POST", "path": "/predict", "name": "request"});
        assert_eq!(lines[0]["span"], span, "before the future yields");
        assert_eq!(lines[1]["span"], span, "after it yields");
        assert_eq!(lines[0], lines[3], "as a tracing span would be written");
        assert!(lines[4].get("span").is_none(), "{}", lines[4]);
        assert_eq!(lines[5], lines[2], "the closing line, written directly and through tracing");
        assert_eq!(lines[5]["latency"], "21 μs");
        assert_eq!(lines[5]["target"], ACCESS_LOG_TARGET);
    }

    /// The cached date and time of day are those of the second being written.
    #[test]
    fn timestamps_are_rfc3339_with_microseconds() {
        let written = |micros: u64| {
            let time = std::time::UNIX_EPOCH + Duration::from_micros(micros);
            let mut text = String::new();
            write_timestamp(&mut Writer::new(&mut text), time).unwrap();
            assert_eq!(text, humantime::format_rfc3339_micros(time).to_string());
        };
        for micros in
            [1_764_657_183_672_664, 1_764_657_183_999_999, 1_764_657_184_000_000, 1_764_657_183_000_001]
        {
            written(micros);
        }
    }
}
