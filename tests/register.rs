//! `diskforge register` against real registries: Glance 33 (no auth, and
//! with glance's ContextMiddleware for a normal project), Keystone 30, and
//! the Image API v1 test server. Images are made with the real qemu-img.
//! Run `scripts/setup-registry.sh` once first; without its venv these
//! tests fail (they never skip).

mod common;
mod registry_support;

use common::{qemu_img, qemu_io, tempdir};
use md5::{Digest, Md5};
use registry_support::{DEMO_PASSWORD, KEYSTONE_ADMIN_PASSWORD, V1_TOKEN, get_json, servers};
use serde_json::Value;
use std::path::Path;
use std::process::Command;

/// Output of one diskforge run.
#[derive(Debug)]
struct Out {
    code: i32,
    stdout: String,
    stderr: String,
}

impl Out {
    fn ok(self) -> Out {
        assert_eq!(self.code, 0, "diskforge failed: {self:#?}");
        self
    }
    fn json(&self) -> Value {
        serde_json::from_str(&self.stdout)
            .unwrap_or_else(|e| panic!("stdout is not JSON ({e}): {self:#?}"))
    }
    fn all(&self) -> String {
        format!("{}{}", self.stdout, self.stderr)
    }
    /// Exit 1 with one error line that contains every one of `parts`.
    fn failed_with(&self, code: i32, parts: &[&str]) {
        assert_eq!(self.code, code, "{self:#?}");
        // Warnings (a forced disk format) aside.
        let lines: Vec<&str> = self
            .stderr
            .lines()
            .filter(|l| !l.starts_with("diskforge: warning: "))
            .collect();
        assert_eq!(lines.len(), 1, "want one error line: {self:#?}");
        for p in parts {
            assert!(lines[0].contains(p), "error lacks {p:?}: {self:#?}");
        }
    }
}

/// Runs diskforge in `dir` with `args` and exactly the OS_* variables in
/// `env` (every OS_* of the test's own environment removed; HOME is the
/// test dir so no user clouds.yaml is read).
fn df_env(dir: &Path, args: &[&str], env: &[(&str, &str)]) -> Out {
    let mut cmd = Command::new(env!("CARGO_BIN_EXE_diskforge"));
    cmd.arg("register").args(args).current_dir(dir);
    for (k, _) in std::env::vars() {
        if k.starts_with("OS_") {
            cmd.env_remove(k);
        }
    }
    cmd.env("HOME", dir).env_remove("XDG_CONFIG_HOME");
    cmd.envs(env.iter().copied());
    let out = cmd.output().expect("run diskforge");
    Out {
        code: out.status.code().unwrap_or(-1),
        stdout: String::from_utf8_lossy(&out.stdout).into_owned(),
        stderr: String::from_utf8_lossy(&out.stderr).into_owned(),
    }
}

fn df(dir: &Path, args: &[&str]) -> Out {
    df_env(dir, args, &[])
}

fn md5_hex(path: &Path) -> String {
    let data = std::fs::read(path).expect("read");
    Md5::digest(&data)
        .iter()
        .map(|b| format!("{b:02x}"))
        .collect()
}

fn sha512_hex(path: &Path) -> String {
    use sha2::Sha512;
    let data = std::fs::read(path).expect("read");
    Sha512::digest(&data)
        .iter()
        .map(|b| format!("{b:02x}"))
        .collect()
}

/// A small qcow2 image with some data, made by qemu-img and qemu-io.
fn qcow2_with_data(dir: &Path, name: &str) -> std::path::PathBuf {
    qemu_img(dir, &["create", "-q", "-f", "qcow2", name, "16M"]).ok();
    qemu_io(
        dir,
        &[
            "-c",
            "write -P 0x5a 0 256k",
            "-c",
            "write -P 0xa5 4M 64k",
            name,
        ],
    )
    .ok();
    dir.join(name)
}

fn new_uuid() -> String {
    let t = std::time::SystemTime::now()
        .duration_since(std::time::UNIX_EPOCH)
        .unwrap()
        .as_nanos();
    static COUNTER: std::sync::atomic::AtomicU64 = std::sync::atomic::AtomicU64::new(0);
    let c = COUNTER.fetch_add(1, std::sync::atomic::Ordering::SeqCst) as u128;
    let n = t ^ ((std::process::id() as u128) << 64) ^ (c << 96);
    let h = format!(
        "{:032x}",
        Md5::digest(n.to_le_bytes())
            .iter()
            .fold(0u128, |a, b| (a << 8) | *b as u128)
    );
    format!(
        "{}-{}-4{}-8{}-{}",
        &h[0..8],
        &h[8..12],
        &h[13..16],
        &h[17..20],
        &h[20..32]
    )
}

fn image(url: &str, id: &str, token: Option<&str>) -> (u16, Value) {
    get_json(&format!("{url}/v2/images/{id}"), token)
}

#[test]
fn every_field_round_trips() {
    let s = servers();
    let d = tempdir();
    qemu_img(
        d.path(),
        &["create", "-q", "-f", "qcow2", "disk.qcow2", "1G"],
    )
    .ok();
    let id = new_uuid();
    let url = format!("--os-image-url={}", s.glance);
    let out = df(
        d.path(),
        &[
            &url,
            "--name",
            "Ubuntu 24.04 — test image",
            "--id",
            &id,
            "--container-format",
            "ovf",
            "--community",
            "--min-disk",
            "12",
            "--min-ram",
            "2048",
            "--protected",
            "--tag",
            "alpha",
            "--tag",
            "beta gamma",
            "--tag",
            "alpha",
            "--property",
            "os_distro=ubuntu",
            "--property",
            "hw_disk_bus=virtio",
            "--property",
            "empty=",
            "--os-version",
            "Ubuntu 24.04 server 64bit",
            "--output=json",
            "-v",
            "disk.qcow2",
        ],
    )
    .ok();
    let created = out.json();
    // Without --upload the record is empty, and diskforge says so.
    assert!(
        out.stderr.contains(&format!(
            "diskforge: no data was uploaded: image {id} is an empty record (status queued); \
             register with --upload (or --file FILE) to upload disk.qcow2"
        )),
        "{out:#?}"
    );
    let quiet = df(d.path(), &[&url, "-q", "--output=json", "disk.qcow2"]).ok();
    assert_eq!(quiet.stderr, "", "{quiet:#?}");
    let (status, got) = image(&s.glance, &id, None);
    assert_eq!(status, 200, "{got}");
    for rec in [&created, &got] {
        assert_eq!(rec["id"], id.as_str());
        assert_eq!(rec["name"], "Ubuntu 24.04 — test image");
        assert_eq!(rec["disk_format"], "qcow2", "detected from the file");
        assert_eq!(rec["container_format"], "ovf");
        assert_eq!(rec["visibility"], "community");
        assert_eq!(rec["min_disk"], 12);
        assert_eq!(rec["min_ram"], 2048);
        assert_eq!(rec["protected"], true);
        let mut tags: Vec<&str> = rec["tags"]
            .as_array()
            .unwrap()
            .iter()
            .map(|t| t.as_str().unwrap())
            .collect();
        tags.sort();
        assert_eq!(
            tags,
            ["alpha", "beta gamma"],
            "created {created} / read back {got}"
        );
        assert_eq!(rec["os_distro"], "ubuntu");
        assert_eq!(rec["hw_disk_bus"], "virtio");
        assert_eq!(rec["empty"], "");
        assert_eq!(rec["__os_version"], "Ubuntu 24.04 server 64bit");
        assert_eq!(rec["status"], "queued");
    }

    // Defaults: name = file name, container bare, no visibility sent
    // (Glance's default, shared), --unprotected.
    let out = df(
        d.path(),
        &[&url, "--unprotected", "--output=json", "disk.qcow2"],
    )
    .ok();
    let rec = out.json();
    assert_eq!(rec["name"], "disk.qcow2");
    assert_eq!(rec["container_format"], "bare");
    assert_eq!(rec["visibility"], "shared");
    assert_eq!(rec["protected"], false);

    // Human output lists the record's fields.
    let out = df(d.path(), &[&url, "--private", "disk.qcow2"]).ok();
    assert!(
        out.stdout
            .lines()
            .any(|l| l.starts_with("visibility") && l.ends_with("private")),
        "{out:#?}"
    );
    assert!(
        out.stdout
            .lines()
            .any(|l| l.starts_with("status") && l.ends_with("queued")),
        "{out:#?}"
    );
}

#[test]
fn detected_disk_formats() {
    let d = tempdir();
    for (fmt, file, want) in [
        ("qcow2", "a.qcow2", "qcow2"),
        ("vmdk", "a.vmdk", "vmdk"),
        ("vdi", "a.vdi", "vdi"),
        ("vpc", "a.vhd", "vhd"),
        ("raw", "a.img", "raw"),
    ] {
        qemu_img(d.path(), &["create", "-q", "-f", fmt, file, "8M"]).ok();
        // Nothing listens on port 9: a dry run sends nothing.
        let out = df(
            d.path(),
            &["--os-image-url=http://127.0.0.1:9", "--dry-run", file],
        )
        .ok();
        assert!(
            out.stdout.contains(&format!("\"disk_format\": \"{want}\"")),
            "{fmt}: {out:#?}"
        );
    }
    qemu_img(d.path(), &["create", "-q", "-f", "qcow", "old.qcow", "8M"]).ok();
    let out = df(d.path(), &["--os-image-url=http://127.0.0.1:9", "old.qcow"]);
    out.failed_with(2, &["old.qcow", "qcow (version 1)", "convert"]);
    let u = "--os-image-url=http://127.0.0.1:9";
    let out = df(d.path(), &[u, "--dry-run", "--disk-format=raw", "old.qcow"]);
    out.failed_with(2, &["old.qcow", "--force-disk-format"]);
    let out = df(
        d.path(),
        &[
            u,
            "--dry-run",
            "--disk-format=raw",
            "--force-disk-format",
            "old.qcow",
        ],
    )
    .ok();
    assert!(
        out.stderr.contains(
            "warning: old.qcow is a qcow (version 1) image, registered as disk_format raw"
        ),
        "{out:#?}"
    );
}

