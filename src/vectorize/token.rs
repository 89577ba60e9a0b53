//! The API token: read from a file only its owner can read, kept out of
//! every log line and error message.

use std::fmt;
use std::path::{Path, PathBuf};

use anyhow::{bail, Context, Result};

/// A bearer token. `Debug` and `Display` never show it.
#[derive(Clone)]
pub struct Token(String);

impl fmt::Debug for Token {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str("Token(<redacted>)")
    }
}

impl Token {
    /// A token given directly (tests, the stand-in).
    pub fn new(secret: &str) -> Result<Self> {
        let secret = secret.trim();
        if secret.is_empty() {
            bail!("the API token is empty");
        }
        // A space, a control character or a non-ASCII byte would break the
        // header (or inject another); the message must not echo the token.
        if !secret.bytes().all(|b| b.is_ascii_graphic()) {
            bail!("the API token contains spaces, control or non-ASCII characters");
        }
        Ok(Self(secret.to_string()))
    }

    /// The `Authorization` header value.
    pub(crate) fn bearer(&self) -> String {
        format!("Bearer {}", self.0)
    }

    /// Reads the token named by `token_file`: an absolute path, or a bare
    /// name in `$CREDENTIALS_DIRECTORY` (systemd's `LoadCredential=`).
    /// A file that group or others can read or write is refused.
    pub fn from_config(token_file: &Path) -> Result<Self> {
        let path = resolve(token_file, std::env::var_os("CREDENTIALS_DIRECTORY"))?;
        Self::from_file(&path)
    }

    pub fn from_file(path: &Path) -> Result<Self> {
        check_private(path)?;
        let text = std::fs::read_to_string(path)
            .with_context(|| format!("reading the API token file {}", path.display()))?;
        Self::new(&text).with_context(|| format!("the API token file {}", path.display()))
    }
}

fn resolve(token_file: &Path, credentials: Option<std::ffi::OsString>) -> Result<PathBuf> {
    if token_file.is_absolute() {
        return Ok(token_file.to_path_buf());
    }
    match credentials {
        Some(dir) => Ok(PathBuf::from(dir).join(token_file)),
        None => bail!(
            "vectorize.token_file is {:?}, a credential name, but $CREDENTIALS_DIRECTORY is not \
             set (run under systemd with LoadCredential=, or give an absolute path)",
            token_file
        ),
    }
}

#[cfg(unix)]
fn check_private(path: &Path) -> Result<()> {
    use std::os::unix::fs::PermissionsExt;
    let meta = std::fs::metadata(path)
        .with_context(|| format!("reading the API token file {}", path.display()))?;
    if !meta.is_file() {
        bail!("the API token file {} is not a file", path.display());
    }
    let mode = meta.permissions().mode() & 0o777;
    if mode & 0o077 != 0 {
        bail!(
            "the API token file {} has mode {mode:03o}: other users could read the token; \
             refusing it (run `chmod 600 {}`)",
            path.display(),
            path.display()
        );
    }
    Ok(())
}

#[cfg(not(unix))]
fn check_private(_path: &Path) -> Result<()> {
    Ok(())
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn a_token_never_shows_in_debug_output() {
        let t = Token::new("s3cret-token-value\n").unwrap();
        assert_eq!(format!("{t:?}"), "Token(<redacted>)");
        assert_eq!(t.bearer(), "Bearer s3cret-token-value");
    }

    #[test]
    fn a_token_with_spaces_is_refused_without_echoing_it() {
        let err = Token::new("abc def").unwrap_err().to_string();
        assert!(!err.contains("abc"), "{err}");
    }

    #[test]
    fn a_relative_token_file_is_a_credential_name() {
        let p = resolve(
            Path::new("vectorize-token"),
            Some("/run/creds/doorman".into()),
        )
        .unwrap();
        assert_eq!(p, Path::new("/run/creds/doorman/vectorize-token"));
        let err = resolve(Path::new("vectorize-token"), None)
            .unwrap_err()
            .to_string();
        assert!(err.contains("CREDENTIALS_DIRECTORY"), "{err}");
        assert_eq!(
            resolve(Path::new("/etc/t"), Some("/x".into())).unwrap(),
            Path::new("/etc/t")
        );
    }
}
