//! A schema-driven fuzzer (schemathesis) against the real binary, driven by its own
//! `/openapi.json`: no server error, and no answer that is off the spec (status, content
//! type, headers, body schema), and malformed input always refused.

use crate::EXCLUSIVE;
use crate::process::{HostProcess, env_of, run_tool, write_file};
use std::time::Duration;

const TOKEN: &str = "fuzz-test-token";

#[tokio::test]
async fn a_schema_driven_fuzzer_finds_no_server_error_and_no_answer_off_the_spec() {
    let _exclusive = EXCLUSIVE.lock().await;
    let host = HostProcess::start(&env_of(&[("ADMIN_TOKEN", TOKEN)]));
    host.wait_ready(Duration::from_secs(30)).await;
    let schema = host.url("/openapi.json");
    let auth = format!("Authorization: Bearer {TOKEN}");
    // Path parameters that reach real resources, beside the generated ones. Malformed
    // input may also be refused as too large (413: a batch past MAX_BATCH_ROWS can be
    // past MAX_BODY_BYTES too, and is then refused before it is read).
    let scratch = tempfile::tempdir().unwrap();
    let config = concat!(
        "[parameters]\n\"path.name\" = \"price-sensitivity\"\n\"path.file\" = \"swagger-ui.css\"\n",
        "[checks.negative_data_rejection]\nexpected-statuses = [\"400\", \"401\", \"403\", \"404\", \"405\", \"406\", ",
        "\"409\", \"413\", \"415\", \"422\", \"428\", \"429\"]\n",
    );
    let config = write_file(scratch.path(), "schemathesis.toml", config.as_bytes());
    let report = tokio::task::spawn_blocking(move || {
        run_tool(
            "schemathesis",
            &[
                "--config-file",
                &config,
                "run",
                &schema,
                "--checks",
                "not_a_server_error,status_code_conformance,content_type_conformance,\
                 response_headers_conformance,response_schema_conformance,negative_data_rejection",
                "--max-examples",
                "25",
                "--seed",
                "20261129",
                "--header",
                &auth,
                "--no-color",
            ],
        )
    })
    .await
    .unwrap();
    println!(
        "{}",
        report.lines().rev().take(12).collect::<Vec<_>>().into_iter().rev().collect::<Vec<_>>().join("\n")
    );
}