#[test]
fn upload_is_verified_against_the_record() {
    let s = servers();
    let d = tempdir();
    let path = qcow2_with_data(d.path(), "data.qcow2");
    let url = format!("--os-image-url={}", s.glance);
    let out = df(d.path(), &[&url, "--upload", "--output=json", "data.qcow2"]).ok();
    let rec = out.json();
    let id = rec["id"].as_str().unwrap();
    // The upload ends with one line that says what was verified.
    let size = std::fs::metadata(&path).unwrap().len();
    assert_eq!(
        out.stderr.trim_end(),
        format!(
            "diskforge: uploaded {size} bytes to image {id}: size, md5 checksum and \
             sha512 os_hash verified"
        ),
        "{out:#?}"
    );
    let (_, got) = image(&s.glance, id, None);
    for r in [&rec, &got] {
        assert_eq!(r["status"], "active");
        assert_eq!(
            r["size"].as_u64(),
            Some(std::fs::metadata(&path).unwrap().len())
        );
        assert_eq!(r["checksum"], md5_hex(&path).as_str());
        assert_eq!(r["os_hash_algo"], "sha512");
        assert_eq!(r["os_hash_value"], sha512_hex(&path).as_str());
        assert_eq!(r["virtual_size"], 16 << 20);
    }
    // The stored bytes are the file's.
    let agent: ureq::Agent = ureq::Agent::config_builder().build().into();
    let mut resp = agent
        .get(format!("{}/v2/images/{id}/file", s.glance))
        .call()
        .unwrap();
    let data = resp
        .body_mut()
        .with_config()
        .limit(1 << 30)
        .read_to_vec()
        .unwrap();
    assert_eq!(data, std::fs::read(&path).unwrap());

    // --file FILE is openstack's spelling of upload.
    let out = df(
        d.path(),
        &[
            &url,
            "--file",
            "data.qcow2",
            "--name",
            "via-file",
            "--output=json",
        ],
    )
    .ok();
    assert_eq!(out.json()["status"], "active");
    assert_eq!(out.json()["name"], "via-file");
    // -q: nothing on stderr.
    let out = df(d.path(), &[&url, "-q", "--upload", "data.qcow2"]).ok();
    assert_eq!(out.stderr, "", "{out:#?}");
}

#[test]
fn duplicate_id_is_409() {
    let s = servers();
    let d = tempdir();
    std::fs::write(d.path().join("a.img"), vec![0u8; 4096]).unwrap();
    let id = new_uuid();
    let url = format!("--os-image-url={}", s.glance);
    df(d.path(), &[&url, "--id", &id, "a.img"]).ok();
    let out = df(d.path(), &[&url, "--id", &id, "a.img"]);
    out.failed_with(1, &["409 Conflict", &id, "already exists"]);
}

#[test]
fn registry_400s_carry_the_registry_message() {
    let s = servers();
    let d = tempdir();
    std::fs::write(d.path().join("a.img"), vec![0u8; 4096]).unwrap();
    let url = format!("--os-image-url={}", s.glance);
    // (--force-disk-format: diskforge itself refuses a format not in the list.)
    let out = df(
        d.path(),
        &[
            &url,
            "--disk-format",
            "floppy",
            "--force-disk-format",
            "a.img",
        ],
    );
    out.failed_with(1, &["400 Bad Request", "'floppy' is not one of"]);
    assert!(!out.stderr.contains("<br"), "{out:#?}");
    let out = df(d.path(), &[&url, "--container-format", "crate", "a.img"]);
    out.failed_with(1, &["400 Bad Request", "'crate' is not one of"]);
    // Unknown image id when reading back is a 404 in one line (through
    // the upload path's GET): use the no-such-endpoint path instead.
    let out = df(
        d.path(),
        &[
            &format!("--os-image-url={}/nothing-here", s.glance),
            "a.img",
        ],
    );
    assert_eq!(out.code, 1, "{out:#?}");
    assert_eq!(out.stderr.lines().count(), 1, "{out:#?}");
}

#[test]
fn bad_input_is_refused_before_sending() {
    let d = tempdir();
    std::fs::write(d.path().join("a.img"), vec![0u8; 512]).unwrap();
    // Nothing listens on port 9: every refusal below happens before any
    // connection (exit 2, not a connection error).
    let u = "--os-image-url=http://127.0.0.1:9";
    let long = "n".repeat(256);
    let cases: Vec<(Vec<&str>, &str)> = vec![
        (vec![u, "--id", "not-a-uuid", "a.img"], "--id"),
        (
            vec![u, "--id", "5c1ac1b6-6fb5-4c38-9ad0-4b1bc3b0fb5", "a.img"],
            "--id",
        ),
        (vec![u, "--name", &long, "a.img"], "--name"),
        (vec![u, "--tag", &long, "a.img"], "--tag"),
        (vec![u, "--tag", "", "a.img"], "--tag"),
        (vec![u, "--min-disk", "-1", "a.img"], "--min-disk"),
        (vec![u, "--min-ram", "-512", "a.img"], "--min-ram"),
        (vec![u, "--min-ram", "lots", "a.img"], "--min-ram"),
        (vec![u, "--property", "status=active", "a.img"], "status"),
        (vec![u, "--property", "size=1", "a.img"], "size"),
        (vec![u, "--property", "checksum=0", "a.img"], "checksum"),
        (
            vec![u, "--property", "os_hash_value=0", "a.img"],
            "os_hash_value",
        ),
        (
            vec![u, "--property", "os_glance_importing_to_stores=x", "a.img"],
            "os_glance_",
        ),
        (vec![u, "--property", "name=x", "a.img"], "--name"),
        (vec![u, "--property", "novalue", "a.img"], "KEY=VALUE"),
        (vec![u, "--visibility", "everyone", "a.img"], "--visibility"),
        (vec![u, "--timeout", "0", "a.img"], "--timeout"),
        (vec!["a.img"], "no image endpoint"),
        (
            vec!["--os-auth-url=http://127.0.0.1:9/v3", "a.img"],
            "OS_PASSWORD",
        ),
        (
            vec![
                "--os-auth-url=http://127.0.0.1:9/v3",
                "--os-username=u",
                "--os-password=p",
                "a.img",
            ],
            "project",
        ),
        (vec!["--os-image-url=ftp://x", "a.img"], "--os-image-url"),
        (vec![u, "--os-cloud", "nosuchcloud", "a.img"], "nosuchcloud"),
        (vec![u, "--public", "--private", "a.img"], "--private"),
        (
            vec![u, "--os-cacert", "/nonexistent/ca.pem", "a.img"],
            "--os-cacert",
        ),
        (vec![u, "--retries", "99", "a.img"], "--retries"),
        (
            vec![u, "--os-interface", "sideways", "a.img"],
            "--os-interface",
        ),
    ];
    for (args, needle) in cases {
        let out = df(d.path(), &args);
        out.failed_with(2, &[needle]);
    }
    let out = df(d.path(), &[u, "missing.img"]);
    out.failed_with(1, &["missing.img"]);
}

#[test]
fn public_as_non_admin_is_403() {
    let s = servers();
    let d = tempdir();
    std::fs::write(d.path().join("a.img"), vec![1u8; 4096]).unwrap();
    let url = format!("--os-image-url={}", s.glance_ctx);
    let out = df(
        d.path(),
        &[&url, "--os-token", "projA:member", "--public", "a.img"],
    );
    out.failed_with(1, &["403 Forbidden", "publicize_image"]);
    // Private works for the member, owned by its project, and uploads.
    let out = df(
        d.path(),
        &[
            &url,
            "--os-token",
            "projA:member",
            "--private",
            "--upload",
            "--output=json",
            "a.img",
        ],
    )
    .ok();
    let rec = out.json();
    assert_eq!(rec["owner"], "projA");
    assert_eq!(rec["status"], "active");
    // An admin may publicize.
    let out = df(
        d.path(),
        &[
            &url,
            "--os-token",
            "projA:admin",
            "--public",
            "--output=json",
            "a.img",
        ],
    )
    .ok();
    assert_eq!(out.json()["visibility"], "public");
    // This Glance caps images at 1 MiB: a bigger upload is a 413, and the
    // record is deleted.
    std::fs::write(d.path().join("big.img"), vec![1u8; 3 << 20]).unwrap();
    let out = df(
        d.path(),
        &[&url, "--os-token", "projA:member", "--upload", "big.img"],
    );
    out.failed_with(1, &["413", "(status ", "deleted"]);
    // A bad token is a one-line 401 from OS_AUTH_TOKEN as well.
    let out = df_env(d.path(), &[&url, "a.img"], &[("OS_AUTH_TOKEN", "garbage")]);
    out.failed_with(1, &["401 Unauthorized"]);
    // OS_TOKEN and OS_IMAGE_URL are read too.
    let out = df_env(
        d.path(),
        &["--output=json", "a.img"],
        &[
            ("OS_TOKEN", "projB:member"),
            ("OS_IMAGE_URL", &s.glance_ctx),
        ],
    )
    .ok();
    assert_eq!(out.json()["owner"], "projB");
}

#[test]
fn format_mismatch_415_cleans_up() {
    let s = servers();
    let d = tempdir();
    std::fs::write(d.path().join("plain.raw"), vec![7u8; 65536]).unwrap();
    let url = format!("--os-image-url={}", s.glance);
    let id = new_uuid();
    let out = df(
        d.path(),
        &[
            &url,
            "--upload",
            "--disk-format=qcow2",
            "--force-disk-format",
            "--id",
            &id,
            "plain.raw",
        ],
    );
    // Glance leaves the record queued (or, for a moment, saving).
    out.failed_with(1, &["415", "does not match", &id, "(status ", "deleted"]);
    let (status, _) = image(&s.glance, &id, None);
    assert_eq!(status, 404, "the record should be gone");

    let id = new_uuid();
    let out = df(
        d.path(),
        &[
            &url,
            "--upload",
            "--disk-format=qcow2",
            "--force-disk-format",
            "--id",
            &id,
            "--keep-on-failure",
            "plain.raw",
        ],
    );
    out.failed_with(1, &["415", &id, "(status ", "--keep-on-failure"]);
    let (status, rec) = image(&s.glance, &id, None);
    assert_eq!(status, 200);
    assert!(
        rec["status"] == "queued" || rec["status"] == "saving",
        "{rec}"
    );

    // A qcow2 with a backing file fails Glance's safety checks.
    qemu_img(
        d.path(),
        &["create", "-q", "-f", "qcow2", "base.qcow2", "8M"],
    )
    .ok();
    qemu_img(
        d.path(),
        &[
            "create",
            "-q",
            "-f",
            "qcow2",
            "-b",
            "base.qcow2",
            "-F",
            "qcow2",
            "top.qcow2",
        ],
    )
    .ok();
    let out = df(d.path(), &[&url, "--upload", "top.qcow2"]);
    out.failed_with(1, &["415", "safety", "deleted"]);
}

