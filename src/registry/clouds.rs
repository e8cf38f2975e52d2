//! clouds.yaml, as openstacksdk reads it: the first file (in
//! `OS_CLIENT_CONFIG_FILE`, ./, ~/.config/openstack, /etc/openstack) that
//! has the cloud; the same cloud in secure.yaml (same places, or
//! `OS_CLIENT_SECURE_FILE`) merged over it, key by key; and the profile it
//! names (`profile:` or `cloud:`) from clouds-public.yaml under it.

use crate::error::{Error, Result};
use serde_yaml_ng::Value;
use std::path::PathBuf;

/// An environment variable, unset when empty.
pub(crate) fn env(name: &str) -> Option<String> {
    std::env::var(name).ok().filter(|v| !v.is_empty())
}

/// The files `stem.yaml` and `stem.yml` searched, in order (as
/// openstacksdk does): the one `env_var` names, ./, ~/.config/openstack,
/// /etc/openstack.
fn config_paths(stem: &str, env_var: &str) -> Vec<PathBuf> {
    let mut v = Vec::new();
    if let Some(p) = env(env_var) {
        v.push(PathBuf::from(p));
    }
    let mut dirs = vec![PathBuf::from(".")];
    if let Some(home) = env("HOME") {
        let base = env("XDG_CONFIG_HOME")
            .map(PathBuf::from)
            .unwrap_or_else(|| PathBuf::from(&home).join(".config"));
        dirs.push(base.join("openstack"));
    }
    dirs.push(PathBuf::from("/etc/openstack"));
    for d in dirs {
        for ext in ["yaml", "yml"] {
            let p = d.join(format!("{stem}.{ext}"));
            v.push(p.strip_prefix(".").map(PathBuf::from).unwrap_or(p));
        }
    }
    v
}

/// The YAML document at `path`, or None when there is no readable file.
fn read_yaml(path: &std::path::Path) -> Result<Option<Value>> {
    let Ok(text) = std::fs::read_to_string(path) else {
        return Ok(None);
    };
    serde_yaml_ng::from_str(&text).map(Some).map_err(|e| {
        Error::Usage(format!(
            "{}: not valid YAML: {}",
            path.display(),
            super::http::one_line(&e.to_string())
        ))
    })
}

/// The first document among `paths` that has `key` / `name`, and its path.
fn find(paths: &[PathBuf], key: &str, name: &str) -> Result<(Option<Value>, Vec<String>)> {
    let mut looked = Vec::new();
    for path in paths {
        let Some(doc) = read_yaml(path)? else {
            continue;
        };
        looked.push(path.display().to_string());
        if let Some(v) = doc.get(key).and_then(|c| c.get(name)) {
            return Ok((Some(v.clone()), looked));
        }
    }
    Ok((None, looked))
}

/// `over` merged into `base`: mappings key by key (recursively), any
/// other value replaced.
fn merge(base: &mut Value, over: &Value) {
    match (base, over) {
        (Value::Mapping(b), Value::Mapping(o)) => {
            for (k, v) in o {
                match b.get_mut(k) {
                    Some(bv) => merge(bv, v),
                    None => {
                        b.insert(k.clone(), v.clone());
                    }
                }
            }
        }
        (b, o) => *b = o.clone(),
    }
}

/// Cloud `name`: from the first clouds.yaml that has it, with
/// secure.yaml's entry for it merged over, on top of its profile.
pub fn load_cloud(name: &str) -> Result<Value> {
    let (cloud, looked) = find(
        &config_paths("clouds", "OS_CLIENT_CONFIG_FILE"),
        "clouds",
        name,
    )?;
    let Some(mut cloud) = cloud else {
        return Err(Error::Usage(format!(
            "--os-cloud '{name}': no such cloud in {}",
            if looked.is_empty() {
                "any clouds.yaml (none found in ./, ~/.config/openstack, /etc/openstack)"
                    .to_string()
            } else {
                looked.join(", ")
            }
        )));
    };
    if let (Some(secure), _) = find(
        &config_paths("secure", "OS_CLIENT_SECURE_FILE"),
        "clouds",
        name,
    )? {
        merge(&mut cloud, &secure);
    }
    let profile = cloud
        .get("profile")
        .or_else(|| cloud.get("cloud"))
        .and_then(Value::as_str)
        .map(str::to_string);
    if let Some(profile) = profile {
        let paths = config_paths("clouds-public", "OS_CLIENT_PUBLIC_FILE");
        let (base, looked) = find(&paths, "public-clouds", &profile)?;
        let Some(mut base) = base else {
            return Err(Error::Usage(format!(
                "--os-cloud '{name}': its profile '{profile}' is in no clouds-public.yaml ({})",
                if looked.is_empty() {
                    "none found in ./, ~/.config/openstack, /etc/openstack".to_string()
                } else {
                    looked.join(", ")
                }
            )));
        };
        merge(&mut base, &cloud);
        cloud = base;
    }
    Ok(cloud)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn merge_is_key_by_key() {
        let y = |s: &str| serde_yaml_ng::from_str::<Value>(s).unwrap();
        let mut base = y("auth: {auth_url: a, username: u}\nregion_name: r\n");
        merge(
            &mut base,
            &y("auth: {password: p, username: v}\ninterface: internal\n"),
        );
        assert_eq!(
            base,
            y(
                "auth: {auth_url: a, username: v, password: p}\nregion_name: r\ninterface: internal\n"
            )
        );
    }
}
