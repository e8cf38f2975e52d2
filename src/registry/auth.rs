//! Endpoint and credentials, as the OpenStack clients find them: flags,
//! then `OS_*` environment variables, then clouds.yaml; a token with an
//! image URL, or Keystone v3 password auth with the image endpoint taken
//! from the service catalog.

use super::clouds::env;
use super::http::{Http, Reply, Request, Secret};
use crate::cli::register::RegisterArgs;
use crate::error::{Error, Result};
use serde_json::{Value, json};

/// Everything about where to connect and as whom, merged from flags,
/// environment and clouds.yaml.
#[derive(Debug, Default, Clone)]
pub struct Settings {
    pub image_url: Option<String>,
    pub token: Option<Secret>,
    pub auth_url: Option<String>,
    pub username: Option<String>,
    pub user_id: Option<String>,
    pub password: Option<Secret>,
    pub project_name: Option<String>,
    pub project_id: Option<String>,
    pub user_domain_name: Option<String>,
    pub user_domain_id: Option<String>,
    pub project_domain_name: Option<String>,
    pub project_domain_id: Option<String>,
    pub region_name: Option<String>,
    pub interface: Option<String>,
    pub cacert: Option<String>,
    /// Client certificate and key files (PEM).
    pub cert: Option<String>,
    pub key: Option<String>,
    pub insecure: bool,
    /// `auth_type` as given (`v3applicationcredential`, `password`, ...).
    pub auth_type: Option<String>,
    pub app_cred_id: Option<String>,
    pub app_cred_name: Option<String>,
    pub app_cred_secret: Option<Secret>,
    /// Where the settings came from, for error messages.
    pub cloud: Option<String>,
}

/// How to authenticate with Keystone.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum AuthType {
    Password,
    Token,
    ApplicationCredential,
}

/// Where requests go and the token they carry.
#[derive(Debug, Clone)]
pub struct Connection {
    /// The image service's unversioned endpoint (no trailing slash).
    pub image_url: String,
    pub token: Option<Secret>,
}

fn first(values: &[Option<String>]) -> Option<String> {
    values.iter().flatten().next().cloned()
}