#[test]
fn keystone_password_auth_and_catalog() {
    let s = servers();
    let d = tempdir();
    std::fs::write(d.path().join("a.img"), vec![3u8; 8192]).unwrap();
    let auth = format!("{}/v3", s.keystone);
    let env = [
        ("OS_AUTH_URL", auth.as_str()),
        ("OS_USERNAME", "demo"),
        ("OS_PASSWORD", DEMO_PASSWORD),
        ("OS_PROJECT_NAME", "demo"),
        ("OS_USER_DOMAIN_NAME", "Default"),
        ("OS_PROJECT_DOMAIN_NAME", "Default"),
        ("OS_REGION_NAME", "RegionOne"),
    ];
    let out = df_env(
        d.path(),
        &["-v", "--upload", "--output=json", "a.img"],
        &env,
    )
    .ok();
    let rec = out.json();
    assert_eq!(rec["status"], "active");
    // The image endpoint came from the catalog: the no-auth Glance.
    assert!(
        out.stderr.contains(&format!("POST {}/v2/images", s.glance)),
        "{out:#?}"
    );
    let (status, _) = image(&s.glance, rec["id"].as_str().unwrap(), None);
    assert_eq!(status, 200);

    // Internal interface and a project given by id (unversioned auth URL).
    let out = df_env(
        d.path(),
        &[
            "-v",
            "--os-interface",
            "internal",
            "--os-project-id",
            &s.demo_project_id,
            "a.img",
        ],
        &[
            ("OS_AUTH_URL", s.keystone.as_str()),
            ("OS_USERNAME", "demo"),
            ("OS_PASSWORD", DEMO_PASSWORD),
        ],
    )
    .ok();
    assert!(
        out.stderr.contains(&format!("POST {}/v2/images", s.glance)),
        "{out:#?}"
    );

    // A token with OS_AUTH_URL and no image URL: the token's own catalog.
    let token = keystone_token(&s.keystone);
    let out = df_env(
        d.path(),
        &["-v", "a.img"],
        &[
            ("OS_AUTH_URL", auth.as_str()),
            ("OS_AUTH_TOKEN", token.as_str()),
        ],
    )
    .ok();
    assert!(
        out.stderr.contains(&format!("POST {}/v2/images", s.glance)),
        "{out:#?}"
    );
    assert!(!out.all().contains(&token), "token printed: {out:#?}");

    // No endpoint in that region.
    let mut env3 = env.to_vec();
    env3.retain(|(k, _)| *k != "OS_REGION_NAME");
    env3.push(("OS_REGION_NAME", "RegionThree"));
    let out = df_env(d.path(), &["a.img"], &env3);
    out.failed_with(1, &["no public image endpoint in region RegionThree"]);

    // Wrong password: Keystone's 401 in one line.
    let mut bad = env.to_vec();
    bad.retain(|(k, _)| *k != "OS_PASSWORD");
    bad.push(("OS_PASSWORD", "wrong-password-xyz"));
    let out = df_env(d.path(), &["a.img"], &bad);
    out.failed_with(1, &["Keystone", "401"]);
    assert!(!out.all().contains("wrong-password-xyz"));

    // clouds.yaml (./clouds.yaml) with --os-cloud and OS_CLOUD.
    std::fs::write(
        d.path().join("clouds.yaml"),
        format!(
            "clouds:\n  devstack:\n    auth:\n      auth_url: {auth}\n      username: demo\n      \
             password: {DEMO_PASSWORD}\n      project_name: demo\n      user_domain_name: Default\n      \
             project_domain_name: Default\n    region_name: RegionOne\n    interface: public\n"
        ),
    )
    .unwrap();
    let out = df(
        d.path(),
        &["--os-cloud", "devstack", "--output=json", "a.img"],
    )
    .ok();
    assert_eq!(out.json()["status"], "queued");
    let out = df_env(
        d.path(),
        &["--output=json", "a.img"],
        &[("OS_CLOUD", "devstack")],
    )
    .ok();
    assert_eq!(out.json()["status"], "queued");
    // ~/.config/openstack/clouds.yaml is searched as well.
    let sub = d.path().join("elsewhere");
    std::fs::create_dir_all(d.path().join(".config/openstack")).unwrap();
    std::fs::create_dir_all(&sub).unwrap();
    std::fs::rename(
        d.path().join("clouds.yaml"),
        d.path().join(".config/openstack/clouds.yaml"),
    )
    .unwrap();
    let out = df_env(
        &sub,
        &["--output=json", "../a.img"],
        &[
            ("OS_CLOUD", "devstack"),
            ("HOME", d.path().to_str().unwrap()),
        ],
    )
    .ok();
    assert_eq!(out.json()["status"], "queued");
    // Admin of the bootstrap project can publish.
    let out = df_env(
        d.path(),
        &["--public", "--output=json", "a.img"],
        &[
            ("OS_AUTH_URL", auth.as_str()),
            ("OS_USERNAME", "admin"),
            ("OS_PASSWORD", KEYSTONE_ADMIN_PASSWORD),
            ("OS_PROJECT_NAME", "admin"),
        ],
    )
    .ok();
    assert_eq!(out.json()["visibility"], "public");
}

#[test]
fn secrets_never_printed() {
    let s = servers();
    let d = tempdir();
    std::fs::write(d.path().join("a.img"), vec![9u8; 4096]).unwrap();
    let auth = format!("{}/v3", s.keystone);
    let env = [
        ("OS_AUTH_URL", auth.as_str()),
        ("OS_USERNAME", "demo"),
        ("OS_PASSWORD", DEMO_PASSWORD),
        ("OS_PROJECT_NAME", "demo"),
    ];
    let mut seen = String::new();
    for args in [
        vec!["--debug", "--upload", "a.img"],
        vec!["-vv", "a.img"],
        vec!["-v", "--dry-run", "--upload", "a.img"],
        vec!["--debug", "--dry-run", "a.img"],
        vec![
            "--debug",
            "--disk-format=qcow2",
            "--force-disk-format",
            "--upload",
            "a.img",
        ],
    ] {
        let out = df_env(d.path(), &args, &env);
        seen.push_str(&out.all());
    }
    assert!(seen.contains("<redacted>"), "{seen}");
    assert!(!seen.contains(DEMO_PASSWORD), "password printed:\n{seen}");
    // The token Keystone issued never shows either: fetch one and look.
    let token = keystone_token(&s.keystone);
    assert!(!seen.contains(&token[..20]), "token printed:\n{seen}");
    // A token given directly, logged with --debug and echoed in errors.
    let secret = "projS:member";
    let url = format!("--os-image-url={}", s.glance_ctx);
    let mut seen = String::new();
    for args in [
        vec![
            url.as_str(),
            "--os-token",
            secret,
            "--debug",
            "--upload",
            "a.img",
        ],
        vec![
            url.as_str(),
            "--os-token",
            secret,
            "-vv",
            "--public",
            "a.img",
        ],
        vec![url.as_str(), "--os-token", secret, "--dry-run", "a.img"],
        vec![
            "--os-image-url=http://127.0.0.1:9",
            "--os-token",
            secret,
            "--retries=0",
            "-v",
            "a.img",
        ],
    ] {
        let out = df(d.path(), &args);
        seen.push_str(&out.all());
    }
    assert!(seen.contains("X-Auth-Token: <redacted>"), "{seen}");
    assert!(!seen.contains(secret), "token printed:\n{seen}");
}

fn keystone_token(keystone: &str) -> String {
    let agent: ureq::Agent = ureq::Agent::config_builder().build().into();
    let body = serde_json::json!({"auth": {"identity": {"methods": ["password"], "password": {"user": {
        "name": "demo", "password": DEMO_PASSWORD, "domain": {"name": "Default"}}}},
        "scope": {"project": {"name": "demo", "domain": {"name": "Default"}}}}});
    let resp = agent
        .post(format!("{keystone}/v3/auth/tokens"))
        .header("Content-Type", "application/json")
        .send(serde_json::to_vec(&body).unwrap())
        .unwrap();
    resp.headers()["X-Subject-Token"]
        .to_str()
        .unwrap()
        .to_string()
}

