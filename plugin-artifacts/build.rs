//! Builds the plugin crates as `wasm32-wasip2` components with a nested `cargo build`,
//! then copies them into `OUT_DIR` for `src/lib.rs` to embed or point at.
//!
//! The bundled price-sensitivity plugin and the ONNX runner (which `predict-host package`
//! turns into a plugin per model) are always built; the fault-injection fixtures
//! (the examples of `tests/fixtures`) only with the `fixtures` feature, so a release
//! host never carries them. The nested build gets its own target directory: sharing
//! the outer one would deadlock on cargo's lock.

use serde_json::Value;
use std::collections::BTreeMap;
use std::path::{Path, PathBuf};
use std::process::{Command, Stdio};
use std::{env, fs};

const TARGET: &str = "wasm32-wasip2";
const BUNDLED_PACKAGE: &str = "price-sensitivity";
const BUNDLED_TARGET: &str = "price_sensitivity";
const RUNNER_PACKAGE: &str = "onnx-runner";
const RUNNER_TARGET: &str = "onnx_runner";
/// The package whose examples are the fault-injection plugins.
const FIXTURES_PACKAGE: &str = "predictor-fixtures";

fn main() {
    let root = PathBuf::from(env::var_os("CARGO_MANIFEST_DIR").unwrap()).join("..");
    for watched in ["wit", "plugins", "tests/fixtures", "Cargo.lock"] {
        println!("cargo:rerun-if-changed={}", root.join(watched).display());
    }
    let out = PathBuf::from(env::var_os("OUT_DIR").unwrap());
    let with_fixtures = env::var_os("CARGO_FEATURE_FIXTURES").is_some();

    let mut packages = vec![BUNDLED_PACKAGE, RUNNER_PACKAGE];
    if with_fixtures {
        packages.push(FIXTURES_PACKAGE);
    }
    let built = cargo_build(&root, &out.join("wasm-target"), &packages);

    let bundled = &built.components[BUNDLED_TARGET];
    fs::copy(&bundled.path, out.join("price-sensitivity.wasm")).unwrap();
    fs::copy(&built.components[RUNNER_TARGET].path, out.join("onnx-runner.wasm")).unwrap();
    let trainer_out = &built.build_script_out[BUNDLED_PACKAGE];
    fs::copy(trainer_out.join("metrics.json"), out.join("price-sensitivity.metrics.json")).unwrap();

    let mut source = format!(
        "/// Version of the bundled plugin crate.\npub const PRICE_SENSITIVITY_VERSION: &str = {:?};\n",
        bundled.version
    );
    if with_fixtures {
        source
            .push_str("/// Fault-injection plugins: real components built from `tests/fixtures/examples`.\n");
        source.push_str("pub mod fixtures {\n");
        for component in built.components.values().filter(|c| c.package == FIXTURES_PACKAGE) {
            let constant = component.target.to_uppercase();
            let path = component.path.display().to_string();
            source.push_str(&format!("    pub const {constant}: &str = {path:?};\n"));
        }
        source.push_str("}\n");
    }
    fs::write(out.join("artifacts.rs"), source).unwrap();
}

struct Component {
    package: String,
    version: String,
    target: String,
    path: PathBuf,
}

struct Built {
    /// By target name (`price_sensitivity`, `spin_forever`, …).
    components: BTreeMap<String, Component>,
    /// Build-script `OUT_DIR`s, by package name.
    build_script_out: BTreeMap<String, PathBuf>,
}

/// Runs `cargo build --release --target wasm32-wasip2` for the libraries and examples of
/// `packages`, and reads the produced `.wasm` files and build-script output directories
/// from cargo's JSON messages.
fn cargo_build(root: &Path, target_dir: &Path, packages: &[&str]) -> Built {
    let cargo = env::var_os("CARGO").unwrap_or_else(|| "cargo".into());
    let mut cmd = Command::new(cargo);
    cmd.current_dir(root)
        .args(["build", "--release", "--locked", "--lib", "--examples"])
        .args(["--message-format=json-render-diagnostics", "--target", TARGET])
        .arg("--target-dir")
        .arg(target_dir)
        // Plugins ship small: no debug info, symbols stripped.
        .args(["--config", "profile.release.debug=false", "--config", "profile.release.strip=true"])
        // The outer build's flags and wrappers (clippy, coverage) are for the host target.
        .env_remove("CARGO_ENCODED_RUSTFLAGS")
        .env_remove("RUSTFLAGS")
        .env_remove("RUSTC_WORKSPACE_WRAPPER")
        .env_remove("RUSTC_WRAPPER")
        .env_remove("CARGO_TARGET_DIR")
        .env_remove("CARGO_BUILD_TARGET")
        .stdout(Stdio::piped())
        .stderr(Stdio::inherit());
    for package in packages {
        cmd.args(["--package", package]);
    }
    let output = cmd.output().expect("run cargo for the plugins");
    if !output.status.success() {
        panic!(
            "building plugins for {TARGET} failed (is the target installed? `rustup target add {TARGET}`)"
        );
    }

    let mut built = Built { components: BTreeMap::new(), build_script_out: BTreeMap::new() };
    for line in String::from_utf8_lossy(&output.stdout).lines() {
        let Ok(message) = serde_json::from_str::<Value>(line) else { continue };
        let Some((package, version)) = package_name_and_version(&message) else { continue };
        if !packages.contains(&package.as_str()) {
            continue;
        }
        match message["reason"].as_str() {
            Some("compiler-artifact") => {
                let files = message["filenames"].as_array().into_iter().flatten();
                let wasm = files.filter_map(Value::as_str).find(|f| f.ends_with(".wasm"));
                if let (Some(wasm), Some(target)) = (wasm, message["target"]["name"].as_str()) {
                    let component = Component { package, version, target: target.into(), path: wasm.into() };
                    built.components.insert(target.into(), component);
                }
            }
            Some("build-script-executed") => {
                if let Some(dir) = message["out_dir"].as_str() {
                    built.build_script_out.insert(package, PathBuf::from(dir));
                }
            }
            _ => {}
        }
    }
    built
}

/// The package name and version of a cargo JSON message, from its `package_id`
/// (`path+file:///…/dir#name@version`, or `…/name#version` when the directory is the name).
fn package_name_and_version(message: &Value) -> Option<(String, String)> {
    let id = message["package_id"].as_str()?;
    let (location, fragment) = id.rsplit_once('#')?;
    Some(match fragment.split_once('@') {
        Some((name, version)) => (name.to_string(), version.to_string()),
        None => (location.rsplit('/').next()?.to_string(), fragment.to_string()),
    })
}
