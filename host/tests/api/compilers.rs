//! Winch's code and Cranelift's: a swapped-in version serves Winch's code until its
//! Cranelift code is ready, so both must give the same answers and the same faults.

use super::columns::{summary, varied_rows};
use plugin_artifacts::{PRICE_SENSITIVITY_WASM, fixtures};
use predict_host::runtime::{CallError, Compiler, Field, Plugin, Runtime, SandboxLimits, Value};
use std::time::Duration;

fn prepare(bytes: &[u8], compiler: Compiler) -> Plugin {
    let limits =
        SandboxLimits::DEFAULT.with_call_timeout(Duration::from_millis(300)).with_concurrent_calls(2);
    let runtime = Runtime::new(limits, None).expect("runtime");
    let plugin = runtime.prepare(bytes, "test", "test", compiler).expect("plugin");
    assert_eq!(plugin.compiler(), compiler);
    plugin.set_serving(true);
    plugin
}

#[tokio::test]
async fn winch_code_answers_as_cranelift_code_and_a_plugin_adopts_new_code_in_place() {
    let winch = prepare(PRICE_SENSITIVITY_WASM, Compiler::Winch);
    let cranelift = prepare(PRICE_SENSITIVITY_WASM, Compiler::Cranelift);
    let info = cranelift.info().await.expect("info");
    assert_eq!(winch.info().await.expect("info").labels, info.labels);
    let rows = varied_rows(&info, 600);
    let expected = summary(&cranelift.predict_rows(&rows).await.expect("call").expect("answers"));
    assert_eq!(summary(&winch.predict_rows(&rows).await.expect("call").expect("answers")), expected);

    // The same plugin, now running Cranelift's code: the same answers.
    winch.adopt(prepare(PRICE_SENSITIVITY_WASM, Compiler::Cranelift));
    assert_eq!(winch.compiler(), Compiler::Cranelift);
    assert_eq!(summary(&winch.predict_rows(&rows).await.expect("call").expect("answers")), expected);
}

#[tokio::test]
async fn every_fault_is_caught_in_winch_code_as_in_cranelift_code() {
    let bytes = std::fs::read(fixtures::MISBEHAVE).expect("fixture");
    let row = |action: &str| vec![vec![Field { name: "action".into(), value: Value::Text(action.into()) }]];
    for compiler in [Compiler::Cranelift, Compiler::Winch] {
        let plugin = prepare(&bytes, compiler);
        for action in ["spin", "trap", "grow", "recurse", "poison-trap"] {
            let outcome = plugin.predict_rows(&row(action)).await;
            let caught = match &outcome {
                Err(CallError::Timeout(_)) => action == "spin",
                Err(CallError::MemoryLimit(_)) => action == "grow",
                Err(CallError::Trap(_)) => ["trap", "recurse", "poison-trap"].contains(&action),
                _ => false,
            };
            assert!(caught, "{compiler:?}, {action}: {outcome:?}");
            let next = plugin.predict_rows(&row("ok")).await.expect("call").expect("answer");
            assert_eq!(next[0].label, "OK", "{compiler:?}: served after {action}");
        }
    }
}
