//! Real registries for the register tests: two Glance 33 (no auth, and
//! glance's ContextMiddleware for normal projects), a Keystone 30 and the
//! Image API v1 test server, started once per test binary on free ports
//! with their state in a temporary directory, and stopped (by pid) when
//! the test binary exits, however it exits.
//!
//! They come from the venv that `scripts/setup-registry.sh` installs
//! (`DISKFORGE_VENV`, or `${DISKFORGE_CACHE:-$HOME/.cache/diskforge}/venv`).
//! A missing venv fails the tests; it never skips them.
#![allow(dead_code)]

use std::net::TcpListener;
use std::path::{Path, PathBuf};
use std::process::{Command, Stdio};
use std::sync::{Mutex, OnceLock};
use std::time::{Duration, Instant};

/// Password of Keystone's bootstrap admin.
pub const KEYSTONE_ADMIN_PASSWORD: &str = "admin-Secret-4711";
/// The demo user's password (the member of project "demo").
pub const DEMO_PASSWORD: &str = "demo-secret-pw";
/// The token the v1 test server wants.
pub const V1_TOKEN: &str = "v1-token-Secret-0815";

/// The running servers.
pub struct Servers {
    /// Glance without auth (every request is admin).
    pub glance: String,
    /// Glance with ContextMiddleware: X-Auth-Token "PROJECT:ROLES".
    pub glance_ctx: String,
    /// Keystone (unversioned URL).
    pub keystone: String,
    /// The demo project's id in Keystone.
    pub demo_project_id: String,
    /// The Image API v1 test server (wants X-Auth-Token V1_TOKEN).
    pub v1: String,
    /// The same over HTTPS, with a certificate from a test CA.
    pub v1_tls: String,
    /// That test CA (PEM).
    pub ca_pem: PathBuf,
    /// Where the servers keep their state.
    pub state: PathBuf,
    /// The fault-injecting registry (fault_registry.py).
    pub fault: Fault,
}

/// The fault-injecting registry's origins (fault_registry.py says what
/// each does).
pub struct Fault {
    /// Glance-like, with faults chosen by the image name.
    pub main: String,
    /// Another origin, hostile: must never be reached.
    pub other: String,
    /// `main` over https with a self-signed CA:TRUE certificate...
    pub tls_self: String,
    /// ... with an expired one ...
    pub tls_expired: String,
    /// ... and with one for another name (registry.example).
    pub tls_wrongname: String,
    /// `tls_self`'s certificate, and a client certificate required
    /// (client.pem + client.key, or client-combined.pem).
    pub tls_clientcert: String,
    /// Where the certificates are (selfsigned.pem, expired.pem, wrongname.pem).
    pub tls_dir: PathBuf,
}

impl Fault {
    /// Every request the fault registry has seen: (role, method, path, token).
    pub fn log(&self) -> Vec<(String, String, String, Option<String>)> {
        let (status, v) = get_json(&format!("{}/_log", self.main), None);
        assert_eq!(status, 200, "fault registry log: {v}");
        v["log"]
            .as_array()
            .expect("log")
            .iter()
            .map(|e| {
                let s = |k: &str| e[k].as_str().unwrap_or_default().to_string();
                (
                    s("role"),
                    s("method"),
                    s("path"),
                    e["token"].as_str().map(str::to_string),
                )
            })
            .collect()
    }

    /// The id of the pre-existing image that must never be touched.
    pub const PROD_ID: &'static str = "0f0f0f0f-aaaa-4bbb-8ccc-000000000001";
}

static SERVERS: OnceLock<Servers> = OnceLock::new();
static PIDS: Mutex<Vec<i32>> = Mutex::new(Vec::new());
static STATE_DIR: Mutex<Option<PathBuf>> = Mutex::new(None);

/// The servers, started on first use.
pub fn servers() -> &'static Servers {
    SERVERS.get_or_init(start_all)
}

