//! Checking the registry's TLS certificate, and saying in words why one
//! was refused.
//!
//! Roots: the system's (rustls-platform-verifier), or only the PEM bundle
//! of `--os-cacert`. A certificate that is itself in that bundle is
//! trusted as curl and Python (OpenSSL) trust it, even when it is a CA
//! certificate (`CA:TRUE`, the usual self-signed server certificate) that
//! webpki refuses as an end entity (`CaUsedAsEndEntity`): its dates and
//! the server name are still checked, and the handshake signature proves
//! that the server holds its key.

use rustls::client::WebPkiServerVerifier;
use rustls::client::danger::{HandshakeSignatureValid, ServerCertVerified, ServerCertVerifier};
use rustls::crypto::CryptoProvider;
use rustls::pki_types::{CertificateDer, ServerName, UnixTime};
use rustls::{CertificateError, DigitallySignedStruct, RootCertStore, SignatureScheme};
use std::sync::Arc;
use std::time::Duration;

/// How the server's certificate is checked.
pub enum Roots {
    /// The system's trust store.
    System,
    /// Only these certificates (`--os-cacert`).
    Bundle(Vec<CertificateDer<'static>>),
    /// No check at all (`--insecure`).
    Insecure,
}

/// A client certificate chain and its private key.
pub type Identity = (
    Vec<CertificateDer<'static>>,
    rustls::pki_types::PrivateKeyDer<'static>,
);

/// The rustls client configuration for `roots`, presenting `identity`
/// when the server asks for a client certificate.
pub fn client_config(
    roots: Roots,
    identity: Option<Identity>,
) -> Result<Arc<rustls::ClientConfig>, String> {
    let provider = Arc::new(rustls::crypto::ring::default_provider());
    let verifier: Arc<dyn ServerCertVerifier> = match roots {
        Roots::System => Arc::new(BundleVerifier {
            inner: Arc::new(
                rustls_platform_verifier::Verifier::new(provider.clone())
                    .map_err(|e| format!("cannot read the system's certificates: {e}"))?,
            ),
            pinned: Vec::new(),
        }),
        Roots::Bundle(certs) => {
            let mut store = RootCertStore::empty();
            let (added, _) = store.add_parsable_certificates(certs.iter().cloned());
            if added == 0 {
                return Err("no usable certificate in the file".to_string());
            }
            let inner =
                WebPkiServerVerifier::builder_with_provider(Arc::new(store), provider.clone())
                    .build()
                    .map_err(|e| e.to_string())?;
            Arc::new(BundleVerifier {
                inner,
                pinned: certs,
            })
        }
        Roots::Insecure => Arc::new(NoVerifier(provider.clone())),
    };
    let builder = rustls::ClientConfig::builder_with_provider(provider)
        .with_protocol_versions(rustls::ALL_VERSIONS)
        .map_err(|e| e.to_string())?
        .dangerous()
        .with_custom_certificate_verifier(verifier);
    let config = match identity {
        Some((chain, key)) => builder
            .with_client_auth_cert(chain, key)
            .map_err(|e| format!("--os-cert/--os-key: {e}"))?,
        None => builder.with_no_client_auth(),
    };
    Ok(Arc::new(config))
}

/// The system's verifier, or webpki with the bundle as roots, plus the
/// certificates of the bundle themselves accepted as the server's (see the
/// module comment).
#[derive(Debug)]
struct BundleVerifier {
    inner: Arc<dyn ServerCertVerifier>,
    pinned: Vec<CertificateDer<'static>>,
}

fn is_ca_used_as_end_entity(e: &rustls::Error) -> bool {
    match e {
        rustls::Error::InvalidCertificate(CertificateError::Other(o)) => matches!(
            o.0.downcast_ref::<webpki::Error>(),
            Some(webpki::Error::CaUsedAsEndEntity)
        ),
        _ => false,
    }
}

impl ServerCertVerifier for BundleVerifier {
    fn verify_server_cert(
        &self,
        end_entity: &CertificateDer<'_>,
        intermediates: &[CertificateDer<'_>],
        server_name: &ServerName<'_>,
        ocsp: &[u8],
        now: UnixTime,
    ) -> Result<ServerCertVerified, rustls::Error> {
        match self
            .inner
            .verify_server_cert(end_entity, intermediates, server_name, ocsp, now)
        {
            Err(e) if is_ca_used_as_end_entity(&e) => {
                if !self
                    .pinned
                    .iter()
                    .any(|p| p.as_ref() == end_entity.as_ref())
                {
                    // Not trusted itself, and no CA of the bundle can have
                    // signed a server certificate that is a CA: as OpenSSL
                    // says it, its issuer is unknown.
                    return Err(rustls::Error::InvalidCertificate(
                        CertificateError::UnknownIssuer,
                    ));
                }
                check_dates(end_entity, now)?;
                check_name(end_entity, server_name)?;
                Ok(ServerCertVerified::assertion())
            }
            other => other,
        }
    }

    fn verify_tls12_signature(
        &self,
        message: &[u8],
        cert: &CertificateDer<'_>,
        dss: &DigitallySignedStruct,
    ) -> Result<HandshakeSignatureValid, rustls::Error> {
        self.inner.verify_tls12_signature(message, cert, dss)
    }

    fn verify_tls13_signature(
        &self,
        message: &[u8],
        cert: &CertificateDer<'_>,
        dss: &DigitallySignedStruct,
    ) -> Result<HandshakeSignatureValid, rustls::Error> {
        self.inner.verify_tls13_signature(message, cert, dss)
    }

    fn supported_verify_schemes(&self) -> Vec<SignatureScheme> {
        self.inner.supported_verify_schemes()
    }
}

/// `--insecure`: any certificate (the handshake signature is still checked
/// against it, which costs nothing and proves nothing).
#[derive(Debug)]
struct NoVerifier(Arc<CryptoProvider>);

impl ServerCertVerifier for NoVerifier {
    fn verify_server_cert(
        &self,
        _: &CertificateDer<'_>,
        _: &[CertificateDer<'_>],
        _: &ServerName<'_>,
        _: &[u8],
        _: UnixTime,
    ) -> Result<ServerCertVerified, rustls::Error> {
        Ok(ServerCertVerified::assertion())
    }

    fn verify_tls12_signature(
        &self,
        message: &[u8],
        cert: &CertificateDer<'_>,
        dss: &DigitallySignedStruct,
    ) -> Result<HandshakeSignatureValid, rustls::Error> {
        rustls::crypto::verify_tls12_signature(
            message,
            cert,
            dss,
            &self.0.signature_verification_algorithms,
        )
    }

    fn verify_tls13_signature(
        &self,
        message: &[u8],
        cert: &CertificateDer<'_>,
        dss: &DigitallySignedStruct,
    ) -> Result<HandshakeSignatureValid, rustls::Error> {
        rustls::crypto::verify_tls13_signature(
            message,
            cert,
            dss,
            &self.0.signature_verification_algorithms,
        )
    }

    fn supported_verify_schemes(&self) -> Vec<SignatureScheme> {
        self.0.signature_verification_algorithms.supported_schemes()
    }
}

fn check_name(cert: &CertificateDer<'_>, name: &ServerName<'_>) -> Result<(), rustls::Error> {
    let ee = webpki::EndEntityCert::try_from(cert)
        .map_err(|_| rustls::Error::InvalidCertificate(CertificateError::BadEncoding))?;
    ee.verify_is_valid_for_subject_name(name).map_err(|e| {
        rustls::Error::InvalidCertificate(match e {
            webpki::Error::CertNotValidForName(ctx) => CertificateError::NotValidForNameContext {
                expected: ctx.expected,
                presented: ctx.presented,
            },
            _ => CertificateError::NotValidForName,
        })
    })
}

fn check_dates(cert: &CertificateDer<'_>, now: UnixTime) -> Result<(), rustls::Error> {
    let bad = || rustls::Error::InvalidCertificate(CertificateError::BadEncoding);
    let (not_before, not_after) = validity(cert.as_ref()).ok_or_else(bad)?;
    let t = now.as_secs();
    let at = |s: u64| UnixTime::since_unix_epoch(Duration::from_secs(s));
    if t < not_before {
        return Err(rustls::Error::InvalidCertificate(
            CertificateError::NotValidYetContext {
                time: now,
                not_before: at(not_before),
            },
        ));
    }
    if t > not_after {
        return Err(rustls::Error::InvalidCertificate(
            CertificateError::ExpiredContext {
                time: now,
                not_after: at(not_after),
            },
        ));
    }
    Ok(())
}

/// One DER element: (tag, contents, what follows).
fn der(input: &[u8]) -> Option<(u8, &[u8], &[u8])> {
    let (&tag, rest) = input.split_first()?;
    let (&first, rest) = rest.split_first()?;
    let (len, rest) = if first < 0x80 {
        (first as usize, rest)
    } else {
        let n = (first & 0x7f) as usize;
        if n == 0 || n > 4 || rest.len() < n {
            return None;
        }
        let len = rest[..n].iter().fold(0usize, |a, b| (a << 8) | *b as usize);
        (len, &rest[n..])
    };
    if rest.len() < len {
        return None;
    }
    Some((tag, &rest[..len], &rest[len..]))
}

/// (notBefore, notAfter) of a DER certificate, in seconds since 1970.
fn validity(cert: &[u8]) -> Option<(u64, u64)> {
    let (_, cert, _) = der(cert)?;
    let (_, tbs, _) = der(cert)?;
    let mut rest = tbs;
    // [0] version (optional), serialNumber, signature, issuer, validity.
    let (tag, _, r) = der(rest)?;
    if tag == 0xa0 {
        rest = r;
    }
    for _ in 0..3 {
        rest = der(rest)?.2;
    }
    let (_, validity, _) = der(rest)?;
    let (t1, nb, r) = der(validity)?;
    let (t2, na, _) = der(r)?;
    Some((der_time(t1, nb)?, der_time(t2, na)?))
}

/// UTCTime (YYMMDDHHMMSSZ) or GeneralizedTime (YYYYMMDDHHMMSSZ).
fn der_time(tag: u8, s: &[u8]) -> Option<u64> {
    let s = std::str::from_utf8(s).ok()?.strip_suffix('Z')?;
    let (year, s) = match tag {
        0x17 if s.len() == 12 => {
            let yy: i64 = s[..2].parse().ok()?;
            (if yy < 50 { 2000 + yy } else { 1900 + yy }, &s[2..])
        }
        0x18 if s.len() == 14 => (s[..4].parse().ok()?, &s[4..]),
        _ => return None,
    };
    let num = |i: usize| s.get(i..i + 2)?.parse::<i64>().ok();
    let (mon, day, h, m, sec) = (num(0)?, num(2)?, num(4)?, num(6)?, num(8)?);
    if !(1..=12).contains(&mon) || !(1..=31).contains(&day) || h > 23 || m > 59 || sec > 60 {
        return None;
    }
    let t = days_from_civil(year, mon, day) * 86400 + h * 3600 + m * 60 + sec;
    u64::try_from(t).ok()
}

/// Days since 1970-01-01 of a proleptic Gregorian date.
fn days_from_civil(y: i64, m: i64, d: i64) -> i64 {
    let y = if m <= 2 { y - 1 } else { y };
    let era = y.div_euclid(400);
    let yoe = y - era * 400;
    let mp = (m + 9) % 12;
    let doy = (153 * mp + 2) / 5 + d - 1;
    let doe = yoe * 365 + yoe / 4 - yoe / 100 + doy;
    era * 146097 + doe - 719468
}

/// `YYYY-MM-DD HH:MM:SS UTC` for seconds since 1970.
pub fn utc(secs: u64) -> String {
    let days = (secs / 86400) as i64;
    let rem = secs % 86400;
    // Inverse of days_from_civil.
    let z = days + 719468;
    let era = z.div_euclid(146097);
    let doe = z - era * 146097;
    let yoe = (doe - doe / 1460 + doe / 36524 - doe / 146096) / 365;
    let doy = doe - (365 * yoe + yoe / 4 - yoe / 100);
    let mp = (5 * doy + 2) / 153;
    let d = doy - (153 * mp + 2) / 5 + 1;
    let m = if mp < 10 { mp + 3 } else { mp - 9 };
    let y = yoe + era * 400 + i64::from(m <= 2);
    format!(
        "{y:04}-{m:02}-{d:02} {:02}:{:02}:{:02} UTC",
        rem / 3600,
        rem % 3600 / 60,
        rem % 60
    )
}

/// The names a certificate presents, as webpki lists them
/// (`DnsName("a.example")`, `IpAddress(10.0.0.1)`), without the wrapping.
fn names(presented: &[String]) -> String {
    let bare = |s: &String| -> String {
        match (s.find('('), s.strip_suffix(')')) {
            (Some(i), Some(inner)) if i < inner.len() => {
                inner[i + 1..].trim_matches('"').to_string()
            }
            _ => s.clone(),
        }
    };
    if presented.is_empty() {
        "no name at all".to_string()
    } else {
        presented.iter().map(bare).collect::<Vec<_>>().join(", ")
    }
}

fn server_name(n: &ServerName<'_>) -> String {
    match n {
        ServerName::DnsName(d) => d.as_ref().to_string(),
        ServerName::IpAddress(ip) => std::net::IpAddr::from(*ip).to_string(),
        _ => "the host".to_string(),
    }
}

/// Why the TLS connection to `host` failed, in words. Certificate
/// problems name the fix.
pub fn explain(e: &rustls::Error, host: &str) -> String {
    use CertificateError as C;
    let cert = |what: String| format!("TLS certificate of {host} refused: {what}");
    match e {
        rustls::Error::InvalidCertificate(c) => match c {
            C::UnknownIssuer => cert(
                "unknown issuer: it is not signed by a certificate authority this machine trusts \
                 (give the CA's certificate, or the server's own self-signed one, with \
                 --os-cacert; --insecure skips the check)"
                    .to_string(),
            ),
            C::ExpiredContext { time, not_after } => cert(format!(
                "expired on {} (it is now {})",
                utc(not_after.as_secs()),
                utc(time.as_secs())
            )),
            C::Expired => cert("expired".to_string()),
            C::NotValidYetContext { time, not_before } => cert(format!(
                "not valid before {} (it is now {}; check this machine's clock)",
                utc(not_before.as_secs()),
                utc(time.as_secs())
            )),
            C::NotValidYet => cert("not valid yet (check this machine's clock)".to_string()),
            C::NotValidForNameContext {
                expected,
                presented,
            } => cert(format!(
                "name mismatch: it is for {}, not for {}",
                names(presented),
                server_name(expected)
            )),
            C::NotValidForName => cert(format!("name mismatch: it is not valid for {host}")),
            C::Revoked => cert("revoked".to_string()),
            C::BadSignature => cert("its signature is invalid".to_string()),
            C::BadEncoding => cert("it is malformed".to_string()),
            C::InvalidPurpose | C::InvalidPurposeContext { .. } => {
                cert("it is not meant for a TLS server (extended key usage)".to_string())
            }
            C::UnsupportedSignatureAlgorithmContext { .. }
            | C::UnsupportedSignatureAlgorithmForPublicKeyContext { .. } => {
                cert("its signature algorithm is not supported".to_string())
            }
            C::Other(o) if is_ca_used_as_end_entity(e) => {
                let _ = o;
                cert(
                    "it is a CA certificate (CA:TRUE) used as the server's own; to trust it, \
                     give that very certificate with --os-cacert"
                        .to_string(),
                )
            }
            other => cert(format!("{other:?}")),
        },
        rustls::Error::AlertReceived(a) => {
            use rustls::AlertDescription as A;
            let why = match a {
                A::CertificateRequired => {
                    "it wants a client certificate: give it with --os-cert (OS_CERT) and \
                     --os-key (OS_KEY)"
                }
                A::BadCertificate
                | A::UnknownCA
                | A::CertificateExpired
                | A::CertificateRevoked
                | A::CertificateUnknown
                | A::UnsupportedCertificate
                | A::AccessDenied => "it refused the client certificate (--os-cert)",
                _ => "",
            };
            if why.is_empty() {
                format!("TLS handshake with {host} failed: the server sent the alert {a:?}")
            } else {
                format!("TLS handshake with {host} failed: {why} (alert {a:?})")
            }
        }
        other => format!("TLS handshake with {host} failed: {other}"),
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn dates() {
        let cases = [
            (0x17, "700101000000Z", Some(0)),
            (0x17, "491231235959Z", Some(2524607999)),
            (0x18, "20240229120000Z", Some(1709208000)),
            (0x17, "2402291200Z", None),
            (0x18, "20241301000000Z", None),
        ];
        for (tag, s, want) in cases {
            assert_eq!(der_time(tag, s.as_bytes()), want, "{s}");
        }
        assert_eq!(utc(1709208000), "2024-02-29 12:00:00 UTC");
        assert_eq!(utc(0), "1970-01-01 00:00:00 UTC");
    }

    #[test]
    fn presented_names() {
        let v = |x: &[&str]| x.iter().map(|s| s.to_string()).collect::<Vec<_>>();
        assert_eq!(
            names(&v(&["DnsName(\"a.example\")", "IpAddress(10.0.0.1)"])),
            "a.example, 10.0.0.1"
        );
        assert_eq!(names(&v(&["plain"])), "plain");
        assert_eq!(names(&[]), "no name at all");
    }

    #[test]
    fn truncated_der_is_refused() {
        for input in [
            &b""[..],
            b"\x30",
            b"\x30\x85\x01\x01\x01\x01\x01",
            b"\x30\x05\x30",
        ] {
            assert_eq!(validity(input), None);
        }
    }
}
