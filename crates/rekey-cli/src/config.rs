//! Owns the user's profile: where it lives (`$REKEY_CONFIG_DIR`, else `$XDG_CONFIG_HOME/rekey`, else
//! `~/.config/rekey`), what it holds (endpoint, token, chosen subscription), and writing it so that
//! only the user can read it (directory 0700, file 0600, replaced atomically). `REKEY_ENDPOINT` and
//! `REKEY_TOKEN` override what it holds, so CI jobs need no file at all.

use std::path::{Path, PathBuf};

use serde::{Deserialize, Serialize};

use crate::error::CliError;

const PROFILE_FILE: &str = "profile.json";

/// What `rekey login` stores. Not Debug: it holds the token.
#[derive(Clone, Default, Serialize, Deserialize)]
#[serde(rename_all = "camelCase")]
pub struct Profile {
    #[serde(default)]
    pub endpoint: Option<String>,
    #[serde(default)]
    pub token: Option<String>,
    /// The subscription commands use unless `--subscription` says otherwise (`rekey account set`).
    #[serde(default)]
    pub subscription_id: Option<String>,
    /// PEM bundle of extra certificate authorities, for a rekeyd with a private CA.
    #[serde(default)]
    pub ca_file: Option<PathBuf>,
}

/// The directory of the profile; `None` when no variable names a home for it.
pub fn config_dir() -> Option<PathBuf> {
    let from = |name: &str| std::env::var_os(name).filter(|v| !v.is_empty());
    if let Some(dir) = from("REKEY_CONFIG_DIR") {
        return Some(dir.into());
    }
    if let Some(dir) = from("XDG_CONFIG_HOME") {
        return Some(PathBuf::from(dir).join("rekey"));
    }
    from("HOME").map(|home| PathBuf::from(home).join(".config").join("rekey"))
}

fn profile_path() -> Result<PathBuf, CliError> {
    config_dir().map(|d| d.join(PROFILE_FILE)).ok_or_else(|| {
        CliError::Other(
            "Cannot find a configuration directory: set REKEY_CONFIG_DIR or HOME.".into(),
        )
    })
}

impl Profile {
    /// The stored profile; an absent file is an empty profile.
    pub fn load() -> Result<Self, CliError> {
        let Some(dir) = config_dir() else {
            return Ok(Self::default());
        };
        let path = dir.join(PROFILE_FILE);
        match std::fs::read_to_string(&path) {
            Ok(text) => serde_json::from_str(&text).map_err(|e| {
                CliError::Other(format!(
                    "The profile {} is not valid ({e}); run `rekey login` again.",
                    path.display()
                ))
            }),
            Err(e) if e.kind() == std::io::ErrorKind::NotFound => Ok(Self::default()),
            Err(e) => Err(CliError::Other(format!(
                "Cannot read the profile {}: {e}",
                path.display()
            ))),
        }
    }

    /// Writes the profile readable by its owner only, replacing the old one in one step.
    pub fn save(&self) -> Result<PathBuf, CliError> {
        let path = profile_path()?;
        let dir = path.parent().expect("the profile path has a directory");
        let io = |e: std::io::Error, what: &Path| {
            CliError::Other(format!("Cannot write {}: {e}", what.display()))
        };
        create_private_dir(dir).map_err(|e| io(e, dir))?;
        let text = serde_json::to_string_pretty(self).expect("a profile serializes");
        let tmp = dir.join(format!(".{PROFILE_FILE}.{}", std::process::id()));
        // A leftover from a crashed run would make the exclusive create below fail.
        let _ = std::fs::remove_file(&tmp);
        write_private(&tmp, text.as_bytes()).map_err(|e| io(e, &tmp))?;
        std::fs::rename(&tmp, &path).map_err(|e| io(e, &path))?;
        Ok(path)
    }

    /// Removes the stored profile; true when there was one.
    pub fn remove() -> Result<bool, CliError> {
        let path = profile_path()?;
        match std::fs::remove_file(&path) {
            Ok(()) => Ok(true),
            Err(e) if e.kind() == std::io::ErrorKind::NotFound => Ok(false),
            Err(e) => Err(CliError::Other(format!(
                "Cannot remove {}: {e}",
                path.display()
            ))),
        }
    }
}

#[cfg(unix)]
fn create_private_dir(dir: &Path) -> std::io::Result<()> {
    use std::os::unix::fs::DirBuilderExt;
    std::fs::DirBuilder::new()
        .recursive(true)
        .mode(0o700)
        .create(dir)
}

#[cfg(not(unix))]
fn create_private_dir(dir: &Path) -> std::io::Result<()> {
    std::fs::create_dir_all(dir)
}

#[cfg(unix)]
fn write_private(path: &Path, bytes: &[u8]) -> std::io::Result<()> {
    use std::io::Write as _;
    use std::os::unix::fs::OpenOptionsExt;
    // The mode is set at creation, so the token is never readable by others, not even briefly.
    let mut file = std::fs::OpenOptions::new()
        .write(true)
        .create_new(true)
        .mode(0o600)
        .open(path)?;
    file.write_all(bytes)?;
    file.sync_all()
}

#[cfg(not(unix))]
fn write_private(path: &Path, bytes: &[u8]) -> std::io::Result<()> {
    std::fs::write(path, bytes)
}