/// The venv with glance, keystone and gunicorn.
pub fn venv() -> PathBuf {
    let dir = match std::env::var_os("DISKFORGE_VENV") {
        Some(v) => PathBuf::from(v),
        None => {
            let cache = std::env::var_os("DISKFORGE_CACHE")
                .map(PathBuf::from)
                .unwrap_or_else(|| {
                    PathBuf::from(std::env::var_os("HOME").expect("HOME")).join(".cache/diskforge")
                });
            cache.join("venv")
        }
    };
    for tool in ["python", "gunicorn", "glance-manage", "keystone-manage"] {
        if !dir.join("bin").join(tool).exists() {
            panic!(
                "the registry test venv is missing or incomplete ({} has no bin/{tool}): \
                 run scripts/setup-registry.sh first (it installs Glance 33 and Keystone 30)",
                dir.display()
            );
        }
    }
    dir
}

fn support_dir() -> PathBuf {
    Path::new(env!("CARGO_MANIFEST_DIR")).join("tests/registry_support")
}

fn cache_dir() -> PathBuf {
    std::env::var_os("DISKFORGE_CACHE")
        .map(PathBuf::from)
        .unwrap_or_else(|| {
            PathBuf::from(std::env::var_os("HOME").expect("HOME")).join(".cache/diskforge")
        })
}

/// A port nothing listens on right now.
pub fn free_port() -> u16 {
    let l = TcpListener::bind("127.0.0.1:0").expect("bind");
    l.local_addr().expect("addr").port()
}

extern "C" fn stop_all() {
    let pids = PIDS.lock().map(|p| p.clone()).unwrap_or_default();
    for pid in &pids {
        // SIGINT is gunicorn's quick shutdown (SIGTERM waits for workers).
        unsafe { libc::kill(*pid, libc::SIGINT) };
    }
    let deadline = Instant::now() + Duration::from_secs(5);
    for pid in &pids {
        while Instant::now() < deadline {
            let r = unsafe { libc::waitpid(*pid, std::ptr::null_mut(), libc::WNOHANG) };
            if r != 0 {
                break;
            }
            std::thread::sleep(Duration::from_millis(50));
        }
        unsafe { libc::kill(*pid, libc::SIGKILL) };
    }
    if let Ok(Some(dir)) = STATE_DIR.lock().map(|d| d.clone()) {
        // DISKFORGE_KEEP_REGISTRY_STATE=1 keeps the servers' logs and data.
        if std::env::var_os("DISKFORGE_KEEP_REGISTRY_STATE").is_none() {
            let _ = std::fs::remove_dir_all(dir);
        } else {
            eprintln!("registry state kept in {}", dir.display());
        }
    }
}

struct Spawn {
    name: &'static str,
    args: Vec<String>,
    env: Vec<(String, String)>,
}

/// Starts the servers from a thread that lives as long as the process, so
/// that PR_SET_PDEATHSIG stops them when the test binary dies (it fires
/// when the spawning *thread* exits).
fn spawn_all(specs: Vec<Spawn>, state: &Path) -> Vec<i32> {
    let (tx, rx) = std::sync::mpsc::channel();
    let state = state.to_path_buf();
    let python = venv().join("bin/python");
    let serve = support_dir().join("serve.py");
    std::thread::spawn(move || {
        let mut pids = Vec::new();
        for s in specs {
            let log = std::fs::File::create(state.join(format!("{}.log", s.name))).expect("log");
            let log2 = log.try_clone().expect("log");
            let mut cmd = Command::new(&python);
            cmd.arg(&serve)
                .args(&s.args)
                .envs(s.env.iter().map(|(k, v)| (k, v)))
                .stdin(Stdio::null())
                .stdout(log)
                .stderr(log2);
            unsafe {
                use std::os::unix::process::CommandExt;
                cmd.pre_exec(|| {
                    libc::prctl(libc::PR_SET_PDEATHSIG, libc::SIGINT);
                    Ok(())
                });
            }
            let child = cmd.spawn().expect("start a registry server");
            let pid = child.id() as i32;
            PIDS.lock().expect("pids").push(pid);
            pids.push(pid);
            std::mem::forget(child);
        }
        tx.send(pids).expect("send pids");
        loop {
            std::thread::park();
        }
    });
    rx.recv().expect("servers started")
}