#[test]
fn glance_v1_against_the_v1_test_server() {
    let s = servers();
    let d = tempdir();
    let path = qcow2_with_data(d.path(), "v1.qcow2");
    let url = format!("--os-image-url={}", s.v1);
    let tok = format!("--os-token={V1_TOKEN}");
    let id = new_uuid();
    let out = df(
        d.path(),
        &[
            &url,
            &tok,
            "--api=glance-v1",
            "--upload",
            "--id",
            &id,
            "--public",
            "--protected",
            "--min-disk=3",
            "--min-ram=256",
            "--property",
            "os_distro=debian",
            "--property",
            "hw_qemu_guest_agent=yes",
            "--output=json",
            "v1.qcow2",
        ],
    )
    .ok();
    let rec = out.json();
    let (status, got) = get_json(&format!("{}/v1/images/{id}", s.v1), Some(V1_TOKEN));
    assert_eq!(status, 200);
    for r in [&rec, &got["image"]] {
        assert_eq!(r["id"], id.as_str());
        assert_eq!(r["name"], "v1.qcow2");
        assert_eq!(r["disk_format"], "qcow2");
        assert_eq!(r["container_format"], "bare");
        assert_eq!(r["is_public"], true);
        assert_eq!(r["protected"], true);
        assert_eq!(r["min_disk"], 3);
        assert_eq!(r["min_ram"], 256);
        assert_eq!(r["status"], "active");
        assert_eq!(r["checksum"], md5_hex(&path).as_str());
        assert_eq!(
            r["size"].as_u64(),
            Some(std::fs::metadata(&path).unwrap().len())
        );
        assert_eq!(r["properties"]["os_distro"], "debian");
        assert_eq!(r["properties"]["hw_qemu_guest_agent"], "yes");
    }
    // Without data: a queued record.
    let out = df(
        d.path(),
        &[&url, &tok, "--api=glance-v1", "--output=json", "v1.qcow2"],
    )
    .ok();
    assert_eq!(out.json()["status"], "queued");
    // Duplicate id: 409, the server's HTML error page stripped to its text.
    let out = df(
        d.path(),
        &[&url, &tok, "--api=glance-v1", "--id", &id, "v1.qcow2"],
    );
    out.failed_with(1, &["409 Conflict", "already exists"]);
    assert!(!out.stderr.contains('<'), "{out:#?}");
    // What v1 rejected: an unknown disk format (400), no token (401).
    let out = df(
        d.path(),
        &[
            &url,
            &tok,
            "--api=glance-v1",
            "--disk-format=floppy",
            "--force-disk-format",
            "v1.qcow2",
        ],
    );
    out.failed_with(1, &["400 Bad Request", "Invalid disk format 'floppy'"]);
    let out = df(d.path(), &[&url, "--api=glance-v1", "v1.qcow2"]);
    out.failed_with(1, &["401 Unauthorized"]);
    // What v1 cannot express is refused before sending.
    let out = df(
        d.path(),
        &[&url, &tok, "--api=glance-v1", "--tag=x", "v1.qcow2"],
    );
    out.failed_with(2, &["tags"]);
    let out = df(
        d.path(),
        &[&url, &tok, "--api=glance-v1", "--community", "v1.qcow2"],
    );
    out.failed_with(2, &["community"]);
    // A 503 is retried (the test server fails the first try of flaky-503*).
    let out = df(
        d.path(),
        &[
            &url,
            &tok,
            "--api=glance-v1",
            "--name=flaky-503-a",
            "-v",
            "--output=json",
            "v1.qcow2",
        ],
    )
    .ok();
    assert!(out.stderr.contains("retrying"), "{out:#?}");
    assert_eq!(out.json()["name"], "flaky-503-a");
    let out = df(
        d.path(),
        &[
            &url,
            &tok,
            "--api=glance-v1",
            "--name=flaky-503-b",
            "--retries=0",
            "v1.qcow2",
        ],
    );
    out.failed_with(1, &["503", "overloaded"]);
}

#[test]
fn ims_rules() {
    let s = servers();
    let d = tempdir();
    let path = qcow2_with_data(d.path(), "ims.qcow2");
    let url = format!("--os-image-url={}", s.glance);
    // Glance accepts IMS's request, __ properties included.
    let out = df(
        d.path(),
        &[
            &url,
            "--api=ims",
            "--name=ims-image",
            "--os-version",
            "Ubuntu 14.04 server 64bit",
            "--tag",
            "owner=ops",
            "--tag",
            "env=test",
            "--min-disk",
            "40",
            "--min-ram",
            "1024",
            "--upload",
            "--output=json",
            "ims.qcow2",
        ],
    )
    .ok();
    let rec = out.json();
    assert_eq!(rec["visibility"], "private");
    assert_eq!(rec["__os_version"], "Ubuntu 14.04 server 64bit");
    assert_eq!(rec["min_disk"], 40);
    assert_eq!(rec["status"], "active");
    assert_eq!(rec["checksum"], md5_hex(&path).as_str());
    let out = df(
        d.path(),
        &[&url, "--api=ims", "--dry-run", "--private", "ims.qcow2"],
    )
    .ok();
    assert!(
        out.stdout.contains("\"visibility\": \"private\""),
        "{out:#?}"
    );

    std::fs::write(d.path().join("a.img"), vec![0u8; 512]).unwrap();
    qemu_img(d.path(), &["create", "-q", "-f", "vmdk", "a.vmdk", "8M"]).ok();
    let u = "--os-image-url=http://127.0.0.1:9";
    let long = "x".repeat(256);
    let cases: Vec<(Vec<&str>, &str)> = vec![
        (vec![u, "--api=ims", "--public", "a.img"], "private"),
        (vec![u, "--api=ims", "--shared", "a.img"], "private"),
        (vec![u, "--api=ims", "a.vmdk"], "disk format 'vmdk'"),
        (vec![u, "--api=ims", "--disk-format=vdi", "a.img"], "zvhd2"),
        (
            vec![u, "--api=ims", "--container-format=ovf", "a.img"],
            "bare",
        ),
        (vec![u, "--api=ims", "--tag=plain", "a.img"], "KEY=VALUE"),
        (vec![u, "--api=ims", "--tag==v", "a.img"], "KEY=VALUE"),
        (vec![u, "--api=ims", "--min-disk=0", "a.img"], "1 to 1024"),
        (
            vec![u, "--api=ims", "--min-disk=1025", "a.img"],
            "1 to 1024",
        ),
        (vec![u, "--api=ims", "--name=", "a.img"], "1 to 255"),
        (vec![u, "--api=ims", "--name", &long, "a.img"], "--name"),
    ];
    for (args, needle) in cases {
        df(d.path(), &args).failed_with(2, &[needle]);
    }
    // zvhd2 and vhd are IMS formats: accepted by diskforge (the dry run
    // shows them), even though this Glance does not list zvhd2.
    let out = df(
        d.path(),
        &[u, "--api=ims", "--disk-format=zvhd2", "--dry-run", "a.img"],
    )
    .ok();
    assert!(out.stdout.contains("\"disk_format\": \"zvhd2\""));
}

#[test]
fn dry_run_sends_nothing() {
    let s = servers();
    let d = tempdir();
    std::fs::write(d.path().join("a.img"), vec![0u8; 1024]).unwrap();
    let id = new_uuid();
    let url = format!("--os-image-url={}", s.glance);
    let out = df(
        d.path(),
        &[
            &url,
            "--dry-run",
            "--upload",
            "--id",
            &id,
            "--os-token=sekrit-tok",
            "a.img",
        ],
    )
    .ok();
    assert!(
        out.stdout.contains(&format!("POST {}/v2/images", s.glance)),
        "{out:#?}"
    );
    assert!(
        out.stdout
            .contains(&format!("PUT {}/v2/images/{id}/file", s.glance)),
        "{out:#?}"
    );
    assert!(out.stdout.contains("X-Auth-Token: <redacted>"));
    assert!(!out.all().contains("sekrit-tok"));
    let (status, _) = image(&s.glance, &id, None);
    assert_eq!(status, 404, "a dry run must not create the image");
    // Keystone too: the auth request is shown, password redacted.
    let out = df_env(
        d.path(),
        &["--dry-run", "a.img"],
        &[
            ("OS_AUTH_URL", "http://127.0.0.1:9/v3"),
            ("OS_USERNAME", "u"),
            ("OS_PASSWORD", "pw-do-not-show"),
            ("OS_PROJECT_NAME", "p"),
        ],
    )
    .ok();
    assert!(
        out.stdout
            .contains("POST http://127.0.0.1:9/v3/auth/tokens"),
        "{out:#?}"
    );
    assert!(!out.all().contains("pw-do-not-show"));
}

#[test]
fn https_with_cacert_or_insecure() {
    let s = servers();
    let d = tempdir();
    std::fs::write(d.path().join("a.img"), vec![5u8; 8192]).unwrap();
    let url = format!("--os-image-url={}", s.v1_tls);
    let tok = format!("--os-token={V1_TOKEN}");
    let ca = s.ca_pem.to_str().unwrap();
    // The test CA is not among the system's roots.
    let out = df(
        d.path(),
        &[&url, &tok, "--api=glance-v1", "--retries=0", "a.img"],
    );
    out.failed_with(1, &["certificate"]);
    // --os-cacert, OS_CACERT and --insecure each make it work.
    let out = df(
        d.path(),
        &[
            &url,
            &tok,
            "--api=glance-v1",
            "--os-cacert",
            ca,
            "--upload",
            "--output=json",
            "a.img",
        ],
    )
    .ok();
    assert_eq!(out.json()["status"], "active");
    let out = df_env(
        d.path(),
        &[&url, &tok, "--api=glance-v1", "--output=json", "a.img"],
        &[("OS_CACERT", ca)],
    )
    .ok();
    assert_eq!(out.json()["status"], "queued");
    let out = df(
        d.path(),
        &[
            &url,
            &tok,
            "--api=glance-v1",
            "--insecure",
            "--output=json",
            "a.img",
        ],
    )
    .ok();
    assert_eq!(out.json()["status"], "queued");
    // A file without a certificate is a usage error.
    std::fs::write(d.path().join("empty.pem"), "not a certificate\n").unwrap();
    let out = df(d.path(), &[&url, &tok, "--os-cacert", "empty.pem", "a.img"]);
    out.failed_with(2, &["--os-cacert"]);
}

// ---------------------------------------------------------------------
// Security: the fault-injecting registry (registry_support/fault_registry.py)
// and the real Glance and Keystone where they can show the behaviour.
// ---------------------------------------------------------------------

/// The fault registry's log entries about image `id`: (role, method, path).
fn seen_for(id: &str) -> Vec<(String, String, String)> {
    servers()
        .fault
        .log()
        .into_iter()
        .filter(|(_, _, p, _)| p.contains(id))
        .map(|(r, m, p, _)| (r, m, p))
        .collect()
}

/// Nothing was ever sent to the hostile origin, and the pre-existing
/// image was never deleted nor overwritten.
fn assert_nothing_elsewhere() {
    let log = servers().fault.log();
    let other: Vec<_> = log.iter().filter(|e| e.0 == "other").collect();
    assert!(other.is_empty(), "the other origin was reached: {other:?}");
    let prod = registry_support::Fault::PROD_ID;
    let touched: Vec<_> = log
        .iter()
        .filter(|e| e.2.contains(prod) && e.1 != "GET")
        .collect();
    assert!(touched.is_empty(), "prod-golden was touched: {touched:?}");
}

