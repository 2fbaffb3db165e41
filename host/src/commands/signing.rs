//! `predict-host keygen` and `predict-host sign`: the publisher's side of plugin
//! signatures (see [`crate::artifact::signature`]).

use crate::artifact::sha256_hex;
use crate::artifact::signature::PluginSigner;
use crate::config::{KeygenArgs, SignArgs};
use anyhow::Context;
use std::io::Write;
use std::path::Path;

/// Writes a new private key (owner-only permissions, never overwriting) and prints the
/// public key in the form `PLUGIN_PUBLIC_KEY` takes.
pub fn keygen(args: KeygenArgs) -> anyhow::Result<()> {
    let signer = PluginSigner::generate();
    let mut options = std::fs::OpenOptions::new();
    options.write(true).create_new(true);
    #[cfg(unix)]
    std::os::unix::fs::OpenOptionsExt::mode(&mut options, 0o600);
    let mut file = options
        .open(&args.private_key)
        .with_context(|| format!("creating {} (it must not exist yet)", args.private_key.display()))?;
    file.write_all(signer.to_pem().as_bytes())?;
    println!("{}", signer.public_key().to_base64());
    eprintln!(
        "private key written to {}; set PLUGIN_PUBLIC_KEY on hosts to the line above",
        args.private_key.display()
    );
    Ok(())
}

/// Signs a plugin file: writes the signature to `<plugin>.sig` and prints it.
pub fn sign(args: SignArgs) -> anyhow::Result<()> {
    let signer = read_signer(&args.key)?;
    let bytes = std::fs::read(&args.plugin).with_context(|| format!("reading {}", args.plugin.display()))?;
    let signature = signer.sign(&sha256_hex(&bytes));
    let mut target = args.plugin.clone().into_os_string();
    target.push(".sig");
    std::fs::write(&target, format!("{signature}\n")).with_context(|| format!("writing {target:?}"))?;
    println!("{signature}");
    Ok(())
}

/// Reads a private key file.
pub fn read_signer(path: &Path) -> anyhow::Result<PluginSigner> {
    let text = std::fs::read_to_string(path).with_context(|| format!("reading {}", path.display()))?;
    PluginSigner::parse(&text).with_context(|| format!("{} is not an ed25519 private key", path.display()))
}