impl Settings {
    /// Flags win over environment variables, which win over clouds.yaml.
    pub fn gather(args: &RegisterArgs) -> Result<Settings> {
        let cloud_name = first(&[args.os_cloud.clone(), env("OS_CLOUD")]);
        let cloud = match &cloud_name {
            Some(name) => cloud_settings(&super::clouds::load_cloud(name)?, name),
            None => Settings::default(),
        };
        let token = first(&[
            args.os_token.clone(),
            env("OS_AUTH_TOKEN"),
            env("OS_TOKEN"),
            cloud.token.as_ref().map(|s| s.expose().to_string()),
        ]);
        let password = first(&[
            args.os_password.clone(),
            env("OS_PASSWORD"),
            cloud.password.as_ref().map(|s| s.expose().to_string()),
        ]);
        let app_cred_secret = first(&[
            args.os_application_credential_secret.clone(),
            env("OS_APPLICATION_CREDENTIAL_SECRET"),
            cloud
                .app_cred_secret
                .as_ref()
                .map(|s| s.expose().to_string()),
        ]);
        let insecure_env = env("OS_INSECURE")
            .map(|v| matches!(v.to_ascii_lowercase().as_str(), "1" | "true" | "yes"))
            .unwrap_or(false);
        Ok(Settings {
            image_url: first(&[
                args.os_image_url.clone(),
                env("OS_IMAGE_URL"),
                env("OS_ENDPOINT"),
                cloud.image_url,
            ]),
            token: token.map(Secret::new),
            auth_url: first(&[args.os_auth_url.clone(), env("OS_AUTH_URL"), cloud.auth_url]),
            username: first(&[args.os_username.clone(), env("OS_USERNAME"), cloud.username]),
            user_id: first(&[env("OS_USER_ID"), cloud.user_id]),
            password: password.map(Secret::new),
            project_name: first(&[
                args.os_project_name.clone(),
                env("OS_PROJECT_NAME"),
                env("OS_TENANT_NAME"),
                cloud.project_name,
            ]),
            project_id: first(&[
                args.os_project_id.clone(),
                env("OS_PROJECT_ID"),
                env("OS_TENANT_ID"),
                cloud.project_id,
            ]),
            user_domain_name: first(&[
                args.os_user_domain_name.clone(),
                env("OS_USER_DOMAIN_NAME"),
                cloud.user_domain_name,
            ]),
            user_domain_id: first(&[env("OS_USER_DOMAIN_ID"), cloud.user_domain_id]),
            project_domain_name: first(&[
                args.os_project_domain_name.clone(),
                env("OS_PROJECT_DOMAIN_NAME"),
                cloud.project_domain_name,
            ]),
            project_domain_id: first(&[env("OS_PROJECT_DOMAIN_ID"), cloud.project_domain_id]),
            region_name: first(&[
                args.os_region_name.clone(),
                env("OS_REGION_NAME"),
                cloud.region_name,
            ]),
            interface: first(&[
                args.os_interface.clone(),
                env("OS_INTERFACE"),
                cloud.interface,
            ]),
            cacert: first(&[args.os_cacert.clone(), env("OS_CACERT"), cloud.cacert]),
            cert: first(&[args.os_cert.clone(), env("OS_CERT"), cloud.cert]),
            key: first(&[args.os_key.clone(), env("OS_KEY"), cloud.key]),
            insecure: args.insecure || insecure_env || cloud.insecure,
            auth_type: first(&[
                args.os_auth_type.clone(),
                env("OS_AUTH_TYPE"),
                cloud.auth_type,
            ]),
            app_cred_id: first(&[
                args.os_application_credential_id.clone(),
                env("OS_APPLICATION_CREDENTIAL_ID"),
                cloud.app_cred_id,
            ]),
            app_cred_name: first(&[
                args.os_application_credential_name.clone(),
                env("OS_APPLICATION_CREDENTIAL_NAME"),
                cloud.app_cred_name,
            ]),
            app_cred_secret: app_cred_secret.map(Secret::new),
            cloud: cloud_name,
        })
    }

    /// The secrets, to be scrubbed from every line printed.
    pub fn secrets(&self) -> Vec<String> {
        self.token
            .iter()
            .chain(self.password.iter())
            .chain(self.app_cred_secret.iter())
            .map(|s| s.expose().to_string())
            .collect()
    }

    /// The auth type: as given, or what the credentials are (an
    /// application credential secret without a password, a token, else a
    /// password).
    pub fn auth_type(&self) -> Result<AuthType> {
        if let Some(t) = &self.auth_type {
            let t = t.to_ascii_lowercase().replace(['-', '_'], "");
            return match t.strip_prefix("v3").unwrap_or(&t) {
                "password" => Ok(AuthType::Password),
                "token" => Ok(AuthType::Token),
                "applicationcredential" => Ok(AuthType::ApplicationCredential),
                _ => Err(Error::Usage(format!(
                    "--os-auth-type '{}': must be password, token or applicationcredential \
                     (v3password, v3token, v3applicationcredential)",
                    self.auth_type.as_deref().unwrap_or_default()
                ))),
            };
        }
        Ok(
            if self.app_cred_secret.is_some() && self.password.is_none() {
                AuthType::ApplicationCredential
            } else if self.token.is_some() {
                AuthType::Token
            } else {
                AuthType::Password
            },
        )
    }

    /// The endpoint interface asked for (`publicURL` spelled the old way
    /// is `public`).
    fn interface(&self) -> String {
        let i = self.interface.as_deref().unwrap_or("public");
        i.strip_suffix("URL").unwrap_or(i).to_string()
    }

