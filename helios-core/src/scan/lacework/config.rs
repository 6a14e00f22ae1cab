//! Where the client's settings come from: the builder, the environment and Lacework CLI profiles,
//! in the precedence the Lacework CLI itself uses.
//!
//! The Lacework CLI (lacework/go-sdk `cli/cmd/root.go`, `cli_state.go`) reads `~/.lacework.toml`,
//! picks the profile named by `--profile` or `LW_PROFILE` (else `default`), then lets `LW_*`
//! environment variables (and flags) override each value the profile set:
//!
//! 1. explicit settings ([`ClientBuilder`](super::ClientBuilder) methods; the CLI's flags),
//! 2. `LW_ACCOUNT`, `LW_SUBACCOUNT`, `LW_API_KEY`, `LW_API_SECRET`,
//! 3. the selected profile's `account`, `subaccount`, `api_key`, `api_secret`.
//!
//! A profile named explicitly must exist; a missing `default` profile is fine (environment
//! only). `LW_API_SERVER_URL`, which the CLI uses to point at another server, overrides the
//! URL derived from the account.

use std::collections::BTreeMap;
use std::path::{Path, PathBuf};

use serde::Deserialize;

use crate::error::{Error, Result};
use crate::http::Secret;

/// Settings read from the environment and a profile, before explicit builder overrides.
#[derive(Debug, Clone, Default)]
pub(super) struct Settings {
    pub account: Option<String>,
    pub subaccount: Option<String>,
    pub api_key: Option<String>,
    pub api_secret: Option<Secret>,
    pub server_url: Option<String>,
}

/// One profile of `~/.lacework.toml` (unknown keys such as `version` or `api_token` ignored).
/// `api_secret` is read straight into a [`Secret`], so `Debug` redacts it.
#[derive(Debug, Default, Deserialize)]
struct Profile {
    #[serde(default)]
    account: Option<String>,
    #[serde(default)]
    subaccount: Option<String>,
    #[serde(default)]
    api_key: Option<String>,
    #[serde(default)]
    api_secret: Option<Secret>,
}

/// The Lacework CLI's configuration file: `~/.lacework.toml` (`%USERPROFILE%` on Windows).
pub(super) fn default_profile_file(env: &dyn Fn(&str) -> Option<String>) -> Option<PathBuf> {
    env("HOME")
        .or_else(|| env("USERPROFILE"))
        .filter(|h| !h.is_empty())
        .map(|home| Path::new(&home).join(".lacework.toml"))
}

/// Resolves settings from `env` and the profile file, in the Lacework CLI's precedence.
///
/// `profile` names the profile explicitly (the CLI's `--profile`); otherwise `LW_PROFILE`, else
/// `default`.
pub(super) fn resolve(
    env: &dyn Fn(&str) -> Option<String>,
    profile_file: Option<&Path>,
    profile: Option<&str>,
) -> Result<Settings> {
    let var = |name: &str| env(name).filter(|v| !v.is_empty());
    let from_env = profile.is_none() && var("LW_PROFILE").is_some();
    let name = profile
        .map(str::to_string)
        .or_else(|| var("LW_PROFILE"))
        .unwrap_or_else(|| "default".to_string());
    let explicit = name != "default";

    let mut settings = Settings::default();
    let profiles = match profile_file {
        Some(path) => read_profiles(path)?,
        None => BTreeMap::new(),
    };
    match profiles.get(&name) {
        Some(p) => {
            let nonempty = |v: &Option<String>| v.clone().filter(|s| !s.is_empty());
            settings.account = nonempty(&p.account);
            settings.subaccount = nonempty(&p.subaccount);
            settings.api_key = nonempty(&p.api_key);
            settings.api_secret = p.api_secret.clone().filter(|s| !s.is_empty());
        }
        None if explicit => {
            // Suggest unsetting LW_PROFILE only when that is where the name came from; a name
            // given by the caller is theirs to correct.
            let or_unset = if from_env { " or unset LW_PROFILE" } else { "" };
            return Err(Error::invalid(
                "Lacework configuration",
                format!(
                    "profile {name:?} not found in {}; run `lacework configure --profile {name}`{or_unset}",
                    profile_file
                        .map_or_else(|| "~/.lacework.toml".into(), |p| p.display().to_string())
                ),
            ));
        }
        None => {}
    }

    if let Some(v) = var("LW_ACCOUNT") {
        settings.account = Some(v);
    }
    if let Some(v) = var("LW_SUBACCOUNT") {
        settings.subaccount = Some(v);
    }
    if let Some(v) = var("LW_API_KEY") {
        settings.api_key = Some(v);
    }
    if let Some(v) = var("LW_API_SECRET") {
        settings.api_secret = Some(Secret::new(v));
    }
    settings.server_url = var("LW_API_SERVER_URL");
    Ok(settings)
}

fn read_profiles(path: &Path) -> Result<BTreeMap<String, Profile>> {
    let text = match std::fs::read_to_string(path) {
        Ok(t) => t,
        // No file is the common case (environment-only configuration), as in the CLI.
        Err(e) if e.kind() == std::io::ErrorKind::NotFound => return Ok(BTreeMap::new()),
        Err(e) => return Err(Error::io(path, e)),
    };
    // Parse errors from `toml` quote the offending line, which may hold a secret: report only
    // where the problem is.
    toml::from_str(&text).map_err(|e| {
        let at = e
            .span()
            .map(|s| {
                format!(
                    " at line {}",
                    text[..s.start.min(text.len())].lines().count().max(1)
                )
            })
            .unwrap_or_default();
        Error::invalid(
            format!("Lacework profile file {}", path.display()),
            format!("not a valid Lacework CLI configuration{at}"),
        )
    })
}

