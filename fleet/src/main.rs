//! `emotion-fleet`: the operator's and data scientist's side of model updates.
//!
//! ```text
//! emotion-fleet keygen --out DIR                      fleet.key (secret) + fleet.pub
//! emotion-fleet model pack PKG_DIR --out FILE.empkg   one archive, SHA-256 of every file inside
//! emotion-fleet model sign FILE --key fleet.key       FILE.sig
//! emotion-fleet model verify FILE --key fleet.pub     checks the hash, the signature, every file
//! emotion-fleet model inspect FILE                    the index and the manifest
//! emotion-fleet model import MODEL.tflite|.onnx --task expression|detector --name N --version V
//!     [--labels a,b,..] --input-range 0..1|-1..1|0..255 --out DIR   your own model → package folder
//! emotion-fleet endorse --key fleet.key --new NEW.pub --out NEW.endorsement   key rotation
//! emotion-fleet rollout FILE --slot S (--device ID | --group G) (--url URL | --chunks)
//!     [--allow-downgrade]
//! emotion-fleet rollback --slot S (--device ID | --group G)
//!     (both: --key fleet.key | --unsigned, [--expires-in SECS] [--seq N]
//!      [--endorsement FILE], --host H --port P [--username U --password P] [--mqtt-tls]
//!      [--mqtt-ca FILE] [--mqtt-cert FILE --mqtt-key FILE])
//! emotion-fleet serve [--data DIR] [--db postgres://...] [--http ADDR] [--mqtt-host H] ...
//! emotion-fleet simulate --devices N --summaries M [--postcard-every K] ...
//! emotion-fleet demo [--once]                         broker + backend + simulated devices
//! ```
//! Output: one JSON object per line. Exit code 1 when a check fails, 2 on bad input.
//!
//! It depends on `emotiond-wire` (package format, signatures, topics, the desired-state
//! message), not on any inference engine: `model import`, which must run the model, is the
//! binary `emotion-fleet-import` (crate `fleet-import`), run with the arguments given here.
//!
//! Length: ~560 lines: the clap definitions of every subcommand (mostly documentation) and
//! the thin calls into the modules that do the work.
#![forbid(unsafe_code)]

mod rollouts;
mod server;

use anyhow::{Context, Result, bail};
use clap::{Parser, Subcommand};
use emotiond_wire::order::{self, Endorsement};
use emotiond_wire::signed::{self, SetMessage, SignatureFile, Slot};
use emotiond_wire::topics;
use std::path::{Path, PathBuf};
use std::process::ExitCode;
use std::time::Duration;

#[derive(Parser)]
#[command(
    name = "emotion-fleet",
    version,
    about = "emotiond fleet tools: keys, signed model packages, rollouts"
)]
struct Cli {
    #[command(subcommand)]
    cmd: Cmd,
}

#[derive(Subcommand)]
enum Cmd {
    /// Make an Ed25519 signing key pair: DIR/fleet.key (secret, mode 0600) and DIR/fleet.pub.
    Keygen {
        #[arg(long)]
        out: PathBuf,
        /// Replace existing key files.
        #[arg(long)]
        force: bool,
    },
    /// Model packages.
    #[command(subcommand)]
    Model(ModelCmd),
    /// Publish a desired state (retained) telling devices to install a signed package.
    Rollout {
        /// The archive; its `.sig` must be beside it.
        package: PathBuf,
        #[arg(long)]
        slot: Slot,
        #[arg(long, conflicts_with = "group")]
        device: Option<String>,
        #[arg(long)]
        group: Option<String>,
        /// Where devices download the archive.
        #[arg(long, conflicts_with = "chunks")]
        url: Option<String>,
        /// Publish the archive itself in retained chunks over MQTT.
        #[arg(long)]
        chunks: bool,
        /// Bytes per chunk, 1 KiB to 192 KiB (devices accept MQTT packets up to 256 KiB).
        #[arg(long, default_value_t = 128 * 1024)]
        chunk_size: usize,
        /// Install even if the package's release is below the highest a device accepted
        /// (an operator's downgrade; needs a signed order).
        #[arg(long)]
        allow_downgrade: bool,
        #[command(flatten)]
        signing: Signing,
        #[command(flatten)]
        broker: Broker,
    },
    /// Endorse a new signing key with a trusted one (key rotation): orders carrying the
    /// endorsement (`--endorsement`) make devices trust the new key.
    Endorse {
        /// The trusted (current) secret key.
        #[arg(long)]
        key: PathBuf,
        /// The new public key.
        #[arg(long)]
        new: PathBuf,
        #[arg(long)]
        out: PathBuf,
    },
    /// Staged rollouts through the backend's API: create, list, status, pause, resume, abort.
    #[command(subcommand)]
    Rollouts(rollouts::RolloutsCmd),
    /// The fleet backend: ingest every device's data, store it, API and live dashboard.
    Serve(server::ServeArgs),
    /// Simulated devices publishing real payloads (the load tool of tests and benches).
    Simulate(server::SimArgs),
    /// The backend with its own broker and simulated devices: the dashboard fills up live.
    Demo(server::DemoArgs),
    /// Order devices back to the previous model of a slot.
    Rollback {
        #[arg(long)]
        slot: Slot,
        #[arg(long, conflicts_with = "group")]
        device: Option<String>,
        #[arg(long)]
        group: Option<String>,
        #[command(flatten)]
        signing: Signing,
        #[command(flatten)]
        broker: Broker,
    },
}