    /// Checks that there is enough to connect, before anything is sent.
    pub fn check(&self) -> Result<()> {
        if let Some(u) = &self.image_url {
            check_url("--os-image-url", u)?;
        }
        if let Some(u) = &self.auth_url {
            check_url("--os-auth-url", u)?;
        }
        if self.image_url.is_none() && self.auth_url.is_none() {
            return Err(Error::Usage(
                "no image endpoint: give --os-image-url (OS_IMAGE_URL) with --os-token (OS_AUTH_TOKEN), \
                 or Keystone credentials (OS_AUTH_URL, OS_USERNAME, OS_PASSWORD, OS_PROJECT_NAME), \
                 or --os-cloud (OS_CLOUD)"
                    .to_string(),
            ));
        }
        let auth_type = self.auth_type()?;
        if self.auth_url.is_some() && auth_type == AuthType::ApplicationCredential {
            let mut missing = Vec::new();
            if self.app_cred_secret.is_none() {
                missing
                    .push("--os-application-credential-secret (OS_APPLICATION_CREDENTIAL_SECRET)");
            }
            if self.app_cred_id.is_none() && self.app_cred_name.is_none() {
                missing.push(
                    "--os-application-credential-id or --os-application-credential-name \
                     (OS_APPLICATION_CREDENTIAL_ID, OS_APPLICATION_CREDENTIAL_NAME)",
                );
            }
            if self.app_cred_id.is_none()
                && self.app_cred_name.is_some()
                && self.username.is_none()
                && self.user_id.is_none()
            {
                missing.push("--os-username or OS_USER_ID (the credential's owner, with a name)");
            }
            if !missing.is_empty() {
                return Err(Error::Usage(format!(
                    "Keystone application credential auth at {} is missing {}",
                    self.auth_url.as_deref().unwrap_or(""),
                    missing.join(", ")
                )));
            }
        } else if self.auth_url.is_some()
            && auth_type == AuthType::Token
            && self.auth_type.is_some()
            && self.token.is_none()
        {
            return Err(Error::Usage(format!(
                "Keystone token auth at {} is missing --os-token (OS_AUTH_TOKEN, OS_TOKEN)",
                self.auth_url.as_deref().unwrap_or("")
            )));
        } else if self.token.is_none() && self.auth_url.is_some() {
            let mut missing = Vec::new();
            if self.username.is_none() && self.user_id.is_none() {
                missing.push("--os-username (OS_USERNAME)");
            }
            if self.password.is_none() {
                missing.push("--os-password (OS_PASSWORD)");
            }
            if self.project_name.is_none() && self.project_id.is_none() {
                missing
                    .push("--os-project-name or --os-project-id (OS_PROJECT_NAME, OS_PROJECT_ID)");
            }
            if !missing.is_empty() {
                return Err(Error::Usage(format!(
                    "Keystone password auth at {} is missing {}",
                    self.auth_url.as_deref().unwrap_or(""),
                    missing.join(", ")
                )));
            }
        }
        let i = self.interface();
        if !["public", "internal", "admin"].contains(&i.as_str()) {
            return Err(Error::Usage(format!(
                "--os-interface '{i}': must be public, internal or admin"
            )));
        }
        Ok(())
    }
}

fn check_url(flag: &str, u: &str) -> Result<()> {
    let ok = (u.starts_with("http://") || u.starts_with("https://"))
        && u.len() > "https://".len()
        && !u.chars().any(|c| c.is_whitespace() || c.is_control());
    if ok {
        Ok(())
    } else {
        Err(Error::Usage(format!(
            "{flag} '{u}': not an http:// or https:// URL"
        )))
    }
}

/// An image endpoint without its version suffix or trailing slash.
pub fn unversioned(url: &str) -> String {
    let mut u = url.trim_end_matches('/').to_string();
    for v in ["/v2", "/v2.0", "/v1", "/v1.0", "/v1.1"] {
        if let Some(s) = u.strip_suffix(v) {
            u = s.trim_end_matches('/').to_string();
            break;
        }
    }
    u
}

