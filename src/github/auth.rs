//! GitHub credentials: a token, or a GitHub App (app id, installation id, private key),
//! read from files or the environment. Secrets never reach logs: `Debug` redacts them.

use std::{fmt, path::Path};

/// How backup-warden authenticates to GitHub.
#[derive(Clone)]
pub enum GitHubAuth {
    Token(String),
    App {
        app_id: u64,
        installation_id: u64,
        private_key_pem: String,
    },
}

impl fmt::Debug for GitHubAuth {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        match self {
            Self::Token(_) => f.write_str("GitHubAuth::Token(<redacted>)"),
            Self::App {
                app_id,
                installation_id,
                ..
            } => {
                write!(
                    f,
                    "GitHubAuth::App {{ app_id: {app_id}, installation_id: {installation_id}, private_key: <redacted> }}"
                )
            }
        }
    }
}

#[derive(Debug, thiserror::Error)]
pub enum AuthError {
    #[error("cannot read {what} from {path}: {source}")]
    Read {
        what: &'static str,
        path: String,
        #[source]
        source: std::io::Error,
    },
    #[error("{0} is empty")]
    Empty(&'static str),
    #[error(
        "no GitHub credentials: set --github-token-file (or GITHUB_TOKEN), or --github-app-id, \
         --github-app-installation-id and --github-app-private-key-file"
    )]
    Missing,
    #[error(
        "a GitHub App needs all of --github-app-id, --github-app-installation-id and --github-app-private-key-file"
    )]
    IncompleteApp,
}

fn read_secret(what: &'static str, path: &Path) -> Result<String, AuthError> {
    let text = std::fs::read_to_string(path).map_err(|source| AuthError::Read {
        what,
        path: path.display().to_string(),
        source,
    })?;
    let text = text.trim().to_string();
    if text.is_empty() {
        Err(AuthError::Empty(what))
    } else {
        Ok(text)
    }
}

impl GitHubAuth {
    /// Picks the credentials from what is configured: an App when its settings are given,
    /// else a token file, else a token in the environment.
    pub fn from_settings(
        token_file: Option<&Path>,
        token_env: Option<String>,
        app_id: Option<u64>,
        installation_id: Option<u64>,
        private_key_file: Option<&Path>,
    ) -> Result<Self, AuthError> {
        match (app_id, installation_id, private_key_file) {
            (Some(app_id), Some(installation_id), Some(key)) => Ok(Self::App {
                app_id,
                installation_id,
                private_key_pem: read_secret("the GitHub App private key", key)?,
            }),
            (None, None, None) => match (token_file, token_env) {
                (Some(file), _) => Ok(Self::Token(read_secret("the GitHub token", file)?)),
                (None, Some(token)) if !token.trim().is_empty() => Ok(Self::Token(token.trim().to_string())),
                _ => Err(AuthError::Missing),
            },
            _ => Err(AuthError::IncompleteApp),
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn debug_never_shows_a_secret() {
        let token = GitHubAuth::Token("ghp_secret".into());
        let app = GitHubAuth::App {
            app_id: 1,
            installation_id: 2,
            private_key_pem: "-----BEGIN secret".into(),
        };
        for auth in [token, app] {
            let shown = format!("{auth:?}");
            assert!(!shown.contains("secret"), "{shown}");
        }
    }

    #[test]
    fn settings_pick_the_credentials() {
        let dir = std::env::temp_dir().join(format!("bw-auth-{}", std::process::id()));
        std::fs::create_dir_all(&dir).expect("dir");
        let token = dir.join("token");
        std::fs::write(&token, "ghp_abc\n").expect("write");
        let key = dir.join("key.pem");
        std::fs::write(&key, "-----BEGIN RSA PRIVATE KEY-----\n").expect("write");

        assert!(
            matches!(GitHubAuth::from_settings(Some(&token), None, None, None, None), Ok(GitHubAuth::Token(t)) if t == "ghp_abc")
        );
        assert!(
            matches!(GitHubAuth::from_settings(None, Some("ghp_env".into()), None, None, None), Ok(GitHubAuth::Token(t)) if t == "ghp_env")
        );
        assert!(matches!(
            GitHubAuth::from_settings(None, None, Some(1), Some(2), Some(&key)),
            Ok(GitHubAuth::App {
                app_id: 1,
                installation_id: 2,
                ..
            })
        ));
        assert!(matches!(
            GitHubAuth::from_settings(None, None, Some(1), None, Some(&key)),
            Err(AuthError::IncompleteApp)
        ));
        assert!(matches!(
            GitHubAuth::from_settings(None, None, None, None, None),
            Err(AuthError::Missing)
        ));
        let missing = dir.join("nope");
        let err =
            GitHubAuth::from_settings(Some(&missing), None, None, None, None).expect_err("missing file");
        assert!(err.to_string().contains("nope"));
        let _ = std::fs::remove_dir_all(dir);
    }
}
