//! `predict-host new-plugin DIR`: writes a plugin crate bound to this host's contract (a
//! copy of the repository's `wit/predictor.wit`), with a small working model to replace,
//! ready to build with `cargo build --release --target wasm32-wasip2`.

use crate::config::NewPluginArgs;
use anyhow::{Context, bail};
use std::path::Path;

/// The contract this binary serves.
const CONTRACT: &str = include_str!("../../../wit/predictor.wit");
/// The plugin source: `plugins/plugin-template`, which the workspace compiles and lints.
const TEMPLATE: &str = include_str!("../../../plugins/plugin-template/src/lib.rs");
/// The wit-bindgen the workspace pins (`Cargo.toml`), so the crate binds as the host's
/// own plugins do.
pub const WIT_BINDGEN_VERSION: &str = "0.61.1";

pub fn new_plugin(args: NewPluginArgs) -> anyhow::Result<()> {
    let dir = &args.dir;
    let name = match &args.name {
        Some(name) => name.clone(),
        None => dir.file_name().and_then(|n| n.to_str()).context("name the crate with --name")?.to_string(),
    };
    let valid = name.starts_with(|c: char| c.is_ascii_lowercase())
        && name.chars().all(|c| c.is_ascii_lowercase() || c.is_ascii_digit() || c == '-' || c == '_');
    if !valid {
        bail!(
            "{name:?} is not a crate name: lower-case letters, digits, '-' and '_', starting with a letter"
        );
    }
    if dir.exists() && std::fs::read_dir(dir)?.next().is_some() {
        bail!("{} exists and is not empty", dir.display());
    }
    write(dir, "Cargo.toml", &manifest(&name))?;
    write(dir, "src/lib.rs", TEMPLATE)?;
    write(dir, "wit/predictor.wit", CONTRACT)?;
    write(dir, ".gitignore", "/target\n")?;
    let wasm = format!("target/wasm32-wasip2/release/{}.wasm", name.replace('-', "_"));
    println!("created {} ({name})", dir.display());
    println!("build it:  cd {} && cargo build --release --target wasm32-wasip2", dir.display());
    println!("the plugin: {}/{wasm}", dir.display());
    println!(
        "serve it:  cp {wasm} <plugin dir>/{name}-1.wasm && predict-host serve --plugin-dir <plugin dir>"
    );
    Ok(())
}

fn manifest(name: &str) -> String {
    format!(
        r#"[package]
name = "{name}"
version = "0.1.0"
edition = "2024"

[lib]
crate-type = ["cdylib"]

[dependencies]
wit-bindgen = {{ version = "={WIT_BINDGEN_VERSION}", default-features = false, features = ["macros", "realloc"] }}

# Plugins ship small: no debug info, symbols stripped.
[profile.release]
debug = false
strip = true

# A crate of its own, even when created inside another workspace.
[workspace]
"#
    )
}

fn write(dir: &Path, file: &str, text: &str) -> anyhow::Result<()> {
    let path = dir.join(file);
    if let Some(parent) = path.parent() {
        std::fs::create_dir_all(parent).with_context(|| format!("creating {}", parent.display()))?;
    }
    std::fs::write(&path, text).with_context(|| format!("writing {}", path.display()))
}