/// The Keystone v3 base URL (`.../v3`) for an auth URL given either way.
fn keystone_v3(auth_url: &str) -> Result<String> {
    let u = auth_url.trim_end_matches('/');
    if u.ends_with("/v3") {
        Ok(u.to_string())
    } else if u.ends_with("/v2.0") {
        Err(Error::Usage(format!(
            "--os-auth-url '{auth_url}': Keystone v2.0 is not supported; use the v3 URL"
        )))
    } else {
        Ok(format!("{u}/v3"))
    }
}

/// The Keystone v3 password-auth request body.
fn password_auth_body(s: &Settings, password: &Secret) -> Value {
    let user_domain = match (&s.user_domain_id, &s.user_domain_name) {
        (Some(id), _) => json!({ "id": id }),
        (None, Some(name)) => json!({ "name": name }),
        (None, None) => json!({ "name": "Default" }),
    };
    let mut user = json!({ "password": password.expose() });
    if let Some(id) = &s.user_id {
        user["id"] = json!(id);
    } else {
        user["name"] = json!(s.username.clone().unwrap_or_default());
        user["domain"] = user_domain;
    }
    json!({
        "auth": {
            "identity": { "methods": ["password"], "password": { "user": user } },
            "scope": { "project": project_scope(s) }
        }
    })
}

/// The project to scope a token to.
fn project_scope(s: &Settings) -> Value {
    match (&s.project_id, &s.project_name) {
        (Some(id), _) => json!({ "id": id }),
        (None, name) => {
            let domain = match (&s.project_domain_id, &s.project_domain_name) {
                (Some(id), _) => json!({ "id": id }),
                (None, Some(n)) => json!({ "name": n }),
                (None, None) => json!({ "name": "Default" }),
            };
            json!({ "name": name.clone().unwrap_or_default(), "domain": domain })
        }
    }
}

/// The Keystone v3 token-auth body: a new token for the project, from
/// the one given (`v3token`).
fn token_auth_body(s: &Settings, token: &Secret) -> Value {
    json!({
        "auth": {
            "identity": { "methods": ["token"], "token": { "id": token.expose() } },
            "scope": { "project": project_scope(s) }
        }
    })
}

/// The Keystone v3 application-credential request body (an application
/// credential is scoped already: no scope is sent).
fn app_cred_auth_body(s: &Settings) -> Value {
    let secret = s
        .app_cred_secret
        .as_ref()
        .map(|x| x.expose().to_string())
        .unwrap_or_default();
    let mut cred = json!({ "secret": secret });
    if let Some(id) = &s.app_cred_id {
        cred["id"] = json!(id);
    } else {
        cred["name"] = json!(s.app_cred_name.clone().unwrap_or_default());
        cred["user"] = match &s.user_id {
            Some(id) => json!({ "id": id }),
            None => {
                let domain = match (&s.user_domain_id, &s.user_domain_name) {
                    (Some(id), _) => json!({ "id": id }),
                    (None, Some(n)) => json!({ "name": n }),
                    (None, None) => json!({ "name": "Default" }),
                };
                json!({ "name": s.username.clone().unwrap_or_default(), "domain": domain })
            }
        };
    }
    json!({
        "auth": {
            "identity": {
                "methods": ["application_credential"],
                "application_credential": cred
            }
        }
    })
}

/// Picks the image endpoint from a Keystone v3 catalog.
pub fn image_endpoint(catalog: &Value, interface: &str, region: Option<&str>) -> Result<String> {
    let services = catalog.as_array().cloned().unwrap_or_default();
    let image = services
        .iter()
        .find(|s| s.get("type").and_then(Value::as_str) == Some("image"))
        .ok_or_else(|| {
            Error::Failed("the Keystone service catalog has no image service".to_string())
        })?;
    let endpoints = image
        .get("endpoints")
        .and_then(Value::as_array)
        .cloned()
        .unwrap_or_default();
    let region_of = |e: &Value| {
        e.get("region_id")
            .or_else(|| e.get("region"))
            .and_then(Value::as_str)
            .map(str::to_string)
    };
    let found = endpoints.iter().find(|e| {
        e.get("interface").and_then(Value::as_str) == Some(interface)
            && region.is_none_or(|r| region_of(e).as_deref() == Some(r))
    });
    match found.and_then(|e| e.get("url")).and_then(Value::as_str) {
        Some(u) => Ok(unversioned(u)),
        None => {
            let have: Vec<String> = endpoints
                .iter()
                .map(|e| {
                    format!(
                        "{}/{}",
                        e.get("interface").and_then(Value::as_str).unwrap_or("?"),
                        region_of(e).unwrap_or_else(|| "?".to_string())
                    )
                })
                .collect();
            Err(Error::Failed(format!(
                "the Keystone catalog has no {interface} image endpoint{} (it has: {})",
                region
                    .map(|r| format!(" in region {r}"))
                    .unwrap_or_default(),
                if have.is_empty() {
                    "none".to_string()
                } else {
                    have.join(", ")
                }
            )))
        }
    }
}