/// How an order is signed.
#[derive(clap::Args)]
struct Signing {
    /// The operator's secret key (`keygen`): the order is signed (devices require it by
    /// default: `updates.require_signed_orders`).
    #[arg(long, required_unless_present = "unsigned")]
    key: Option<PathBuf>,
    /// Publish an unsigned order, for devices with `require_signed_orders = false`.
    #[arg(long, conflicts_with_all = ["key", "expires_in", "seq", "endorsement"])]
    unsigned: bool,
    /// Devices refuse the order this many seconds after it is signed (reason `expired`).
    #[arg(long)]
    expires_in: Option<u64>,
    /// The order counter (default: the time of signing in ms): a device refuses an order
    /// below the last one it followed for the slot (reason `replayed`).
    #[arg(long)]
    seq: Option<u64>,
    /// A key endorsement (`endorse`) to carry: devices that trust its endorser trust the key.
    #[arg(long)]
    endorsement: Option<PathBuf>,
}

impl Signing {
    /// The payload of `msg` for `topic`, signed (for that topic only) unless `--unsigned`.
    fn payload(&self, mut msg: SetMessage, topic: &str) -> Result<Vec<u8>> {
        let Some(key) = &self.key else {
            return Ok(serde_json::to_vec(&msg)?);
        };
        let key =
            signed::parse_secret(&read_text(key)?).with_context(|| format!("{}", key.display()))?;
        let now = std::time::SystemTime::now();
        let now_ms = now.duration_since(std::time::UNIX_EPOCH)?.as_millis() as u64;
        msg.expires_at_ms = self.expires_in.map(|s| now_ms + s * 1000);
        msg.seq = self.seq;
        msg.topic = Some(topic.to_string());
        if let Some(e) = &self.endorsement {
            let e: Endorsement = serde_json::from_slice(&read(e)?)
                .with_context(|| format!("{} is not an endorsement", e.display()))?;
            msg.endorsement = Some(e);
        }
        Ok(order::signed_order(&msg, &key, now))
    }
}

#[derive(clap::Args)]
struct Broker {
    #[arg(long, default_value = "localhost")]
    host: String,
    #[arg(long, default_value_t = 1883)]
    port: u16,
    #[arg(long)]
    username: Option<String>,
    #[arg(long)]
    password: Option<String>,
    #[arg(long, default_value = "emotiond")]
    topic_prefix: String,
    #[command(flatten)]
    tls: server::TlsArgs,
}

#[derive(Subcommand)]
enum ModelCmd {
    /// Pack a package folder (manifest.toml, model files, vectors) into one archive.
    Pack {
        dir: PathBuf,
        #[arg(long)]
        out: PathBuf,
    },
    /// Sign an archive: writes FILE.sig.
    Sign {
        package: PathBuf,
        #[arg(long)]
        key: PathBuf,
    },
    /// Check an archive's SHA-256 and signature and every file in it.
    Verify {
        package: PathBuf,
        /// Trusted public key file(s).
        #[arg(long, required = true)]
        key: Vec<PathBuf>,
        /// Signature file (default: FILE.sig).
        #[arg(long)]
        sig: Option<PathBuf>,
    },
    /// Print the index and the manifest.
    Inspect { package: PathBuf },
    /// Make a package folder from your own model: shapes checked for the task, test vectors
    /// computed by its own runtime or the pure-Rust engine, a PROVENANCE.md to fill in. Runs
    /// `emotion-fleet-import` (beside this binary, or on PATH) with these arguments; `model
    /// import --help` lists them.
    #[command(disable_help_flag = true)]
    Import {
        #[arg(trailing_var_arg = true, allow_hyphen_values = true, num_args = 0..)]
        args: Vec<std::ffi::OsString>,
    },
}

