//! TLS to the broker: rumqttc's transport (rustls) built from `mqtt.ca_file`, `mqtt.cert_file`
//! and `mqtt.key_file`, which are read and checked when the daemon starts (a bad file is a
//! config error there, naming the key and the file), and what a failed handshake means in
//! words, with what to change (`emotiond check` and the log).
//!
//! The broker's certificate must be signed by the CA in `ca_file` (or one in the system
//! bundle) and be for `mqtt.host` (a name or address in its subjectAltName).

use crate::config::{MqttConfig, SYSTEM_CA_FILE};
use rumqttc::tokio_rustls::rustls::{
    self, AlertDescription, CertificateError, ClientConfig, RootCertStore,
};
use rumqttc::{ConnectionError, Transport};
use rustls::pki_types::pem::PemObject;
use rustls::pki_types::{CertificateDer, PrivateKeyDer};
use std::path::Path;

/// A TLS file the daemon cannot use: the key that names it, and why (the path included).
#[derive(Debug, thiserror::Error)]
#[error("config `mqtt.{key}`: {why}")]
pub struct FileError {
    pub key: &'static str,
    pub why: String,
}

/// The CA file trusted: `mqtt.ca_file`, or the system bundle when it is unset.
pub fn ca_path(cfg: &MqttConfig) -> &Path {
    MqttConfig::file(&cfg.ca_file).unwrap_or(Path::new(SYSTEM_CA_FILE))
}

fn read(key: &'static str, path: &Path) -> Result<Vec<u8>, FileError> {
    std::fs::read(path).map_err(|e| FileError {
        key,
        why: format!("cannot read {}: {e}", path.display()),
    })
}

/// rumqttc's TLS transport for `cfg`; `None` when `mqtt.tls` is off. Every file is read and
/// parsed here, as rustls will at each connection.
pub fn transport(cfg: &MqttConfig) -> Result<Option<Transport>, FileError> {
    if !cfg.tls {
        return Ok(None);
    }
    let ca_file = ca_path(cfg);
    let ca = read("ca_file", ca_file)?;
    let mut roots = RootCertStore::empty();
    let (added, _) =
        roots.add_parsable_certificates(CertificateDer::pem_slice_iter(&ca).filter_map(Result::ok));
    if added == 0 {
        return Err(FileError {
            key: "ca_file",
            why: format!("{} holds no CA certificate (PEM)", ca_file.display()),
        });
    }
    let client_auth = match (
        MqttConfig::file(&cfg.cert_file),
        MqttConfig::file(&cfg.key_file),
    ) {
        (Some(cert_file), Some(key_file)) => {
            let cert = read("cert_file", cert_file)?;
            let key = read("key_file", key_file)?;
            let certs: Vec<_> = CertificateDer::pem_slice_iter(&cert)
                .filter_map(Result::ok)
                .collect();
            if certs.is_empty() {
                return Err(FileError {
                    key: "cert_file",
                    why: format!("{} holds no certificate (PEM)", cert_file.display()),
                });
            }
            let parsed = PrivateKeyDer::from_pem_slice(&key).map_err(|_| FileError {
                key: "key_file",
                why: format!(
                    "{} holds no private key (PEM: PKCS#8, SEC1 or PKCS#1)",
                    key_file.display()
                ),
            })?;
            // what rustls does with them at each connection: an unsupported key fails here
            ClientConfig::builder()
                .with_root_certificates(roots)
                .with_client_auth_cert(certs, parsed)
                .map_err(|e| FileError {
                    key: "key_file",
                    why: format!("{}: not a usable key: {e}", key_file.display()),
                })?;
            Some((cert, key))
        }
        _ => None,
    };
    Ok(Some(Transport::tls(ca, client_auth, None)))
}