/// What `--dry-run` shows for an endpoint that would come from the catalog.
pub const CATALOG_PLACEHOLDER: &str = "<image endpoint from the Keystone catalog>";
/// What `--dry-run` shows for a token Keystone would issue.
pub const TOKEN_PLACEHOLDER: &str = "<token from Keystone>";

/// Resolves the connection: authenticates with Keystone when needed. With
/// `dry_run`, prints the Keystone request instead and returns placeholders.
pub fn connect(s: &Settings, http: &Http, dry_run: bool) -> Result<Connection> {
    let interface = s.interface();
    if let (Some(url), None) = (&s.image_url, &s.auth_url) {
        return Ok(Connection {
            image_url: unversioned(url),
            token: s.token.clone(),
        });
    }
    let auth_type = s.auth_type()?;
    // `v3token` with a project: the token given buys one for that project.
    let rescope = auth_type == AuthType::Token
        && s.auth_type.is_some()
        && (s.project_id.is_some() || s.project_name.is_some());
    if let (Some(url), Some(_), false) = (&s.image_url, &s.token, rescope) {
        return Ok(Connection {
            image_url: unversioned(url),
            token: s.token.clone(),
        });
    }
    let auth_url = s.auth_url.clone().unwrap_or_default();
    let v3 = keystone_v3(&auth_url)?;
    let app_cred = auth_type == AuthType::ApplicationCredential;
    let (req, what) = match (&s.token, &s.password) {
        _ if app_cred => (
            Request::new("POST", format!("{v3}/auth/tokens")).json(app_cred_auth_body(s)),
            "Keystone application credential authentication",
        ),
        (Some(t), _) if rescope => (
            Request::new("POST", format!("{v3}/auth/tokens")).json(token_auth_body(s, t)),
            "Keystone token authentication",
        ),
        // A token without an image URL: ask Keystone for the token's catalog.
        (Some(t), _) => (
            Request::new("GET", format!("{v3}/auth/tokens"))
                .token(Some(t))
                .header("X-Subject-Token", t.expose()),
            "Keystone: reading the token's service catalog",
        ),
        (None, Some(p)) => (
            Request::new("POST", format!("{v3}/auth/tokens")).json(password_auth_body(s, p)),
            "Keystone password authentication",
        ),
        (None, None) => {
            return Err(Error::Usage(format!(
                "Keystone auth at {auth_url} needs --os-password (OS_PASSWORD) or --os-token (OS_AUTH_TOKEN)"
            )));
        }
    };
    if dry_run {
        crate::outln!("{}", req.describe());
        return Ok(Connection {
            image_url: s
                .image_url
                .as_deref()
                .map(unversioned)
                .unwrap_or_else(|| CATALOG_PLACEHOLDER.to_string()),
            token: Some(
                s.token
                    .clone()
                    .unwrap_or_else(|| Secret::new(TOKEN_PLACEHOLDER)),
            ),
        });
    }
    let reply = http.send(req, what)?;
    if !reply.ok() {
        return Err(Error::Failed(format!(
            "{what} failed: {}",
            reply.error_line()
        )));
    }
    let token = match &s.token {
        Some(t) if !app_cred && !rescope => t.clone(),
        _ => subject_token(&reply)?,
    };
    http.add_secret(token.expose());
    let body = reply.json(what)?;
    let image_url = match &s.image_url {
        Some(u) => unversioned(u),
        None => {
            let catalog = body
                .pointer("/token/catalog")
                .cloned()
                .unwrap_or(Value::Null);
            image_endpoint(&catalog, &interface, s.region_name.as_deref())?
        }
    };
    Ok(Connection {
        image_url,
        token: Some(token),
    })
}

