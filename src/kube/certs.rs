//! The webhook's TLS material, made without cert-manager or openssl: a self-signed CA (its
//! certificate becomes the webhook configuration's `caBundle`) and a serving certificate it
//! signs for the webhook Service's DNS names. Re-running the generation rotates both.

use rcgen::{
    BasicConstraints, CertificateParams, DistinguishedName, DnType, ExtendedKeyUsagePurpose, IsCa,
    Issuer, KeyPair, KeyUsagePurpose,
};
use time::{Duration, OffsetDateTime};

/// The CA's common name, shown by `openssl x509 -noout -subject` on the `caBundle`.
pub const CA_COMMON_NAME: &str = "lxcfs-rs webhook CA";

/// How long the CA is valid: long, since rotating it means rewriting the webhook
/// configuration's `caBundle` too.
const CA_VALIDITY: Duration = Duration::days(3650);

/// How long the serving certificate is valid: shorter than the CA, so a re-run of the
/// generation well before the CA expires always yields a leaf the CA still covers.
const LEAF_VALIDITY: Duration = Duration::days(1826);

/// Clock skew between the machine that generates and the apiserver that verifies: a
/// certificate dated "now" would be rejected by a server whose clock is a little behind.
const BACKDATE: Duration = Duration::hours(1);

/// A CA and a serving certificate it signed, all PEM.
#[derive(Clone)]
pub struct Certs {
    /// The CA certificate (the webhook configuration's `caBundle`, base64 of this PEM).
    pub ca_pem: String,
    /// The serving certificate (`tls.crt` of the webhook's Secret).
    pub cert_pem: String,
    /// The serving certificate's private key, PKCS#8 (`tls.key` of the webhook's Secret).
    pub key_pem: String,
}

/// Without the private key: a `{:?}` in a log or a failed assertion must not leak it.
impl std::fmt::Debug for Certs {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("Certs")
            .field("ca_pem", &self.ca_pem)
            .field("cert_pem", &self.cert_pem)
            .field("key_pem", &"(private key)")
            .finish()
    }
}

/// Why certificates could not be made.
#[derive(Debug, thiserror::Error)]
pub enum CertError {
    /// A serving certificate needs at least one name the apiserver connects to.
    #[error("no DNS name given for the webhook's serving certificate")]
    NoNames,
    /// A name no TLS client could ask for (not a DNS name or IP address).
    #[error("{0:?} is not a valid DNS name or IP address")]
    BadName(String),
    /// A name is not a valid DNS name, or key generation or signing failed.
    #[error("generating the webhook certificates")]
    Rcgen(#[from] rcgen::Error),
}

/// Generates a fresh CA (CN [`CA_COMMON_NAME`], 10 years, may only sign certificates) and a
/// serving certificate for `dns_names` (subject alternative names, server authentication
/// only, about 5 years) signed by it. Keys are ECDSA P-256, which every apiserver accepts.
pub fn generate(dns_names: &[String]) -> Result<Certs, CertError> {
    if dns_names.is_empty() {
        return Err(CertError::NoNames);
    }
    // rcgen only checks that names are ASCII; a name a client cannot send as SNI would give
    // a certificate nothing ever matches.
    if let Some(bad) = dns_names
        .iter()
        .find(|n| rustls::pki_types::ServerName::try_from(n.as_str()).is_err())
    {
        return Err(CertError::BadName(bad.clone()));
    }
    let now = OffsetDateTime::now_utc();

    let ca_key = KeyPair::generate()?;
    let mut ca = CertificateParams::new(Vec::<String>::new())?;
    ca.distinguished_name = DistinguishedName::new();
    ca.distinguished_name
        .push(DnType::CommonName, CA_COMMON_NAME);
    // pathlen 0: this CA signs serving certificates only, never another CA.
    ca.is_ca = IsCa::Ca(BasicConstraints::Constrained(0));
    ca.key_usages = vec![KeyUsagePurpose::KeyCertSign, KeyUsagePurpose::CrlSign];
    ca.not_before = now - BACKDATE;
    ca.not_after = now + CA_VALIDITY;
    let ca_cert = ca.self_signed(&ca_key)?;

    let leaf_key = KeyPair::generate()?;
    let mut leaf = CertificateParams::new(dns_names.to_vec())?;
    leaf.distinguished_name = DistinguishedName::new();
    leaf.distinguished_name
        .push(DnType::CommonName, dns_names[0].as_str());
    leaf.is_ca = IsCa::ExplicitNoCa;
    leaf.key_usages = vec![KeyUsagePurpose::DigitalSignature];
    leaf.extended_key_usages = vec![ExtendedKeyUsagePurpose::ServerAuth];
    leaf.use_authority_key_identifier_extension = true;
    leaf.not_before = now - BACKDATE;
    leaf.not_after = now + LEAF_VALIDITY;
    let issuer = Issuer::new(ca, ca_key);
    let leaf_cert = leaf.signed_by(&leaf_key, &issuer)?;

    Ok(Certs {
        ca_pem: ca_cert.pem(),
        cert_pem: leaf_cert.pem(),
        key_pem: leaf_key.serialize_pem(),
    })
}

#[cfg(test)]
mod tests {
    use std::sync::Arc;