#[test]
fn redirects_never_carry_the_token_elsewhere() {
    let s = servers();
    let d = tempdir();
    qcow2_with_data(d.path(), "r.qcow2");
    let token = "--os-token=fault-token-redirects";
    let self_ca = s.fault.tls_dir.join("selfsigned.pem");
    let cacert = format!("--os-cacert={}", self_ca.display());
    // (name = fault, registry, extra args, exit code, parts of the error line)
    type Case<'a> = (&'a str, &'a str, Vec<&'a str>, i32, Vec<&'a str>);
    let cases: Vec<Case> = vec![
        (
            "create-redirect-other",
            &s.fault.main,
            vec![],
            1,
            vec!["307 Temporary Redirect", "not followed", &s.fault.other],
        ),
        (
            "create-302-golden",
            &s.fault.main,
            vec![],
            1,
            vec!["302 Found", "not followed"],
        ),
        (
            "upload-get-redirect-other",
            &s.fault.main,
            vec!["--upload"],
            1,
            vec!["302 Found", "not followed", "reading the image record back"],
        ),
        (
            "upload-get-redirect-http",
            &s.fault.tls_self,
            vec!["--upload", &cacert],
            1,
            vec!["302 Found", "not followed", "https://127.0.0.1"],
        ),
        // Within one origin a GET redirect is followed, token and all.
        (
            "upload-get-redirect-same",
            &s.fault.main,
            vec!["--upload", "--output=json"],
            0,
            vec![],
        ),
    ];
    for (name, url, extra, code, parts) in cases {
        let id = new_uuid();
        let url = format!("--os-image-url={url}");
        let mut args = vec![url.as_str(), token, "--name", name, "--id", &id];
        args.extend(extra);
        args.push("r.qcow2");
        let out = df(d.path(), &args);
        if code == 0 {
            let out = out.ok();
            assert_eq!(out.json()["status"], "active", "{name}");
            let moved: Vec<_> = servers()
                .fault
                .log()
                .into_iter()
                .filter(|e| e.2.starts_with("/v2/_moved/") && e.2.contains(&id))
                .collect();
            assert!(
                !moved.is_empty()
                    && moved
                        .iter()
                        .all(|e| e.3.as_deref() == Some("fault-token-redirects")),
                "{name}: the same-origin redirect should carry the token: {moved:?}"
            );
        } else {
            out.failed_with(code, &parts);
        }
        // The https registry's redirect to plain http was not followed.
        let plain: Vec<_> = seen_for(&id)
            .into_iter()
            .filter(|e| name == "upload-get-redirect-http" && e.0 == "main")
            .collect();
        assert!(plain.is_empty(), "{name}: downgraded to http: {plain:?}");
    }
    assert_nothing_elsewhere();
}

#[test]
fn only_a_201_with_our_id_is_a_record_of_ours() {
    let s = servers();
    let d = tempdir();
    qcow2_with_data(d.path(), "c.qcow2");
    let url = format!("--os-image-url={}", s.fault.main);
    // (fault, parts of the error line, DELETEs expected for our id)
    let cases: Vec<(&str, Vec<&str>, usize)> = vec![
        ("create-200", vec!["200 OK", "instead of 201"], 0),
        ("create-other-id", vec!["not with the id"], 0),
        ("create-302-golden", vec!["302 Found", "not followed"], 0),
        (
            "upload-no-checksum",
            vec!["no checksum", "left behind (status active)"],
            0,
        ),
        (
            "upload-500-active",
            vec!["500 Internal Server Error", "left behind (status active)"],
            0,
        ),
        (
            "upload-500-queued",
            vec!["500 Internal Server Error", "(status queued) was deleted"],
            1,
        ),
        // A 201 made the record even when its body is no record.
        (
            "create-not-json",
            vec!["(201) is not JSON", "(status queued) was deleted"],
            1,
        ),
        (
            "create-huge",
            vec!["(201) is over 16 MiB", "(status queued) was deleted"],
            1,
        ),
    ];
    for (name, parts, deletes) in cases {
        // Both ids diskforge chooses and ids given with --id.
        for given in [false, true] {
            let id = new_uuid();
            let mut args = vec![url.as_str(), "--os-token=tok-201", "--name", name];
            if given {
                args.extend(["--id", &id]);
            }
            args.extend(["--upload", "c.qcow2"]);
            let out = df(d.path(), &args);
            out.failed_with(1, &parts);
            if given {
                let seen = seen_for(&id);
                let del = seen.iter().filter(|e| e.1 == "DELETE").count();
                assert_eq!(del, deletes, "{name}: {seen:?}");
                if name.starts_with("create-") && deletes == 0 {
                    assert!(
                        seen.iter().all(|e| e.1 == "POST" || e.1 == "GET"),
                        "{name}: nothing may be sent to a record not ours: {seen:?}"
                    );
                }
            }
        }
    }
    // No DELETE ever named another id than one of this test's.
    assert_nothing_elsewhere();
}

#[test]
fn issued_tokens_are_scrubbed_from_every_output() {
    let s = servers();
    let d = tempdir();
    std::fs::write(d.path().join("a.img"), vec![4u8; 4096]).unwrap();
    // Real Keystone issues the token; the fault registry echoes it back
    // in an error body and in the record.
    let auth = format!("{}/v3", s.keystone);
    let env = [
        ("OS_AUTH_URL", auth.as_str()),
        ("OS_USERNAME", "demo"),
        ("OS_PASSWORD", DEMO_PASSWORD),
        ("OS_PROJECT_NAME", "demo"),
        ("OS_IMAGE_URL", s.fault.main.as_str()),
    ];
    let mut seen = String::new();
    for (name, extra, code) in [
        ("echo-token-400", vec![], 1),
        ("echo-token-400", vec!["--debug"], 1),
        ("echo-token-400", vec!["-v"], 1),
        ("echo-token-record", vec![], 0),
        ("echo-token-record", vec!["--output=json"], 0),
        ("echo-token-record", vec!["--debug", "--output=json"], 0),
    ] {
        let id = new_uuid();
        let mut args = vec!["--name", name, "--id", &id];
        args.extend(extra);
        args.push("a.img");
        let out = df_env(d.path(), &args, &env);
        assert_eq!(out.code, code, "{name}: {out:#?}");
        seen.push_str(&out.all());
    }
    let tokens: Vec<String> = s
        .fault
        .log()
        .into_iter()
        .filter_map(|e| e.3)
        // Keystone's Fernet tokens (the other tests send short fake ones).
        .filter(|t| t.starts_with("gAAAA"))
        .collect();
    // One token issued per run, each seen by the fault registry.
    assert!(tokens.len() >= 6, "Keystone tokens seen: {}", tokens.len());
    for t in &tokens {
        assert!(!seen.contains(t.as_str()), "issued token printed:\n{seen}");
        assert!(!seen.contains(&t[..24]), "part of a token printed:\n{seen}");
    }
    assert!(!seen.contains(DEMO_PASSWORD), "password printed:\n{seen}");
    assert!(seen.contains("<redacted>"), "{seen}");
    assert!(
        seen.contains("Invalid request from token <redacted>"),
        "{seen}"
    );
}

/// Runs diskforge and measures how long it took.
fn timed(dir: &Path, args: &[&str]) -> (Out, f64) {
    let t = std::time::Instant::now();
    let out = df(dir, args);
    (out, t.elapsed().as_secs_f64())
}

#[test]
fn one_deadline_per_request_and_announced_retries() {
    let s = servers();
    let d = tempdir();
    std::fs::write(d.path().join("a.img"), vec![6u8; 1 << 20]).unwrap();
    let url = format!("--os-image-url={}", s.fault.main);
    // A server trickling one byte every 2 s, or silent, is cut off at
    // --timeout 3 (one attempt: --retries 0).
    for (name, extra) in [
        ("trickle-create", vec![]),
        ("trickle-body", vec![]),
        ("stall-create", vec![]),
        ("upload-trickle-reply", vec!["--upload"]),
    ] {
        let mut args = vec![url.as_str(), "--timeout=3", "--retries=0", "--name", name];
        args.extend(extra);
        args.push("a.img");
        let (out, took) = timed(d.path(), &args);
        out.failed_with(1, &["--timeout 3"]);
        assert!(took < 8.0, "{name}: took {took:.1} s: {out:#?}");
    }
    // Retries are announced without -v, then the error line.
    let (out, took) = timed(
        d.path(),
        &[
            &url,
            "--timeout=2",
            "--retries=1",
            "--name",
            "stall-create",
            "a.img",
        ],
    );
    assert_eq!(out.code, 1, "{out:#?}");
    let lines: Vec<&str> = out.stderr.lines().collect();
    assert_eq!(lines.len(), 2, "{out:#?}");
    assert!(
        lines[0].contains("creating the image: retrying in 0.5 s (attempt 2 of 2): no complete answer within --timeout 2 s"),
        "{out:#?}"
    );
    assert!(took < 8.0, "took {took:.1} s");
    let out = df(
        d.path(),
        &[&url, "--name", "flaky-503", "--output=json", "a.img"],
    )
    .ok();
    assert!(
        out.stderr.contains(
            "retrying in 0.5 s (attempt 2 of 4): 503 Service Unavailable: Glance is busy"
        ),
        "{out:#?}"
    );
    assert_eq!(out.json()["status"], "queued");
    // -q keeps quiet about it.
    let out = df(d.path(), &[&url, "-q", "--name", "flaky-503", "a.img"]).ok();
    assert_eq!(out.stderr, "", "{out:#?}");
}

/// Whether Python's ssl (OpenSSL) accepts the server at `url` with `ca`:
/// the oracle for what diskforge must accept.
fn python_accepts(url: &str, ca: &Path) -> bool {
    let py = registry_support::venv().join("bin/python");
    let code = format!(
        "import ssl, urllib.request\nctx = ssl.create_default_context(cafile={:?})\n\
         urllib.request.urlopen({:?}, context=ctx, timeout=10).read()",
        ca.display().to_string(),
        format!("{url}/_log")
    );
    Command::new(py)
        .args(["-c", &code])
        .output()
        .expect("run python")
        .status
        .success()
}