/// The rustls error behind a failed connection, if any (rumqttc wraps it in its TLS error or
/// in an I/O error, whose `source` skips the error it carries).
fn rustls_error(e: &ConnectionError) -> Option<&rustls::Error> {
    let mut cur: Option<&(dyn std::error::Error + 'static)> = Some(e);
    while let Some(x) = cur {
        if let Some(r) = x.downcast_ref::<rustls::Error>() {
            return Some(r);
        }
        cur = match x
            .downcast_ref::<std::io::Error>()
            .and_then(|io| io.get_ref())
        {
            Some(inner) => Some(inner),
            None => x.source(),
        };
    }
    None
}

/// The broker closed (or reset) the connection: `Some(true)` during the TLS handshake,
/// `Some(false)` after it (or without TLS), before it answered.
fn closed(e: &ConnectionError) -> Option<bool> {
    use std::io::ErrorKind::*;
    let (io, handshake) = match e {
        ConnectionError::Io(io) => (io, false),
        ConnectionError::Tls(rumqttc::TlsError::Io(io)) => (io, true),
        _ => return None,
    };
    matches!(
        io.kind(),
        UnexpectedEof | ConnectionReset | ConnectionAborted | BrokenPipe
    )
    .then_some(handshake)
}

/// What a failed connection means for TLS, in words with what to change; `None` when it says
/// nothing about TLS (a refused port, a wrong password: the caller's hint covers those).
pub fn explain(e: &ConnectionError, cfg: &MqttConfig) -> Option<String> {
    let ca = match MqttConfig::file(&cfg.ca_file) {
        Some(p) => format!("mqtt.ca_file ({})", p.display()),
        None => format!("a CA of the system bundle {SYSTEM_CA_FILE} (mqtt.ca_file is unset)"),
    };
    let client_cert = MqttConfig::file(&cfg.cert_file);
    let Some(r) = rustls_error(e) else {
        if matches!(e, ConnectionError::Tls(rumqttc::TlsError::DNSName(_))) {
            return Some(format!(
                "{:?} is not a host name or address TLS can check (mqtt.host)",
                cfg.host
            ));
        }
        let handshake = closed(e)?;
        return Some(match (cfg.tls, client_cert) {
            (true, _) if handshake => format!(
                "the broker closed the connection during the TLS handshake: is port {} its TLS \
                 listener (often 8883)?",
                cfg.port
            ),
            (true, None) => "the broker closed the connection: if it requires a client \
                             certificate, set mqtt.cert_file and mqtt.key_file"
                .to_string(),
            (true, Some(c)) => format!(
                "the broker closed the connection: is the client certificate mqtt.cert_file \
                 ({}) signed by a CA the broker trusts?",
                c.display()
            ),
            (false, _) => format!(
                "the broker closed the connection: if port {} is a TLS listener, set mqtt.tls = true",
                cfg.port
            ),
        });
    };
    use CertificateError as C;
    Some(match r {
        rustls::Error::InvalidCertificate(C::UnknownIssuer | C::BadSignature) => {
            format!("the broker's certificate is not signed by {ca}")
        }
        rustls::Error::InvalidCertificate(C::Expired) => {
            "the broker's certificate has expired (or this device's clock is wrong)".to_string()
        }
        rustls::Error::InvalidCertificate(C::NotValidYet) => {
            "the broker's certificate is not valid yet: is this device's clock set?".to_string()
        }
        rustls::Error::InvalidCertificate(C::NotValidForName) => format!(
            "the certificate is not for {}: mqtt.host must be a name or address in the broker \
             certificate's subjectAltName",
            cfg.host
        ),
        rustls::Error::InvalidCertificate(C::Revoked) => {
            "the broker's certificate is revoked".to_string()
        }
        rustls::Error::InvalidCertificate(C::InvalidPurpose) => {
            "the broker's certificate is not for a TLS server (its extendedKeyUsage)".to_string()
        }
        rustls::Error::InvalidCertificate(other) => {
            format!("the broker's certificate is refused ({other:?})")
        }
        rustls::Error::AlertReceived(a) => match (a, client_cert) {
            (AlertDescription::CertificateRequired | AlertDescription::HandshakeFailure, None) => {
                "the broker requires a client certificate: set mqtt.cert_file and mqtt.key_file"
                    .to_string()
            }
            (
                AlertDescription::BadCertificate
                | AlertDescription::UnknownCA
                | AlertDescription::CertificateUnknown
                | AlertDescription::CertificateExpired
                | AlertDescription::CertificateRevoked
                | AlertDescription::UnsupportedCertificate
                | AlertDescription::CertificateRequired
                | AlertDescription::AccessDenied,
                Some(c),
            ) => format!(
                "the broker refused this device's client certificate mqtt.cert_file ({}) \
                 ({a:?}): is it signed by a CA the broker trusts, still valid, and for client \
                 authentication?",
                c.display()
            ),
            (a, _) => format!("the broker ended the TLS handshake ({a:?})"),
        },
        rustls::Error::InvalidMessage(_) | rustls::Error::InappropriateMessage { .. } => format!(
            "the broker does not speak TLS on port {}: is mqtt.port its TLS listener (often 8883)?",
            cfg.port
        ),
        other => format!("TLS: {other}"),
    })
}

#[cfg(test)]
mod tests {
    use super::*;

    fn tls_cfg(dir: &Path) -> MqttConfig {
        MqttConfig {
            tls: true,
            ca_file: Some(dir.join("ca.pem")),
            ..MqttConfig::default()
        }
    }

    #[test]
    fn unusable_files_are_named_with_their_key() {
        let d = tempfile::tempdir().unwrap();
        let err = |c: &MqttConfig| transport(c).err().unwrap().to_string();
        let mut c = tls_cfg(d.path());
        let e = err(&c);
        assert!(
            e.starts_with("config `mqtt.ca_file`: cannot read ") && e.contains("ca.pem"),
            "{e}"
        );
        std::fs::write(d.path().join("ca.pem"), "not a certificate\n").unwrap();
        let e = err(&c);
        assert!(
            e.contains("`mqtt.ca_file`") && e.contains("holds no CA"),
            "{e}"
        );
        c.tls = false;
        assert!(transport(&c).unwrap().is_none(), "no TLS: no file is read");
    }

    #[test]
    fn handshake_failures_are_explained() {
        let cfg = MqttConfig {
            tls: true,
            host: "broker.example".into(),
            ca_file: Some("/etc/emotiond/ca.pem".into()),
            ..MqttConfig::default()
        };
        let as_io = |r: rustls::Error| {
            ConnectionError::Io(std::io::Error::new(std::io::ErrorKind::InvalidData, r))
        };
        let tls_io = |r: rustls::Error| {
            ConnectionError::Tls(rumqttc::TlsError::Io(std::io::Error::new(
                std::io::ErrorKind::InvalidData,
                r,
            )))
        };
        let x = |e: ConnectionError| explain(&e, &cfg).unwrap();
        assert!(
            x(tls_io(rustls::Error::InvalidCertificate(C::UnknownIssuer)))
                .contains("not signed by mqtt.ca_file (/etc/emotiond/ca.pem)")
        );
        assert!(
            x(tls_io(rustls::Error::InvalidCertificate(
                C::NotValidForName
            )))
            .contains("the certificate is not for broker.example")
        );
        assert!(x(tls_io(rustls::Error::InvalidCertificate(C::Expired))).contains("expired"));
        assert!(
            x(as_io(rustls::Error::AlertReceived(
                AlertDescription::CertificateRequired
            )))
            .contains("requires a client certificate: set mqtt.cert_file and mqtt.key_file")
        );
        let refused = ConnectionError::ConnectionRefused(rumqttc::ConnectReturnCode::NotAuthorized);
        assert_eq!(explain(&refused, &cfg), None);
    }

    use CertificateError as C;
}
