//! The pages say what the code does: the failure kinds the metrics documentation lists
//! are exactly those of the enums the host labels them with.

use predict_host::model::PluginFailureKind;
use predict_host::slot::LoadFailureKind;
use std::collections::BTreeSet;

/// The backquoted words in the last column of the row of `metric` in docs/operations.md.
fn documented_kinds(metric: &str) -> BTreeSet<String> {
    let page = concat!(env!("CARGO_MANIFEST_DIR"), "/../docs/operations.md");
    let text = std::fs::read_to_string(page).unwrap();
    let row = text
        .lines()
        .find(|l| l.starts_with('|') && l.contains(&format!("`{metric}`")))
        .unwrap_or_else(|| panic!("{metric} is not in {page}"));
    let last_column = row.trim_end_matches('|').rsplit('|').next().unwrap();
    last_column.split('`').skip(1).step_by(2).map(str::to_string).collect()
}

#[test]
fn the_metrics_page_lists_every_load_failure_kind_and_no_other() {
    let kinds: BTreeSet<String> = LoadFailureKind::ALL.iter().map(|k| k.as_str().to_string()).collect();
    assert_eq!(documented_kinds("model_load_failures_total"), kinds);
}

#[test]
fn the_metrics_page_lists_every_plugin_failure_kind_and_no_other() {
    let kinds: BTreeSet<String> = PluginFailureKind::ALL.iter().map(|k| k.as_str().to_string()).collect();
    assert_eq!(documented_kinds("plugin_call_failures_total"), kinds);
}