#[test]
fn certificates_as_curl_and_python_check_them() {
    let s = servers();
    let d = tempdir();
    qcow2_with_data(d.path(), "t.qcow2");
    let f = &s.fault;
    let pem = |n: &str| f.tls_dir.join(n);
    // (registry, CA file, parts of the error line; none = success)
    let cases: Vec<(&str, std::path::PathBuf, Vec<&str>)> = vec![
        (&f.tls_self, pem("selfsigned.pem"), vec![]),
        (
            &f.tls_self,
            s.ca_pem.clone(),
            vec!["unknown issuer", "--os-cacert"],
        ),
        (
            &f.tls_expired,
            pem("expired.pem"),
            vec!["expired on", "it is now"],
        ),
        (
            &f.tls_wrongname,
            pem("wrongname.pem"),
            vec!["name mismatch", "registry.example", "127.0.0.1"],
        ),
    ];
    for (url, ca, parts) in cases {
        let good = parts.is_empty();
        assert_eq!(python_accepts(url, &ca), good, "python and {url}");
        let out = df(
            d.path(),
            &[
                &format!("--os-image-url={url}"),
                &format!("--os-cacert={}", ca.display()),
                "--os-token=tok-tls",
                "--upload",
                "--output=json",
                "t.qcow2",
            ],
        );
        if good {
            assert_eq!(out.ok().json()["status"], "active");
        } else {
            // One line: a certificate error is not retried (a retry is
            // announced on a line of its own).
            out.failed_with(1, &parts);
            assert!(
                out.stderr.contains("TLS certificate of 127.0.0.1:"),
                "{out:#?}"
            );
        }
    }
    // Without --os-cacert: the system roots do not know it.
    let out = df(
        d.path(),
        &[&format!("--os-image-url={}", f.tls_self), "t.qcow2"],
    );
    out.failed_with(1, &["unknown issuer"]);
    // OS_CACERT works as --os-cacert does.
    let out = df_env(
        d.path(),
        &[
            &format!("--os-image-url={}", f.tls_self),
            "--output=json",
            "t.qcow2",
        ],
        &[("OS_CACERT", pem("selfsigned.pem").to_str().unwrap())],
    )
    .ok();
    assert_eq!(out.json()["status"], "queued");
}

#[test]
fn refusals_during_the_upload_are_reported() {
    let s = servers();
    let d = tempdir();
    // Bigger than the socket buffers: the registry answers long before
    // the data is all sent.
    std::fs::write(d.path().join("big.img"), vec![8u8; 24 << 20]).unwrap();
    let cacert = format!(
        "--os-cacert={}",
        s.fault.tls_dir.join("selfsigned.pem").display()
    );
    // Over http and https (where rustls must not lose the reply).
    for url in [&s.fault.main, &s.fault.tls_self] {
        let url = format!("--os-image-url={url}");
        for (name, parts) in [
            (
                "upload-401-early",
                vec!["401 Unauthorized", "token expired", "stopped reading"],
            ),
            (
                "upload-307-early",
                vec![
                    "307 Temporary Redirect",
                    "moved to another store",
                    "not followed",
                ],
            ),
        ] {
            let out = df(
                d.path(),
                &[
                    &url,
                    &cacert,
                    "--os-token=tok-up",
                    "--name",
                    name,
                    "--upload",
                    "big.img",
                ],
            );
            out.failed_with(1, &parts);
            for bad in ["Broken pipe", "reset"] {
                assert!(!out.stderr.contains(bad), "{url} {name}: {out:#?}");
            }
        }
    }
    assert_nothing_elsewhere();
    // The real Glance behind a token that expires during the upload (the
    // identity filter refuses it on the PUT, before Glance reads a byte).
    let id = new_uuid();
    let out = df(
        d.path(),
        &[
            &format!("--os-image-url={}", s.glance_ctx),
            "--os-token=expiring-projE:member",
            "--id",
            &id,
            "--upload",
            "big.img",
        ],
    );
    out.failed_with(
        1,
        &[
            "401 Unauthorized",
            "token expired during the upload",
            "was deleted",
        ],
    );
    assert!(!out.stderr.contains("Broken pipe"), "{out:#?}");
    let (status, _) = image(&s.glance_ctx, &id, Some("projE:admin"));
    assert_eq!(status, 404, "the queued record should be gone");
}

#[test]
fn disk_format_is_guarded() {
    let s = servers();
    let d = tempdir();
    let mk = |fmt: &str, file: &str, opts: &[&str]| {
        let mut a = vec!["create", "-q", "-f", fmt];
        a.extend(opts);
        a.extend([file, "8M"]);
        qemu_img(d.path(), &a).ok();
    };
    mk("qcow2", "q.qcow2", &[]);
    mk("qcow2", "base.qcow2", &[]);
    mk("qcow2", "top.qcow2", &["-b", "base.qcow2", "-F", "qcow2"]);
    mk("vmdk", "v.vmdk", &[]);
    mk("vdi", "d.vdi", &[]);
    mk("vpc", "dyn.vhd", &[]);
    mk("vpc", "fixed.vhd", &["-o", "subformat=fixed"]);
    mk("qcow", "old.qcow", &[]);
    mk("qed", "e.qed", &[]);
    mk("vhdx", "x.vhdx", &[]);
    std::fs::write(d.path().join("plain.raw"), vec![7u8; 1 << 20]).unwrap();
    // Only qemu's vhdx magic, no valid header: qemu-img probes it as vhdx
    // (and refuses it), so register must not call it raw.
    let mut magic = b"vhdxfile".to_vec();
    magic.resize(1 << 16, 0);
    std::fs::write(d.path().join("magic.bin"), magic).unwrap();
    let q = qemu_img(d.path(), &["info", "magic.bin"]);
    assert!(
        q.code == 1 && q.stderr.contains("No valid VHDX header found"),
        "qemu-img should probe magic.bin as vhdx: {q:#?}"
    );
    // (file, --disk-format, forced, Ok(format sent) or Err(parts of the error))
    type Case = (
        &'static str,
        Option<&'static str>,
        bool,
        Result<&'static str, Vec<&'static str>>,
    );
    let refused = |what: &'static str| Err(vec![what, "--force-disk-format"]);
    let cases: Vec<Case> = vec![
        ("q.qcow2", None, false, Ok("qcow2")),
        ("q.qcow2", Some("raw"), false, refused("is a qcow2 image")),
        (
            "top.qcow2",
            Some("raw"),
            false,
            refused("backing or data file"),
        ),
        ("q.qcow2", Some("vmdk"), false, refused("is a qcow2 image")),
        ("v.vmdk", Some("raw"), false, refused("is a vmdk image")),
        ("d.vdi", Some("raw"), false, refused("is a vdi image")),
        (
            "dyn.vhd",
            Some("raw"),
            false,
            refused("is a vhd (vpc) image"),
        ),
        ("dyn.vhd", Some("vhd"), false, Ok("vhd")),
        ("fixed.vhd", None, false, Ok("vhd")),
        ("fixed.vhd", Some("vhd"), false, Ok("vhd")),
        (
            "plain.raw",
            Some("qcow2"),
            false,
            refused("has no qcow2 header"),
        ),
        (
            "plain.raw",
            Some("vhd"),
            false,
            refused("has no vhd header"),
        ),
        ("plain.raw", Some("iso"), false, Ok("iso")),
        ("plain.raw", None, false, Ok("raw")),
        ("e.qed", None, false, Err(vec!["is a qed image", "convert"])),
        ("e.qed", Some("raw"), false, refused("is a qed image")),
        ("x.vhdx", None, false, Ok("vhdx")),
        ("x.vhdx", Some("raw"), false, refused("is a vhdx image")),
        ("magic.bin", None, false, Ok("vhdx")),
        ("magic.bin", Some("raw"), false, refused("is a vhdx image")),
        (
            "old.qcow",
            Some("qcow2"),
            false,
            refused("qcow (version 1)"),
        ),
        (
            "plain.raw",
            Some("qcow3"),
            false,
            Err(vec![
                "'qcow3'",
                "not a disk format Glance accepts",
                "--force-disk-format",
            ]),
        ),
        ("q.qcow2", Some("raw"), true, Ok("raw")),
        ("plain.raw", Some("qcow3"), true, Ok("qcow3")),
    ];
    let u = "--os-image-url=http://127.0.0.1:9";
    for (file, declared, force, want) in cases {
        let fmt = declared.map(|f| format!("--disk-format={f}"));
        let mut args = vec![u, "--dry-run"];
        args.extend(fmt.as_deref());
        if force {
            args.push("--force-disk-format");
        }
        args.push(file);
        let out = df(d.path(), &args);
        match want {
            Ok(f) => {
                let out = out.ok();
                assert!(
                    out.stdout.contains(&format!("\"disk_format\": \"{f}\"")),
                    "{file} {declared:?}: {out:#?}"
                );
            }
            Err(parts) => out.failed_with(2, &parts),
        }
    }
    // --force-disk-format needs a --disk-format.
    df(d.path(), &[u, "--force-disk-format", "q.qcow2"])
        .failed_with(2, &["--force-disk-format needs --disk-format"]);

    // Against the real Glance: a qcow2 with a backing file declared raw is
    // refused before anything is sent...
    let url = format!("--os-image-url={}", s.glance);
    let id = new_uuid();
    let out = df(
        d.path(),
        &[
            &url,
            "--id",
            &id,
            "--disk-format=raw",
            "--upload",
            "top.qcow2",
        ],
    );
    out.failed_with(2, &["top.qcow2", "is a qcow2 image"]);
    assert_eq!(image(&s.glance, &id, None).0, 404, "nothing may be created");
    // ... and so is a plain qcow2, which Glance 33 itself would take as
    // raw (its safety checks refuse only the one with a backing file): the
    // guard is diskforge's.
    let out = df(d.path(), &[&url, "--disk-format=raw", "q.qcow2"]);
    out.failed_with(2, &["q.qcow2", "is a qcow2 image"]);
    let out = df(
        d.path(),
        &[
            &url,
            "--disk-format=raw",
            "--force-disk-format",
            "--upload",
            "--output=json",
            "q.qcow2",
        ],
    )
    .ok();
    assert_eq!(out.json()["disk_format"], "raw");
    assert_eq!(out.json()["status"], "active");
    assert!(
        out.stderr.contains("warning: q.qcow2 is a qcow2 image"),
        "{out:#?}"
    );
    let out = df(
        d.path(),
        &[
            &url,
            "--disk-format=raw",
            "--force-disk-format",
            "--upload",
            "top.qcow2",
        ],
    );
    out.failed_with(1, &["415", "safety checks", "deleted"]);
    // A forced value outside the list reaches Glance, which refuses it.
    let out = df(
        d.path(),
        &[
            &url,
            "--disk-format=qcow3",
            "--force-disk-format",
            "plain.raw",
        ],
    );
    out.failed_with(1, &["400 Bad Request", "'qcow3' is not one of"]);
}

