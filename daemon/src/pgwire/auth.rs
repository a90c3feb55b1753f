//! SCRAM-SHA-256 logins against `[server.postgres] users`. A password is
//! resolved from its secret reference when a client connects (so a rotated
//! file or variable applies to the next login) and lives only as the
//! salted SCRAM key for that handshake; it is never logged or put in an
//! error. An unknown user goes through the same handshake against a random
//! key and fails the same way, so the answer does not tell which names
//! exist.

use std::collections::BTreeMap;
use std::fmt;

use async_trait::async_trait;
use conveyor_config::SecretRef;
use pgwire::api::auth::sasl::scram::{gen_salted_password, ScramSecret, SCRAM_ITERATIONS};
use pgwire::api::auth::{AuthSource, LoginInfo, Password};
use pgwire::error::{PgWireError, PgWireResult};

/// The configured users and their password references.
pub struct Users {
    users: BTreeMap<String, SecretRef>,
}

impl fmt::Debug for Users {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        // Names only: references are harmless, but nothing more is needed.
        f.debug_list().entries(self.users.keys()).finish()
    }
}

impl Users {
    pub fn new(users: BTreeMap<String, SecretRef>) -> Users {
        Users { users }
    }

    /// The password of `user`, resolved now; `None` for an unknown user or
    /// a reference that cannot be resolved (logged, without its value).
    fn password(&self, user: &str) -> Option<conveyor_config::Secret> {
        let reference = self.users.get(user)?;
        match reference.resolve() {
            Ok(secret) => Some(secret),
            Err(e) => {
                tracing::warn!(user, error = %e, "cannot resolve the password of a Postgres-wire user; the login is refused");
                None
            }
        }
    }
}

fn random_salt() -> Vec<u8> {
    rand::random::<[u8; 16]>().to_vec()
}

#[async_trait]
impl AuthSource for Users {
    async fn get_password(&self, _login: &LoginInfo) -> PgWireResult<Password> {
        // Only SCRAM is offered; `get_scram_secret` below answers it.
        Err(PgWireError::InvalidSASLState)
    }

    async fn get_scram_secret(&self, login: &LoginInfo) -> PgWireResult<(ScramSecret, Option<()>)> {
        let user = login
            .user()
            .filter(|u| !u.is_empty())
            .ok_or(PgWireError::UserNameRequired)?;
        let salt = random_salt();
        // PBKDF2 is deliberately slow: run it off the async threads.
        let password = self.password(user);
        let salted = tokio::task::spawn_blocking({
            let salt = salt.clone();
            move || match password {
                Some(p) => gen_salted_password(p.expose(), &salt, SCRAM_ITERATIONS),
                // Unknown user: a key no password derives, same work.
                None => {
                    let _ = gen_salted_password("", &salt, SCRAM_ITERATIONS);
                    rand::random::<[u8; 32]>().to_vec()
                }
            }
        })
        .await
        .map_err(|e| PgWireError::ApiError(Box::new(e)))?;
        Ok((
            ScramSecret::SaltedPassword {
                salt,
                salted_password: salted,
            },
            None,
        ))
    }
}
