//! The text log line, for people at a terminal: tracing-subscriber's own format, with the
//! request being served (see [`super::request`]) written where a span would be.

use super::request;
use std::fmt;
use tracing::{Event, Subscriber};
use tracing_subscriber::fmt::format::{Format, Full, Writer};
use tracing_subscriber::fmt::time::{FormatTime, SystemTime};
use tracing_subscriber::fmt::{FmtContext, FormatEvent, FormatFields};
use tracing_subscriber::registry::LookupSpan;

/// Time, level, the request (if any), then the rest as tracing-subscriber writes it.
pub struct TextLine(Format<Full, ()>);

impl TextLine {
    pub fn new() -> Self {
        Self(tracing_subscriber::fmt::format().without_time().with_level(false))
    }
}

impl<S, N> FormatEvent<S, N> for TextLine
where
    S: Subscriber + for<'a> LookupSpan<'a>,
    N: for<'w> FormatFields<'w> + 'static,
{
    fn format_event(
        &self,
        ctx: &FmtContext<'_, S, N>,
        mut writer: Writer<'_>,
        event: &Event<'_>,
    ) -> fmt::Result {
        SystemTime.format_time(&mut writer)?;
        write!(writer, " {:>5} ", event.metadata().level())?;
        if ctx.lookup_current().is_none() {
            request::with_current(|request| write!(writer, "{request}: ")).unwrap_or(Ok(()))?;
        }
        self.0.format_event(ctx, writer, event)
    }
}