fn log_tail(state: &Path, name: &str) -> String {
    let text = std::fs::read_to_string(state.join(format!("{name}.log"))).unwrap_or_default();
    let lines: Vec<&str> = text
        .lines()
        .filter(|l| !l.trim().is_empty() && !l.contains("ventlet"))
        .collect();
    lines[lines.len().saturating_sub(25)..].join("\n")
}

/// Waits until `url` answers 200 (the app is loaded, not just the socket).
fn wait_ready(url: &str, pid: i32, name: &str, state: &Path) {
    let agent: ureq::Agent = ureq::Agent::config_builder()
        .timeout_global(Some(Duration::from_secs(3)))
        .http_status_as_error(false)
        .build()
        .into();
    let deadline = Instant::now() + Duration::from_secs(150);
    loop {
        if let Ok(r) = agent.get(url).call()
            && r.status().as_u16() < 500
        {
            return;
        }
        let mut status = 0;
        let r = unsafe { libc::waitpid(pid, &mut status, libc::WNOHANG) };
        if r == pid {
            panic!(
                "{name} exited before it was ready; its log:\n{}",
                log_tail(state, name)
            );
        }
        if Instant::now() > deadline {
            panic!(
                "{name} not ready at {url} after 150 s; its log:\n{}",
                log_tail(state, name)
            );
        }
        std::thread::sleep(Duration::from_millis(250));
    }
}

/// Waits until something listens on `port` (and the CA file is written).
fn wait_tcp(port: u16, pid: i32, name: &str, state: &Path) {
    let deadline = Instant::now() + Duration::from_secs(60);
    while std::net::TcpStream::connect(("127.0.0.1", port)).is_err() {
        let r = unsafe { libc::waitpid(pid, std::ptr::null_mut(), libc::WNOHANG) };
        if r == pid || Instant::now() > deadline {
            panic!("{name} did not start; its log:\n{}", log_tail(state, name));
        }
        std::thread::sleep(Duration::from_millis(100));
    }
}

/// Waits for the JSON file a server writes once it listens (its ports).
fn wait_ports(file: &Path, pid: i32, name: &str, state: &Path) -> serde_json::Value {
    let deadline = Instant::now() + Duration::from_secs(60);
    loop {
        if let Ok(text) = std::fs::read_to_string(file)
            && let Ok(v) = serde_json::from_str::<serde_json::Value>(&text)
        {
            return v;
        }
        let r = unsafe { libc::waitpid(pid, std::ptr::null_mut(), libc::WNOHANG) };
        if r == pid || Instant::now() > deadline {
            panic!("{name} did not start; its log:\n{}", log_tail(state, name));
        }
        std::thread::sleep(Duration::from_millis(100));
    }
}

