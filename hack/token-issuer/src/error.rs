//! The crate's one error type: everything that can go wrong while creating, loading, minting
//! or serving, each variant naming the file, address or input at fault.

use std::net::SocketAddr;
use std::path::PathBuf;

/// Why an issuer could not be created, loaded, asked for a token, or served.
#[derive(Debug, thiserror::Error)]
pub enum Error {
    /// Reading, writing or creating a file or directory failed.
    #[error("{path}: {source}")]
    Io {
        /// The file or directory concerned.
        path: PathBuf,
        /// The underlying I/O error.
        #[source]
        source: std::io::Error,
    },
    /// `issuer.json` is not the JSON this crate writes.
    #[error("{path}: {source}")]
    Json {
        /// The file concerned.
        path: PathBuf,
        /// The underlying parse error.
        #[source]
        source: serde_json::Error,
    },
    /// The issuer URL is not `https://127.0.0.1:PORT[/PATH]` (the only shape this issuer serves).
    #[error("issuer URL {url:?}: {reason}")]
    Url {
        /// The URL as given.
        url: String,
        /// What is wrong with it.
        reason: String,
    },
    /// The tenant ID is empty or contains characters that cannot appear in a URL path segment.
    #[error("tenant {0:?}: must be a non-empty URL path segment (a GUID, for Entra ID)")]
    Tenant(String),
    /// A lifetime such as `30m`, `1h` or `90s` could not be parsed, or is not positive.
    #[error("lifetime {input:?}: {reason}")]
    Lifetime {
        /// The text as given.
        input: String,
        /// What is wrong with it.
        reason: String,
    },
    /// Generating, encoding or decoding the RSA signing key failed.
    #[error("RSA key: {0}")]
    Key(String),
    /// The operating system's random number generator failed.
    #[error("random number generator: {0}")]
    Random(String),
    /// Generating the CA or serving certificate failed.
    #[error("certificate: {0}")]
    Certificate(#[from] rcgen::Error),
    /// Signing a token failed.
    #[error("token: {0}")]
    Jwt(#[from] jsonwebtoken::errors::Error),
    /// The serving certificate or key was rejected by rustls.
    #[error("TLS configuration: {0}")]
    Tls(#[from] tokio_rustls::rustls::Error),
    /// A PEM file holds no certificate or no private key.
    #[error("{0}: no PEM-encoded {1} found")]
    Pem(PathBuf, &'static str),
    /// The listening socket could not be opened.
    #[error("cannot listen on {addr}: {source}")]
    Bind {
        /// The address asked for.
        addr: SocketAddr,
        /// The underlying I/O error.
        #[source]
        source: std::io::Error,
    },
}

impl Error {
    pub(crate) fn io(path: impl Into<PathBuf>) -> impl FnOnce(std::io::Error) -> Self {
        let path = path.into();
        move |source| Error::Io { path, source }
    }
}