    use rustls::RootCertStore;
    use rustls::client::WebPkiServerVerifier;
    use rustls::client::danger::ServerCertVerifier;
    use rustls::pki_types::pem::PemObject;
    use rustls::pki_types::{CertificateDer, ServerName, UnixTime};

    use super::*;

    const NAME: &str = "lxcfs-rs-webhook.lxcfs-rs.svc";

    fn verifier(ca_pem: &str) -> Arc<WebPkiServerVerifier> {
        let mut roots = RootCertStore::empty();
        roots
            .add(CertificateDer::from_pem_slice(ca_pem.as_bytes()).unwrap())
            .unwrap();
        WebPkiServerVerifier::builder_with_provider(
            Arc::new(roots),
            Arc::new(rustls::crypto::ring::default_provider()),
        )
        .build()
        .unwrap()
    }

    fn verify(ca_pem: &str, cert_pem: &str, name: &str) -> Result<(), rustls::Error> {
        let leaf = CertificateDer::from_pem_slice(cert_pem.as_bytes()).unwrap();
        verifier(ca_pem)
            .verify_server_cert(
                &leaf,
                &[],
                &ServerName::try_from(name.to_string()).unwrap(),
                &[],
                UnixTime::now(),
            )
            .map(|_| ())
    }

    #[test]
    fn the_leaf_verifies_against_its_ca_for_its_names_only() {
        let names = vec![NAME.to_string(), "lxcfs-rs-webhook".to_string()];
        let certs = generate(&names).unwrap();
        verify(&certs.ca_pem, &certs.cert_pem, NAME).unwrap();
        verify(&certs.ca_pem, &certs.cert_pem, "lxcfs-rs-webhook").unwrap();
        let other = verify(&certs.ca_pem, &certs.cert_pem, "other.lxcfs-rs.svc").unwrap_err();
        assert!(
            matches!(
                other,
                rustls::Error::InvalidCertificate(rustls::CertificateError::NotValidForName)
                    | rustls::Error::InvalidCertificate(
                        rustls::CertificateError::NotValidForNameContext { .. }
                    )
            ),
            "{other:?}"
        );
        // The private key is the leaf's, in the PKCS#8 form rustls loads.
        rustls::pki_types::PrivateKeyDer::from_pem_slice(certs.key_pem.as_bytes()).unwrap();
    }

    #[test]
    fn debug_leaves_the_key_out() {
        let certs = generate(&[NAME.to_string()]).unwrap();
        let shown = format!("{certs:?}");
        assert!(
            !shown.contains("PRIVATE KEY") && shown.contains("CERTIFICATE"),
            "{shown}"
        );
    }

    #[test]
    fn another_generation_is_another_ca() {
        let names = vec![NAME.to_string()];
        let (a, b) = (generate(&names).unwrap(), generate(&names).unwrap());
        assert_ne!(a.ca_pem, b.ca_pem);
        assert!(verify(&b.ca_pem, &a.cert_pem, NAME).is_err());
    }

    #[test]
    fn bad_names_are_errors() {
        assert!(matches!(generate(&[]), Err(CertError::NoNames)));
        for bad in ["bad name", "a..b", "", "-x.svc."] {
            assert!(
                matches!(generate(&[NAME.to_string(), bad.to_string()]), Err(CertError::BadName(n)) if n == bad),
                "{bad:?}"
            );
        }
    }
}