#[cfg(test)]
mod tests {
    use super::*;
    use std::collections::HashMap;

    fn env_of(pairs: &[(&str, &str)]) -> impl Fn(&str) -> Option<String> + use<> {
        let map: HashMap<String, String> = pairs
            .iter()
            .map(|(k, v)| (k.to_string(), v.to_string()))
            .collect();
        move |k: &str| map.get(k).cloned()
    }

    fn profile_file(text: &str) -> Result<(tempdir::Dir, PathBuf)> {
        let dir = tempdir::Dir::new("profiles")?;
        let path = dir.path().join(".lacework.toml");
        std::fs::write(&path, text).map_err(|e| Error::io(&path, e))?;
        Ok((dir, path))
    }

    /// A throwaway directory removed on drop (no tempfile dependency for one test module).
    mod tempdir {
        use std::path::{Path, PathBuf};

        pub struct Dir(PathBuf);
        impl Dir {
            pub fn new(tag: &str) -> crate::Result<Self> {
                let path = std::env::temp_dir().join(format!(
                    "helios-{tag}-{}-{:?}",
                    std::process::id(),
                    std::thread::current().id()
                ));
                std::fs::create_dir_all(&path).map_err(|e| crate::Error::io(&path, e))?;
                Ok(Dir(path))
            }
            pub fn path(&self) -> &Path {
                &self.0
            }
        }
        impl Drop for Dir {
            fn drop(&mut self) {
                let _ = std::fs::remove_dir_all(&self.0);
            }
        }
    }

    const FILE: &str = r#"
[default]
account = "acme"
api_key = "ACME_KEY"
api_secret = "_acme_secret"
version = 2

[prod]
account = "prod"
subaccount = "team"
api_key = "PROD_KEY"
api_secret = "_prod_secret"
"#;

    #[test]
    fn a_profile_never_prints_its_secret() -> Result<()> {
        let dir = std::env::temp_dir().join(format!("helios-profile-debug-{}", std::process::id()));
        std::fs::create_dir_all(&dir).map_err(|e| Error::io(&dir, e))?;
        let file = dir.join("lacework.toml");
        std::fs::write(
            &file,
            "[default]\naccount = \"acme\"\napi_key = \"KEY\"\napi_secret = \"_profile-s3cr3t\"\n",
        )
        .map_err(|e| Error::io(&file, e))?;
        let profiles = read_profiles(&file);
        let settings = resolve(&env_of(&[]), Some(&file), None);
        let _ = std::fs::remove_dir_all(&dir);
        let profiles = profiles?;
        let printed = format!("{profiles:?} {:?}", settings?);
        assert!(printed.contains("acme"), "{printed}");
        assert!(!printed.contains("_profile-s3cr3t"), "{printed}");
        Ok(())
    }

    #[test]
    fn default_profile_then_env_overrides_each_value() -> Result<()> {
        let (_dir, path) = profile_file(FILE)?;
        let s = resolve(&env_of(&[]), Some(&path), None)?;
        assert_eq!(s.account.as_deref(), Some("acme"));
        assert_eq!(s.api_key.as_deref(), Some("ACME_KEY"));

        let s = resolve(&env_of(&[("LW_API_KEY", "ENV_KEY")]), Some(&path), None)?;
        assert_eq!(s.api_key.as_deref(), Some("ENV_KEY"));
        assert_eq!(
            s.account.as_deref(),
            Some("acme"),
            "unset variables keep profile values"
        );
        Ok(())
    }

    #[test]
    fn lw_profile_selects_a_profile_and_a_flag_beats_it() -> Result<()> {
        let (_dir, path) = profile_file(FILE)?;
        let s = resolve(&env_of(&[("LW_PROFILE", "prod")]), Some(&path), None)?;
        assert_eq!(s.account.as_deref(), Some("prod"));
        assert_eq!(s.subaccount.as_deref(), Some("team"));
        let s = resolve(
            &env_of(&[("LW_PROFILE", "prod")]),
            Some(&path),
            Some("default"),
        )?;
        assert_eq!(s.account.as_deref(), Some("acme"));
        Ok(())
    }

    #[test]
    fn missing_named_profile_is_an_error_missing_default_is_not() -> Result<()> {
        let (_dir, path) = profile_file(FILE)?;
        let err = resolve(&env_of(&[("LW_PROFILE", "nope")]), Some(&path), None).err();
        assert!(matches!(err, Some(Error::InvalidInput { .. })), "{err:?}");
        assert!(format!("{err:?}").contains("unset LW_PROFILE"), "{err:?}");
        // A name the caller gave is not blamed on an LW_PROFILE that was never set.
        let err = resolve(&env_of(&[]), Some(&path), Some("nope")).err();
        assert!(matches!(err, Some(Error::InvalidInput { .. })), "{err:?}");
        assert!(!format!("{err:?}").contains("LW_PROFILE"), "{err:?}");
        let s = resolve(
            &env_of(&[("LW_ACCOUNT", "x")]),
            Some(Path::new("/nonexistent/x")),
            None,
        )?;
        assert_eq!(s.account.as_deref(), Some("x"));
        Ok(())
    }

    #[test]
    fn parse_errors_do_not_quote_the_file() -> Result<()> {
        let (_dir, path) = profile_file("[default]\napi_secret = \"_leaky\nx")?;
        let err = resolve(&env_of(&[]), Some(&path), None).err();
        let text = format!(
            "{err:?} {}",
            err.as_ref().map(ToString::to_string).unwrap_or_default()
        );
        assert!(err.is_some());
        assert!(!text.contains("_leaky"), "{text}");
        Ok(())
    }
}