/// An application credential of the demo user, made in the real
/// Keystone: (id, name, secret).
fn app_credential(keystone: &str, name: &str) -> (String, String) {
    let token = keystone_token(keystone);
    let agent: ureq::Agent = ureq::Agent::config_builder().build().into();
    let mut who = agent
        .get(format!("{keystone}/v3/auth/tokens"))
        .header("X-Auth-Token", &token)
        .header("X-Subject-Token", &token)
        .call()
        .unwrap();
    let who: Value = serde_json::from_str(&who.body_mut().read_to_string().unwrap()).unwrap();
    let user = who["token"]["user"]["id"].as_str().unwrap().to_string();
    let body = serde_json::json!({"application_credential": {"name": name}});
    let mut resp = agent
        .post(format!(
            "{keystone}/v3/users/{user}/application_credentials"
        ))
        .header("X-Auth-Token", &token)
        .header("Content-Type", "application/json")
        .send(serde_json::to_vec(&body).unwrap())
        .unwrap();
    let cred: Value = serde_json::from_str(&resp.body_mut().read_to_string().unwrap()).unwrap();
    let c = &cred["application_credential"];
    (
        c["id"].as_str().unwrap().to_string(),
        c["secret"].as_str().unwrap().to_string(),
    )
}

#[test]
fn keystone_application_credentials() {
    let s = servers();
    let d = tempdir();
    std::fs::write(d.path().join("a.img"), vec![2u8; 8192]).unwrap();
    let auth = format!("{}/v3", s.keystone);
    let name = format!("ci-{}", new_uuid());
    let (id, secret) = app_credential(&s.keystone, &name);
    // By id, by name (with its user), from clouds.yaml; the secret is
    // never printed, --debug included.
    let by_id = [
        ("OS_AUTH_TYPE", "v3applicationcredential"),
        ("OS_AUTH_URL", auth.as_str()),
        ("OS_APPLICATION_CREDENTIAL_ID", id.as_str()),
        ("OS_APPLICATION_CREDENTIAL_SECRET", secret.as_str()),
    ];
    let by_name = [
        ("OS_AUTH_TYPE", "v3applicationcredential"),
        ("OS_AUTH_URL", auth.as_str()),
        ("OS_APPLICATION_CREDENTIAL_NAME", name.as_str()),
        ("OS_USERNAME", "demo"),
        ("OS_USER_DOMAIN_NAME", "Default"),
        ("OS_APPLICATION_CREDENTIAL_SECRET", secret.as_str()),
    ];
    std::fs::write(
        d.path().join("clouds.yaml"),
        format!(
            "clouds:\n  ci:\n    auth_type: v3applicationcredential\n    auth:\n      \
             auth_url: {auth}\n      application_credential_id: {id}\n      \
             application_credential_secret: {secret}\n    region_name: RegionOne\n"
        ),
    )
    .unwrap();
    let mut seen = String::new();
    for (what, env, args) in [
        ("by id", &by_id[..], vec!["--debug", "--upload"]),
        ("by name", &by_name[..], vec!["-v"]),
        ("clouds.yaml", &[("OS_CLOUD", "ci")][..], vec!["-v"]),
    ] {
        let mut a = args.clone();
        a.extend(["--output=json", "a.img"]);
        let out = df_env(d.path(), &a, env).ok();
        assert!(
            out.stderr.contains(&format!("POST {}/v2/images", s.glance)),
            "{what}: the catalog's image endpoint: {out:#?}"
        );
        assert!(
            ["queued", "active"].contains(&out.json()["status"].as_str().unwrap_or_default()),
            "{what}: {out:#?}"
        );
        seen.push_str(&out.all());
    }
    assert!(!seen.contains(&secret), "secret printed:\n{seen}");
    // A wrong secret: Keystone's 401 in one line, the secret not shown.
    let mut bad = by_id.to_vec();
    bad.retain(|(k, _)| *k != "OS_APPLICATION_CREDENTIAL_SECRET");
    bad.push((
        "OS_APPLICATION_CREDENTIAL_SECRET",
        "wrong-secret-0123456789",
    ));
    let out = df_env(d.path(), &["a.img"], &bad);
    out.failed_with(
        1,
        &["Keystone application credential authentication", "401"],
    );
    assert!(!out.all().contains("wrong-secret-0123456789"), "{out:#?}");
    // What is missing is what this auth type needs (no password asked for).
    let u = "--os-auth-url=http://127.0.0.1:9/v3";
    let t = "--os-auth-type=v3applicationcredential";
    let cases: Vec<(Vec<&str>, Vec<&str>, &str)> = vec![
        (
            vec![u, t, "a.img"],
            vec![
                "OS_APPLICATION_CREDENTIAL_SECRET",
                "OS_APPLICATION_CREDENTIAL_ID",
            ],
            "OS_PASSWORD",
        ),
        (
            vec![u, t, "--os-application-credential-id=x", "a.img"],
            vec!["OS_APPLICATION_CREDENTIAL_SECRET"],
            "OS_APPLICATION_CREDENTIAL_ID",
        ),
        (
            vec![
                u,
                t,
                "--os-application-credential-name=n",
                "--os-application-credential-secret=sssss",
                "a.img",
            ],
            vec!["--os-username"],
            "OS_PASSWORD",
        ),
        (
            vec![u, "--os-auth-type=kerberos", "a.img"],
            vec!["--os-auth-type 'kerberos'"],
            "OS_PASSWORD",
        ),
    ];
    for (args, want, not) in cases {
        let out = df(d.path(), &args);
        out.failed_with(2, &want);
        assert!(!out.stderr.contains(not), "{out:#?}");
    }
}

#[test]
fn clouds_yaml_with_secure_yaml_and_profiles() {
    let s = servers();
    let d = tempdir();
    std::fs::write(d.path().join("a.img"), vec![1u8; 4096]).unwrap();
    let auth = format!("{}/v3", s.keystone);
    // The password only in secure.yaml; the auth URL and region only in
    // a clouds-public.yaml profile (in ~/.config/openstack).
    std::fs::write(
        d.path().join("clouds.yaml"),
        "clouds:\n  sec:\n    profile: lab\n    auth:\n      username: demo\n      \
         project_name: demo\n  noprofile:\n    profile: nowhere\n    auth: {username: demo}\n",
    )
    .unwrap();
    std::fs::write(
        d.path().join("secure.yaml"),
        format!("clouds:\n  sec:\n    auth:\n      password: {DEMO_PASSWORD}\n"),
    )
    .unwrap();
    let conf = d.path().join(".config/openstack");
    std::fs::create_dir_all(&conf).unwrap();
    std::fs::write(
        conf.join("clouds-public.yaml"),
        format!(
            "public-clouds:\n  lab:\n    auth:\n      auth_url: {auth}\n      \
             user_domain_name: Default\n      project_domain_name: Default\n    \
             region_name: RegionOne\n"
        ),
    )
    .unwrap();
    let out = df(
        d.path(),
        &["--os-cloud", "sec", "-v", "--output=json", "a.img"],
    )
    .ok();
    assert_eq!(out.json()["status"], "queued");
    assert!(
        out.stderr.contains(&format!("POST {auth}/auth/tokens")),
        "{out:#?}"
    );
    assert!(!out.all().contains(DEMO_PASSWORD), "{out:#?}");
    // Without secure.yaml the password is what is missing.
    std::fs::remove_file(d.path().join("secure.yaml")).unwrap();
    let out = df(d.path(), &["--os-cloud", "sec", "a.img"]);
    out.failed_with(2, &["missing --os-password"]);
    // A profile found nowhere is named.
    let out = df(d.path(), &["--os-cloud", "noprofile", "a.img"]);
    out.failed_with(2, &["profile 'nowhere'", "clouds-public.yaml"]);
}

#[test]
fn keystone_token_auth() {
    let s = servers();
    let d = tempdir();
    std::fs::write(d.path().join("a.img"), vec![3u8; 4096]).unwrap();
    let auth = format!("{}/v3", s.keystone);
    let token = keystone_token(&s.keystone);
    // v3token with a project: a new token for it, the catalog's endpoint.
    let env = [
        ("OS_AUTH_TYPE", "v3token"),
        ("OS_AUTH_URL", auth.as_str()),
        ("OS_TOKEN", token.as_str()),
        ("OS_PROJECT_NAME", "demo"),
    ];
    let out = df_env(d.path(), &["-v", "--output=json", "a.img"], &env).ok();
    assert_eq!(out.json()["status"], "queued");
    assert!(
        out.stderr.contains(&format!("POST {auth}/auth/tokens"))
            && out.stderr.contains(&format!("POST {}/v2/images", s.glance)),
        "{out:#?}"
    );
    let out = df_env(d.path(), &["--dry-run", "--debug", "a.img"], &env).ok();
    assert!(out.stdout.contains("\"methods\""), "{out:#?}");
    assert!(!out.all().contains(&token), "token printed: {out:#?}");
    // A token Keystone does not know: its answer (404 for a malformed
    // Fernet token) in one line.
    let bad = [
        ("OS_AUTH_TYPE", "v3token"),
        ("OS_AUTH_URL", auth.as_str()),
        ("OS_TOKEN", "gAAAAA-not-a-token-at-all"),
        ("OS_PROJECT_NAME", "demo"),
    ];
    df_env(d.path(), &["a.img"], &bad).failed_with(
        1,
        &[
            "Keystone token authentication failed",
            "Could not recognize Fernet token",
        ],
    );
    // v3token without a token: that is what is missing, nothing else.
    let out = df_env(
        d.path(),
        &["a.img"],
        &[("OS_AUTH_TYPE", "v3token"), ("OS_AUTH_URL", auth.as_str())],
    );
    out.failed_with(2, &["token auth", "missing --os-token"]);
    assert!(!out.stderr.contains("OS_PASSWORD"), "{out:#?}");
}