fn sig_path(p: &Path) -> PathBuf {
    let mut s = p.as_os_str().to_owned();
    s.push(".sig");
    PathBuf::from(s)
}

fn read(p: &Path) -> Result<Vec<u8>> {
    std::fs::read(p).with_context(|| format!("cannot read {}", p.display()))
}

fn read_text(p: &Path) -> Result<String> {
    std::fs::read_to_string(p).with_context(|| format!("cannot read {}", p.display()))
}

fn print(v: serde_json::Value) {
    use std::io::Write;
    // A closed pipe (`| head`) is not an error worth a panic.
    let _ = writeln!(std::io::stdout(), "{v}");
}

fn keygen(out: &Path, force: bool) -> Result<()> {
    std::fs::create_dir_all(out).with_context(|| format!("cannot create {}", out.display()))?;
    let (sk, pk) = (out.join("fleet.key"), out.join("fleet.pub"));
    if !force && (sk.exists() || pk.exists()) {
        bail!(
            "{} already holds a key (use --force to replace it)",
            out.display()
        );
    }
    let key = signed::generate_key()?;
    let mut opts = std::fs::OpenOptions::new();
    opts.write(true).create(true).truncate(true);
    #[cfg(unix)]
    std::os::unix::fs::OpenOptionsExt::mode(&mut opts, 0o600);
    let mut f = opts
        .open(&sk)
        .with_context(|| format!("cannot write {}", sk.display()))?;
    std::io::Write::write_all(
        &mut f,
        format!("{}\n", hex::encode(key.to_bytes())).as_bytes(),
    )?;
    f.sync_all()?;
    let public = hex::encode(key.verifying_key().as_bytes());
    std::fs::write(&pk, format!("{public}\n"))?;
    print(serde_json::json!({
        "key_id": signed::key_id(&key.verifying_key()), "public": public,
        "secret_file": sk.display().to_string(), "public_file": pk.display().to_string(),
    }));
    Ok(())
}

fn verify(package: &Path, keys: &[PathBuf], sig: Option<&Path>) -> Result<bool> {
    let archive = read(package)?;
    let trusted = keys
        .iter()
        .map(|k| Ok(signed::parse_public(&read_text(k)?)?))
        .collect::<Result<Vec<_>>>()?;
    let sp = sig
        .map(Path::to_path_buf)
        .unwrap_or_else(|| sig_path(package));
    let sigf: Option<SignatureFile> = match std::fs::read(&sp) {
        Ok(b) => Some(
            serde_json::from_slice(&b)
                .with_context(|| format!("{} is not a signature file", sp.display()))?,
        ),
        Err(e) if e.kind() == std::io::ErrorKind::NotFound => None,
        Err(e) => return Err(e).with_context(|| format!("cannot read {}", sp.display())),
    };
    let result = signed::verify(&archive, sigf.as_ref(), &trusted)
        .and_then(|_| signed::open(&archive).map(|_| ()))
        .and_then(|_| {
            let (_, files) = signed::open(&archive)?;
            signed::package_from_files(&package.display().to_string(), &files)
                .map(|_| ())
                .map_err(|e| signed::SignedError::Corrupt(e.to_string()))
        });
    match result {
        Ok(()) => {
            print(
                serde_json::json!({"ok": true, "package": package.display().to_string(), "sha256": signed::sha256_hex(&archive)}),
            );
            Ok(true)
        }
        Err(e) => {
            print(
                serde_json::json!({"ok": false, "package": package.display().to_string(), "reason": e.code(), "detail": e.to_string()}),
            );
            Ok(false)
        }
    }
}

fn inspect(package: &Path) -> Result<()> {
    let archive = read(package)?;
    let (index, files) = signed::open(&archive)?;
    let manifest = files
        .iter()
        .find(|(p, _)| p == "manifest.toml")
        .map(|(_, b)| String::from_utf8_lossy(b).into_owned())
        .unwrap_or_default();
    let m: toml::Value =
        toml::from_str(&manifest).unwrap_or(toml::Value::Table(Default::default()));
    print(serde_json::json!({
        "sha256": signed::sha256_hex(&archive), "size": archive.len(), "index": index,
        "release": release_of(&archive),
        "manifest": m, "signed": sig_path(package).exists(),
    }));
    Ok(())
}

