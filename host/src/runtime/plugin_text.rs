//! Text a plugin controls (its error messages, the labels it answers, what its trap
//! reports), bounded before it reaches a response, a log line or `/model/info`: a plugin
//! that answers with a 10 MiB message must not make a 10 MiB error body or log line.

use std::fmt;

/// The most bytes of one plugin text that are kept; the rest is replaced by a marker
/// that says how long the text was.
pub const PLUGIN_TEXT_LIMIT: usize = 4096;

/// A plugin's text, cut to [`PLUGIN_TEXT_LIMIT`] bytes (at a character boundary) with
/// `… [cut: N bytes in all]` after it when it was longer.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct PluginText(String);

impl PluginText {
    pub fn new(text: impl Into<String>) -> Self {
        let mut text = text.into();
        if text.len() > PLUGIN_TEXT_LIMIT {
            let total = text.len();
            let cut = (0..=PLUGIN_TEXT_LIMIT).rev().find(|&i| text.is_char_boundary(i)).unwrap_or(0);
            text.truncate(cut);
            text.push_str(&format!("… [cut: {total} bytes in all]"));
            text.shrink_to_fit();
        }
        Self(text)
    }

    pub fn as_str(&self) -> &str {
        &self.0
    }
}

impl fmt::Display for PluginText {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(&self.0)
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn long_text_is_cut_at_a_character_boundary_with_its_length() {
        assert_eq!(PluginText::new("short").as_str(), "short");
        let exact = "x".repeat(PLUGIN_TEXT_LIMIT);
        assert_eq!(PluginText::new(exact.clone()).as_str(), exact);
        // 'é' is two bytes: the cut falls inside one and moves back before it.
        let long = format!("{}é{}", "x".repeat(PLUGIN_TEXT_LIMIT - 1), "y".repeat(10 << 20));
        let cut = PluginText::new(long.clone());
        assert!(cut.as_str().starts_with(&"x".repeat(PLUGIN_TEXT_LIMIT - 1)));
        assert!(cut.as_str().ends_with(&format!("… [cut: {} bytes in all]", long.len())));
        assert!(cut.as_str().len() < PLUGIN_TEXT_LIMIT + 64);
    }
}