#[test]
fn client_certificates() {
    let s = servers();
    let d = tempdir();
    std::fs::write(d.path().join("a.img"), vec![5u8; 4096]).unwrap();
    let t = &s.fault.tls_dir;
    let p = |n: &str| t.join(n).display().to_string();
    let url = format!("--os-image-url={}", s.fault.tls_clientcert);
    let ca = format!("--os-cacert={}", p("selfsigned.pem"));
    let cert = format!("--os-cert={}", p("client.pem"));
    let key = format!("--os-key={}", p("client.key"));
    let combined = format!("--os-cert={}", p("client-combined.pem"));
    let wrong_cert = format!("--os-cert={}", p("selfsigned.pem"));
    let wrong_key = format!("--os-key={}", p("selfsigned.key"));
    // (args, env, exit code, parts of the error line)
    type Case<'a> = (Vec<&'a str>, Vec<(&'a str, String)>, i32, Vec<&'a str>);
    let cases: Vec<Case> = vec![
        (vec![&cert, &key], vec![], 0, vec![]),
        (vec![&combined], vec![], 0, vec![]),
        (
            vec![],
            vec![("OS_CERT", p("client.pem")), ("OS_KEY", p("client.key"))],
            0,
            vec![],
        ),
        (
            vec![],
            vec![],
            1,
            vec!["wants a client certificate", "--os-cert"],
        ),
        (
            vec![&wrong_cert, &wrong_key],
            vec![],
            1,
            vec!["refused the client certificate"],
        ),
        (
            vec![&cert],
            vec![],
            2,
            vec!["client.pem", "no PEM private key"],
        ),
        (vec![&key], vec![], 2, vec!["--os-key", "needs --os-cert"]),
    ];
    for (extra, env, code, parts) in cases {
        let mut args = vec![url.as_str(), ca.as_str(), "--output=json"];
        args.extend(extra.iter().copied());
        args.push("a.img");
        let env: Vec<(&str, &str)> = env.iter().map(|(k, v)| (*k, v.as_str())).collect();
        let out = df_env(d.path(), &args, &env);
        if code == 0 {
            assert_eq!(out.ok().json()["status"], "queued");
        } else {
            // One line: a refused handshake is not retried.
            out.failed_with(code, &parts);
        }
    }
}

#[test]
fn openstack_idiom_and_output_formats() {
    let s = servers();
    let d = tempdir();
    let path = d.path().join("a.img");
    std::fs::write(&path, vec![6u8; 65536]).unwrap();
    let url = format!("--os-image-url={}", s.glance);
    // `openstack image create --file FILE ... NAME`: the argument is the
    // name; `-f value -c id` prints the id alone.
    let out = df(
        d.path(),
        &[
            &url,
            "--file",
            "a.img",
            "--disk-format",
            "raw",
            "--container-format",
            "bare",
            "my-image",
            "-f",
            "value",
            "-c",
            "id",
        ],
    )
    .ok();
    let id = out.stdout.trim_end().to_string();
    assert_eq!(out.stdout, format!("{id}\n"), "{out:#?}");
    let (status, rec) = image(&s.glance, &id, None);
    assert_eq!(status, 200);
    assert_eq!(rec["name"], "my-image");
    assert_eq!(rec["status"], "active");
    // (args, what stdout must be or contain)
    let md5 = md5_hex(&path);
    type Check<'a> = Box<dyn Fn(&str) -> bool + 'a>;
    let cases: Vec<(Vec<&str>, Check)> = vec![
        (
            vec![
                "--file",
                "a.img",
                "n1",
                "-f",
                "value",
                "-c",
                "checksum",
                "-c",
                "protected",
            ],
            Box::new(|o| o == format!("{md5}\nFalse\n")),
        ),
        (
            vec![
                "a.img", "--name", "n2", "-f", "shell", "-c", "name", "-c", "status",
            ],
            Box::new(|o| o == "name=\"n2\"\nstatus=\"queued\"\n"),
        ),
        (
            vec!["a.img", "-f", "json", "-c", "name", "-c", "disk_format"],
            Box::new(|o| {
                serde_json::from_str::<Value>(o).ok()
                    == Some(serde_json::json!({"name": "a.img", "disk_format": "raw"}))
            }),
        ),
        (
            vec!["a.img", "-f", "yaml"],
            Box::new(|o| {
                serde_yaml_ng::from_str::<Value>(o)
                    .is_ok_and(|v| v["name"] == "a.img" && v["status"] == "queued")
            }),
        ),
        (
            vec!["a.img", "-f", "table", "-c", "status"],
            Box::new(|o| {
                o == "+--------+--------+\n| Field  | Value  |\n+--------+--------+\n\
                      | status | queued |\n+--------+--------+\n"
            }),
        ),
    ];
    for (args, ok) in cases {
        let mut a = vec![url.as_str(), "-q"];
        a.extend(args.iter().copied());
        let out = df(d.path(), &a).ok();
        assert!(ok(&out.stdout), "{args:?}: {out:#?}");
    }
    // Refused before anything is sent.
    let u = "--os-image-url=http://127.0.0.1:9";
    df(d.path(), &[u, "--file", "a.img", "--name", "x", "y"])
        .failed_with(2, &["--name", "give one"]);
    df(d.path(), &[u, "-f", "xml", "a.img"]).failed_with(2, &["xml"]);
    // Columns the record does not have are left out; none known is an
    // error that names the image made and the columns it has.
    let out = df(
        d.path(),
        &[
            &url, "-q", "-f", "value", "-c", "nope", "-c", "status", "a.img",
        ],
    )
    .ok();
    assert_eq!(out.stdout, "queued\n");
    let out = df(d.path(), &[&url, "-q", "-c", "nope", "a.img"]);
    out.failed_with(1, &["was registered", "no column nope", "checksum"]);
}

/// Runs `diskforge register ARGS` in `dir`, and once the record `id` is
/// being uploaded sends it `sig`.
fn interrupted_upload(dir: &Path, args: &[&str], glance: &str, id: &str, sig: i32) -> Out {
    use std::os::unix::process::ExitStatusExt;
    let child = Command::new(env!("CARGO_BIN_EXE_diskforge"))
        .arg("register")
        .args(args)
        .current_dir(dir)
        .env("HOME", dir)
        .stdout(std::process::Stdio::piped())
        .stderr(std::process::Stdio::piped())
        .spawn()
        .expect("run diskforge");
    let started = std::time::Instant::now();
    loop {
        // The test Glance serves one request at a time: once the record
        // is there, the upload holds it.
        let (code, rec) = image(glance, id, None);
        if code == 200 {
            std::thread::sleep(std::time::Duration::from_millis(1500));
            break;
        }
        assert!(
            started.elapsed().as_secs() < 60,
            "the upload of {id} never started: {code} {rec}"
        );
        std::thread::sleep(std::time::Duration::from_millis(20));
    }
    // SAFETY: kill on the pid of a child this test started and has not reaped.
    assert_eq!(unsafe { libc::kill(child.id() as i32, sig) }, 0);
    let mut child = child;
    let waited = std::time::Instant::now();
    while child.try_wait().expect("wait").is_none() {
        if waited.elapsed().as_secs() > 30 {
            let _ = child.kill();
            let out = child.wait_with_output().expect("wait for diskforge");
            panic!(
                "diskforge did not die of signal {sig} within 30 s: {}",
                String::from_utf8_lossy(&out.stderr)
            );
        }
        std::thread::sleep(std::time::Duration::from_millis(50));
    }
    let out = child.wait_with_output().expect("wait for diskforge");
    Out {
        code: out.status.signal().map_or(-1, |s| 128 + s),
        stdout: String::from_utf8_lossy(&out.stdout).into_owned(),
        stderr: String::from_utf8_lossy(&out.stderr).into_owned(),
    }
}

#[test]
fn an_interrupted_upload_leaves_no_record() {
    let s = servers();
    let d = tempdir();
    // A big sparse image: the upload takes long enough to be interrupted.
    let big = std::fs::File::create(d.path().join("big.raw")).unwrap();
    big.set_len(64 << 30).unwrap();
    drop(big);
    let url = format!("--os-image-url={}", s.glance);
    // (signal, --keep-on-failure, record left, parts of the line)
    let cases: &[(&str, i32, bool, bool, &[&str])] = &[
        (
            "SIGINT deletes",
            libc::SIGINT,
            false,
            false,
            &["interrupted", "was deleted"],
        ),
        (
            "SIGTERM deletes",
            libc::SIGTERM,
            false,
            false,
            &["interrupted", "was deleted"],
        ),
        (
            "SIGHUP deletes",
            libc::SIGHUP,
            false,
            false,
            &["interrupted", "was deleted"],
        ),
        (
            "--keep-on-failure keeps",
            libc::SIGINT,
            true,
            true,
            &["interrupted", "--keep-on-failure", "openstack image delete"],
        ),
    ];
    for (name, sig, keep, left, parts) in cases {
        let id = new_uuid();
        let mut args = vec![url.as_str(), "-q", "--id", &id, "--file", "big.raw"];
        if *keep {
            args.push("--keep-on-failure");
        }
        args.push("interrupted");
        let out = interrupted_upload(d.path(), &args, &s.glance, &id, *sig);
        assert_eq!(out.code, 128 + sig, "{name}: died of the signal: {out:#?}");
        for p in *parts {
            assert!(out.stderr.contains(p), "{name}: lacks {p:?}: {out:#?}");
        }
        assert!(
            out.stderr.contains(&id),
            "{name}: names the image: {out:#?}"
        );
        let (code, rec) = image(&s.glance, &id, None);
        assert_eq!(code == 200, *left, "{name}: {code} {rec}");
        if *left {
            let _ = Command::new("curl")
                .args([
                    "-sS",
                    "-X",
                    "DELETE",
                    &format!("{}/v2/images/{id}", s.glance),
                ])
                .status();
        }
    }
}