/// The manifest's release number (null: a package without one, release 0 to a device).
fn release_of(archive: &[u8]) -> Option<u64> {
    let (_, files) = signed::open(archive).ok()?;
    let pkg = signed::package_from_files("archive", &files).ok()?;
    pkg.manifest.release
}

fn client(b: &Broker) -> Result<(rumqttc::Client, rumqttc::Connection)> {
    let client_id = format!("emotion-fleet-{}", std::process::id());
    // the backend's options: TLS (the files read here, so a missing one fails at once)
    let mut o = emotion_fleet_server::mqtt::MqttConfig {
        host: b.host.clone(),
        port: b.port,
        prefix: b.topic_prefix.clone(),
        client_id: client_id.clone(),
        share_group: String::new(),
        username: None,
        password: None,
        tls: b.tls.clone().into_tls(),
    }
    .options(&client_id)?;
    o.set_keep_alive(Duration::from_secs(10));
    o.set_max_packet_size(1 << 20, 1 << 20);
    if let Some(u) = &b.username {
        o.set_credentials(u.clone(), b.password.clone().unwrap_or_default());
    }
    Ok(rumqttc::Client::new(o, 64))
}

/// Publish `msgs` (retained, QoS 1) and wait until the broker acknowledged each.
fn publish_all(b: &Broker, msgs: Vec<(String, Vec<u8>)>) -> Result<()> {
    let (client, mut conn) = client(b)?;
    let n = msgs.len();
    std::thread::spawn(move || {
        for (t, p) in msgs {
            if client
                .publish(t, rumqttc::QoS::AtLeastOnce, true, p)
                .is_err()
            {
                break;
            }
        }
    });
    let mut acked = 0;
    for ev in conn.iter() {
        match ev {
            Ok(rumqttc::Event::Incoming(rumqttc::Packet::PubAck(_))) => {
                acked += 1;
                if acked == n {
                    return Ok(());
                }
            }
            Ok(_) => {}
            Err(e) => bail!("broker {}:{}: {e}", b.host, b.port),
        }
    }
    bail!("connection to {}:{} ended", b.host, b.port)
}

fn set_topic(b: &Broker, device: &Option<String>, group: &Option<String>) -> Result<String> {
    match (device, group) {
        (Some(d), None) => Ok(topics::Topics::new(&b.topic_prefix, d).models_set),
        (None, Some(g)) => Ok(topics::group_models_set(&b.topic_prefix, g)),
        _ => bail!("name --device or --group"),
    }
}