fn start_all() -> Servers {
    let venv = venv();
    let state = tempfile::Builder::new()
        .prefix("diskforge-registry")
        .tempdir()
        .expect("temp dir")
        .keep();
    *STATE_DIR.lock().expect("state") = Some(state.clone());
    unsafe { libc::atexit(stop_all) };
    let templates = cache_dir().join("registry-templates");
    let (pg, pc, pk, p1, pt) = (
        free_port(),
        free_port(),
        free_port(),
        free_port(),
        free_port(),
    );

    let tls_dir = state.join("tls");
    let s = |x: &str| x.to_string();
    let glance_env = vec![(
        s("DISKFORGE_GLANCE_DB_TEMPLATE"),
        templates.join("glance-33.0.0.sqlite").display().to_string(),
    )];
    let specs = vec![
        Spawn {
            name: "keystone",
            args: vec![
                s("keystone"),
                state.join("keystone").display().to_string(),
                pk.to_string(),
            ],
            env: vec![
                (s("KEYSTONE_ADMIN_PASSWORD"), s(KEYSTONE_ADMIN_PASSWORD)),
                (
                    s("DISKFORGE_KEYSTONE_DB_TEMPLATE"),
                    templates
                        .join("keystone-30.0.0.sqlite")
                        .display()
                        .to_string(),
                ),
            ],
        },
        Spawn {
            name: "glance",
            args: vec![
                s("glance"),
                state.join("glance").display().to_string(),
                pg.to_string(),
                s("noauth"),
            ],
            env: glance_env.clone(),
        },
        Spawn {
            name: "glance-context",
            args: vec![
                s("glance"),
                state.join("glance-context").display().to_string(),
                pc.to_string(),
                s("context"),
            ],
            env: glance_env,
        },
        Spawn {
            name: "v1",
            args: vec![s("v1"), p1.to_string(), s(V1_TOKEN)],
            env: vec![],
        },
        Spawn {
            name: "v1-tls",
            args: vec![
                s("v1"),
                pt.to_string(),
                s(V1_TOKEN),
                tls_dir.display().to_string(),
            ],
            env: vec![],
        },
        Spawn {
            name: "fault",
            args: vec![s("fault"), state.display().to_string()],
            env: vec![],
        },
    ];
    let pids = spawn_all(specs, &state);
    let glance = format!("http://127.0.0.1:{pg}");
    let glance_ctx = format!("http://127.0.0.1:{pc}");
    let keystone = format!("http://127.0.0.1:{pk}");
    let v1 = format!("http://127.0.0.1:{p1}");
    wait_ready(&format!("{glance}/healthcheck"), pids[1], "glance", &state);
    wait_ready(
        &format!("{glance_ctx}/healthcheck"),
        pids[2],
        "glance-context",
        &state,
    );
    wait_ready(&format!("{v1}/v1/images/none"), pids[3], "v1", &state);
    wait_ready(&format!("{keystone}/v3"), pids[0], "keystone", &state);
    wait_tcp(pt, pids[4], "v1-tls", &state);
    let fault_ports = wait_ports(
        &state.join("fault-tls/ports.json"),
        pids[5],
        "fault",
        &state,
    );
    let fault_url = |scheme: &str, role: &str| {
        let port = fault_ports[role].as_u64().expect("fault port");
        format!("{scheme}://127.0.0.1:{port}")
    };
    let out = Command::new(venv.join("bin/python"))
        .arg(support_dir().join("serve.py"))
        .args([
            "keystone-setup",
            &keystone,
            KEYSTONE_ADMIN_PASSWORD,
            &glance,
        ])
        .output()
        .expect("run keystone-setup");
    assert!(
        out.status.success(),
        "keystone-setup failed: {}\nkeystone log:\n{}",
        String::from_utf8_lossy(&out.stderr),
        log_tail(&state, "keystone")
    );
    let setup: serde_json::Value =
        serde_json::from_slice(&out.stdout).expect("keystone-setup prints JSON");
    Servers {
        glance,
        glance_ctx,
        keystone,
        demo_project_id: setup["project_id"]
            .as_str()
            .expect("project id")
            .to_string(),
        v1,
        v1_tls: format!("https://127.0.0.1:{pt}"),
        ca_pem: tls_dir.join("ca.pem"),
        fault: Fault {
            main: fault_url("http", "main"),
            other: fault_url("http", "other"),
            tls_self: fault_url("https", "tls-self"),
            tls_expired: fault_url("https", "tls-expired"),
            tls_wrongname: fault_url("https", "tls-wrongname"),
            tls_clientcert: fault_url("https", "tls-clientcert"),
            tls_dir: state.join("fault-tls"),
        },
        state,
    }
}

/// GET `url` (with an optional token) as JSON: (status, body).
pub fn get_json(url: &str, token: Option<&str>) -> (u16, serde_json::Value) {
    let agent: ureq::Agent = ureq::Agent::config_builder()
        .http_status_as_error(false)
        .build()
        .into();
    let mut req = agent.get(url).header("Accept", "application/json");
    if let Some(t) = token {
        req = req.header("X-Auth-Token", t);
    }
    let mut r = req.call().expect("GET");
    let status = r.status().as_u16();
    let text = r.body_mut().read_to_string().unwrap_or_default();
    (
        status,
        serde_json::from_str(&text).unwrap_or(serde_json::Value::Null),
    )
}