fn subject_token(reply: &Reply) -> Result<Secret> {
    reply
        .header("X-Subject-Token")
        .filter(|t| !t.is_empty())
        .map(Secret::new)
        .ok_or_else(|| {
            Error::Failed("Keystone answered without an X-Subject-Token header".to_string())
        })
}

/// The settings of a cloud read from clouds.yaml.
fn cloud_settings(cloud: &serde_yaml_ng::Value, name: &str) -> Settings {
    let text = |v: Option<&serde_yaml_ng::Value>| -> Option<String> {
        match v? {
            serde_yaml_ng::Value::String(s) => Some(s.clone()),
            serde_yaml_ng::Value::Number(n) => Some(n.to_string()),
            serde_yaml_ng::Value::Bool(b) => Some(b.to_string()),
            _ => None,
        }
    };
    let auth = cloud.get("auth");
    let a = |k: &str| text(auth.and_then(|a| a.get(k)));
    let c = |k: &str| text(cloud.get(k));
    let verify = cloud.get("verify");
    let insecure = matches!(verify, Some(serde_yaml_ng::Value::Bool(false)))
        || matches!(
            cloud.get("insecure"),
            Some(serde_yaml_ng::Value::Bool(true))
        );
    Settings {
        image_url: c("image_endpoint_override").or_else(|| a("endpoint")),
        token: a("token").map(Secret::new),
        auth_url: a("auth_url"),
        username: a("username"),
        user_id: a("user_id"),
        password: a("password").map(Secret::new),
        project_name: a("project_name").or_else(|| a("tenant_name")),
        project_id: a("project_id").or_else(|| a("tenant_id")),
        user_domain_name: a("user_domain_name").or_else(|| a("domain_name")),
        user_domain_id: a("user_domain_id").or_else(|| a("domain_id")),
        project_domain_name: a("project_domain_name").or_else(|| a("domain_name")),
        project_domain_id: a("project_domain_id").or_else(|| a("domain_id")),
        region_name: c("region_name"),
        interface: c("interface").or_else(|| c("endpoint_type")),
        cacert: c("cacert"),
        cert: c("cert"),
        key: c("key"),
        insecure,
        auth_type: c("auth_type"),
        app_cred_id: a("application_credential_id"),
        app_cred_name: a("application_credential_name"),
        app_cred_secret: a("application_credential_secret").map(Secret::new),
        cloud: Some(name.to_string()),
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn unversioned_urls() {
        assert_eq!(unversioned("http://g:9292/"), "http://g:9292");
        assert_eq!(unversioned("http://g:9292/v2/"), "http://g:9292");
        assert_eq!(unversioned("http://g/image/v2.0"), "http://g/image");
    }

    #[test]
    fn catalog_pick() {
        let cat = json!([
            {"type": "identity", "endpoints": []},
            {"type": "image", "endpoints": [
                {"interface": "public", "region_id": "R1", "url": "http://a/v2"},
                {"interface": "internal", "region_id": "R1", "url": "http://b"},
                {"interface": "public", "region_id": "R2", "url": "http://c"}
            ]}
        ]);
        assert_eq!(image_endpoint(&cat, "public", None).unwrap(), "http://a");
        assert_eq!(
            image_endpoint(&cat, "public", Some("R2")).unwrap(),
            "http://c"
        );
        assert_eq!(
            image_endpoint(&cat, "internal", Some("R1")).unwrap(),
            "http://b"
        );
        assert!(image_endpoint(&cat, "admin", None).is_err());
    }
}