fn run() -> Result<ExitCode> {
    let cli = Cli::parse();
    match cli.cmd {
        Cmd::Keygen { out, force } => keygen(&out, force)?,
        Cmd::Model(ModelCmd::Pack { dir, out }) => {
            let (archive, index) = signed::pack(&dir)?;
            std::fs::write(&out, &archive)
                .with_context(|| format!("cannot write {}", out.display()))?;
            print(serde_json::json!({
                "package": out.display().to_string(), "name": index.name, "version": index.version,
                "release": release_of(&archive),
                "sha256": signed::sha256_hex(&archive), "size": archive.len(), "files": index.files.len(),
            }));
        }
        Cmd::Model(ModelCmd::Sign { package, key }) => {
            let archive = read(&package)?;
            signed::open(&archive).context("refusing to sign an archive that does not open")?;
            let key = signed::parse_secret(&read_text(&key)?)?;
            let sig = signed::sign(&archive, &key);
            let sp = sig_path(&package);
            std::fs::write(&sp, serde_json::to_vec_pretty(&sig)?)?;
            print(serde_json::json!({
                "signature_file": sp.display().to_string(), "sha256": sig.sha256,
                "key_id": sig.key_id, "release": release_of(&archive),
            }));
        }
        Cmd::Model(ModelCmd::Verify { package, key, sig }) => {
            if !verify(&package, &key, sig.as_deref())? {
                return Ok(ExitCode::from(1));
            }
        }
        Cmd::Model(ModelCmd::Inspect { package }) => inspect(&package)?,
        Cmd::Model(ModelCmd::Import { args }) => return run_import(&args),
        Cmd::Rollout {
            package,
            slot,
            device,
            group,
            url,
            chunks,
            chunk_size,
            allow_downgrade,
            signing,
            broker,
        } => {
            if allow_downgrade && signing.key.is_none() {
                bail!("--allow-downgrade needs a signed order (--key)");
            }
            let topic = set_topic(&broker, &device, &group)?;
            let archive = read(&package)?;
            let (index, _) = signed::open(&archive)?;
            if index.task != slot.task() {
                bail!(
                    "{} is a {:?} model; slot {} needs {:?}",
                    package.display(),
                    index.task,
                    slot.as_str(),
                    slot.task()
                );
            }
            let sig: SignatureFile = serde_json::from_slice(&read(&sig_path(&package))?)
                .context("the package's .sig file")?;
            let sha = signed::sha256_hex(&archive);
            let mut msgs = Vec::new();
            let (url, chunk_src) = match (url, chunks) {
                (Some(u), false) => (Some(u), None),
                (None, true) => {
                    // the backend's rollouts publish the same chunks
                    let (c, parts) = emotion_fleet_server::rollout::orders::chunk_messages(
                        &broker.topic_prefix,
                        &archive,
                        chunk_size,
                    );
                    msgs.extend(parts);
                    (None, Some(c))
                }
                _ => bail!("name --url URL or --chunks"),
            };
            let msg = SetMessage {
                slot,
                action: signed::Action::Install,
                name: Some(index.name.clone()),
                version: Some(index.version.clone()),
                sha256: Some(sha.clone()),
                size: Some(archive.len() as u64),
                key_id: Some(sig.key_id),
                signature: Some(sig.signature),
                url,
                chunks: chunk_src,
                allow_downgrade,
                ..SetMessage::new(slot, signed::Action::Install)
            };
            msgs.push((topic.clone(), signing.payload(msg, &topic)?));
            let n = msgs.len();
            publish_all(&broker, msgs)?;
            print(serde_json::json!({
                "topic": topic, "name": index.name, "version": index.version,
                "release": release_of(&archive), "sha256": sha, "messages": n,
                "signed_order": !signing.unsigned,
            }));
        }
        Cmd::Rollouts(c) => rollouts::run(c, print)?,
        Cmd::Serve(a) => server::serve(a)?,
        Cmd::Simulate(a) => server::simulate(a)?,
        Cmd::Demo(a) => server::demo(a)?,
        Cmd::Rollback {
            slot,
            device,
            group,
            signing,
            broker,
        } => {
            let topic = set_topic(&broker, &device, &group)?;
            let msg = signing.payload(SetMessage::new(slot, signed::Action::Rollback), &topic)?;
            publish_all(&broker, vec![(topic.clone(), msg)])?;
            print(serde_json::json!({
                "topic": topic, "slot": slot, "action": "rollback",
                "signed_order": !signing.unsigned,
            }));
        }
        Cmd::Endorse { key, new, out } => {
            let by = signed::parse_secret(&read_text(&key)?)
                .with_context(|| format!("{}", key.display()))?;
            let new_key = signed::parse_public(&read_text(&new)?)
                .with_context(|| format!("{}", new.display()))?;
            let e = order::endorse(&new_key, &by);
            std::fs::write(&out, serde_json::to_vec_pretty(&e)?)
                .with_context(|| format!("cannot write {}", out.display()))?;
            print(serde_json::json!({
                "endorsement_file": out.display().to_string(),
                "key_id": signed::key_id(&new_key), "endorsed_by": e.by,
            }));
        }
    }
    Ok(ExitCode::SUCCESS)
}

/// `model import`: the `emotion-fleet-import` binary beside this one (as installed, and as
/// cargo builds them), else on PATH, with the same arguments; its exit code is ours.
fn run_import(args: &[std::ffi::OsString]) -> Result<ExitCode> {
    const NAME: &str = "emotion-fleet-import";
    let beside = std::env::current_exe()
        .ok()
        .map(|p| p.with_file_name(NAME))
        .filter(|p| p.is_file());
    let bin = beside.unwrap_or_else(|| PathBuf::from(NAME));
    let status = std::process::Command::new(&bin).args(args).status();
    match status {
        Ok(s) => Ok(ExitCode::from(s.code().map_or(2, |c| c as u8))),
        Err(e) if e.kind() == std::io::ErrorKind::NotFound => anyhow::bail!(
            "model import needs the {NAME} binary (beside emotion-fleet or on PATH), which \
             this installation lacks: cargo build --release -p emotion-fleet-import"
        ),
        Err(e) => Err(anyhow::anyhow!("{}: {e}", bin.display())),
    }
}

fn main() -> ExitCode {
    env_logger::Builder::from_env(
        env_logger::Env::default().default_filter_or("info,sqlx=warn,tract_linalg=warn"),
    )
    .init();
    match run() {
        Ok(c) => c,
        Err(e) => {
            eprintln!("emotion-fleet: {e:#}");
            ExitCode::from(2)
        }
    }
}
