"""Prepares and starts the real registries the register tests run against.

    python serve.py glance STATE_DIR PORT noauth|context
    python serve.py keystone STATE_DIR PORT
    python serve.py keystone-setup KEYSTONE_URL ADMIN_PASSWORD GLANCE_URL
    python serve.py v1 PORT [TOKEN [TLS_DIR]]   (TLS_DIR: serve HTTPS, CA in TLS_DIR/ca.pem)
    python serve.py fault STATE_DIR              (fault_registry.py: the fault-injecting registry;
                                                 its ports in STATE_DIR/fault-tls/ports.json)

`glance` and `keystone` write a config under STATE_DIR, migrate a sqlite
database and then exec gunicorn (same pid), so the caller stops the server
by that pid. Run with the venv's python (scripts/setup-registry.sh).
"""
import json
import os
import shutil
import subprocess
import sys
import urllib.request

HERE = os.path.dirname(os.path.abspath(__file__))
VENV_BIN = os.path.dirname(os.path.abspath(sys.executable))


def gunicorn(app, port, env, extra_pythonpath=None):
    argv = [
        os.path.join(VENV_BIN, "gunicorn"),
        "--bind", "127.0.0.1:%d" % port,
        # One request at a time: Glance and Keystone keep their state in
        # SQLite, and concurrent requests from the parallel tests lost
        # writes (an image created with tags came back with none).
        "--worker-class", "sync",
        "--workers", "1",
        "--timeout", "600",
        "--log-level", "warning",
        app,
    ]
    env = dict(os.environ, **env)
    if extra_pythonpath:
        env["PYTHONPATH"] = extra_pythonpath + os.pathsep + env.get("PYTHONPATH", "")
    os.execve(argv[0], argv, env)


GLANCE_PASTE_CONTEXT = """
[composite:glance-api-context]
paste.composite_factory = glance.api:root_app_factory
/: api
/healthcheck: healthcheck

[composite:api]
paste.composite_factory = glance.api:pipeline_factory
context = versionnegotiation fakeidentity context rootapp
"""


def save_template(db, template):
    """Keeps a migrated database for the next run (atomically: runs may race)."""
    os.makedirs(os.path.dirname(template), exist_ok=True)
    tmp = "%s.%d.tmp" % (template, os.getpid())
    shutil.copy(db, tmp)
    os.replace(tmp, template)


def glance(state, port, flavor):
    state = os.path.abspath(state)
    for sub in ("images", "staging", "locks", "conf"):
        os.makedirs(os.path.join(state, sub), exist_ok=True)
    paste_src = os.path.join(os.path.dirname(VENV_BIN), "etc", "glance", "glance-api-paste.ini")
    conf_dir = os.path.join(state, "conf")
    paste = os.path.join(conf_dir, "glance-api-paste.ini")
    with open(paste_src) as f:
        text = f.read()
    if flavor == "context":
        # Our identity filter turns X-Auth-Token "project:ROLE1,ROLE2" into
        # the headers keystonemiddleware would set, then glance's own
        # ContextMiddleware builds a normal (non-admin) request context.
        text = text.replace("[composite:api]", "[composite:unused-api]")
        text += GLANCE_PASTE_CONTEXT
        text += "\n[filter:fakeidentity]\npaste.filter_factory = fake_identity:filter_factory\n"
    with open(paste, "w") as f:
        f.write(text)
    with open(os.path.join(conf_dir, "policy.yaml"), "w") as f:
        f.write('"publicize_image": "role:admin"\n' if flavor == "context" else '"publicize_image": ""\n')
    conf = os.path.join(conf_dir, "glance-api.conf")
    with open(conf, "w") as f:
        f.write(f"""[DEFAULT]
node_staging_uri = file://{state}/staging
enabled_import_methods = [glance-direct]
image_size_cap = {1 << 20 if flavor == "context" else 1 << 40}
log_file = {state}/glance-api.log
[database]
connection = sqlite:///{state}/glance.sqlite
[glance_store]
stores = file
default_store = file
filesystem_store_datadir = {state}/images/
[paste_deploy]
flavor = {"context" if flavor == "context" else ""}
config_file = {paste}
[oslo_policy]
enforce_new_defaults = false
enforce_scope = false
policy_file = {conf_dir}/policy.yaml
[oslo_concurrency]
lock_path = {state}/locks
""")
    db = os.path.join(state, "glance.sqlite")
    template = os.environ.get("DISKFORGE_GLANCE_DB_TEMPLATE")
    if template and os.path.exists(template):
        shutil.copy(template, db)
    else:
        subprocess.run(
            [os.path.join(VENV_BIN, "glance-manage"), "--config-file", conf, "db_sync"],
            check=True, stdout=subprocess.DEVNULL)
        if template:
            save_template(db, template)
    gunicorn("glance.wsgi.api:application", port,
             {"OS_GLANCE_CONFIG_DIR": conf_dir}, extra_pythonpath=HERE)


def keystone(state, port):
    state = os.path.abspath(state)
    conf_dir = os.path.join(state, "conf")
    for sub in ("conf", "fernet", "credential"):
        os.makedirs(os.path.join(state, sub), exist_ok=True)
    conf = os.path.join(conf_dir, "keystone.conf")
    with open(conf, "w") as f:
        f.write(f"""[DEFAULT]
log_file = {state}/keystone.log
[database]
connection = sqlite:///{state}/keystone.sqlite
[fernet_tokens]
key_repository = {state}/fernet
[fernet_receipts]
key_repository = {state}/fernet
[credential]
key_repository = {state}/credential
[identity]
password_hash_rounds = 4
[token]
provider = fernet
""")
    manage = os.path.join(VENV_BIN, "keystone-manage")
    base = [manage, "--config-file", conf]
    db = os.path.join(state, "keystone.sqlite")
    template = os.environ.get("DISKFORGE_KEYSTONE_DB_TEMPLATE")
    if template and os.path.exists(template):
        shutil.copy(template, db)
    else:
        subprocess.run(base + ["db_sync"], check=True, stdout=subprocess.DEVNULL)
        if template:
            save_template(db, template)
    for args in (["fernet_setup", "--keystone-user", str(os.getuid()), "--keystone-group", str(os.getgid())],
                 ["credential_setup", "--keystone-user", str(os.getuid()), "--keystone-group", str(os.getgid())],
                 ["bootstrap", "--bootstrap-password", os.environ["KEYSTONE_ADMIN_PASSWORD"],
                  "--bootstrap-region-id", "RegionOne",
                  "--bootstrap-admin-url", "http://127.0.0.1:%d/v3" % port,
                  "--bootstrap-public-url", "http://127.0.0.1:%d/v3" % port,
                  "--bootstrap-internal-url", "http://127.0.0.1:%d/v3" % port]):
        subprocess.run(base + args, check=True, stdout=subprocess.DEVNULL)
    gunicorn("keystone_app:application", port, {"OS_KEYSTONE_CONFIG_DIR": conf_dir},
             extra_pythonpath=HERE)


def call(method, url, body=None, token=None):
    data = json.dumps(body).encode() if body is not None else None
    req = urllib.request.Request(url, data=data, method=method)
    req.add_header("Content-Type", "application/json")
    req.add_header("Accept", "application/json")
    if token:
        req.add_header("X-Auth-Token", token)
    with urllib.request.urlopen(req, timeout=30) as resp:
        raw = resp.read()
        return resp.headers, (json.loads(raw) if raw else None)


def keystone_setup(url, admin_password, glance_url):
    """Adds the image service, its endpoints and a demo user/project."""
    url = url.rstrip("/")
    headers, _ = call("POST", url + "/v3/auth/tokens", {"auth": {
        "identity": {"methods": ["password"], "password": {"user": {
            "name": "admin", "password": admin_password, "domain": {"id": "default"}}}},
        "scope": {"project": {"name": "admin", "domain": {"id": "default"}}}}})
    tok = headers["X-Subject-Token"]
    _, svc = call("POST", url + "/v3/services",
                  {"service": {"type": "image", "name": "glance"}}, tok)
    sid = svc["service"]["id"]
    call("POST", url + "/v3/regions", {"region": {"id": "RegionTwo"}}, tok)
    for iface, region, ep in (("public", "RegionOne", glance_url),
                              ("internal", "RegionOne", glance_url + "/"),
                              ("admin", "RegionOne", "http://127.0.0.1:9/admin-unused"),
                              ("public", "RegionTwo", "http://127.0.0.1:9/regiontwo-unused")):
        call("POST", url + "/v3/endpoints", {"endpoint": {
            "service_id": sid, "interface": iface, "region_id": region, "url": ep}}, tok)
    _, proj = call("POST", url + "/v3/projects",
                   {"project": {"name": "demo", "domain_id": "default"}}, tok)
    _, user = call("POST", url + "/v3/users", {"user": {
        "name": "demo", "password": "demo-secret-pw", "domain_id": "default"}}, tok)
    _, roles = call("GET", url + "/v3/roles?name=member", None, tok)
    rid = roles["roles"][0]["id"]
    call("PUT", "%s/v3/projects/%s/users/%s/roles/%s" % (
        url, proj["project"]["id"], user["user"]["id"], rid), None, tok)
    print(json.dumps({"project_id": proj["project"]["id"]}))


def main():
    cmd = sys.argv[1]
    if cmd == "glance":
        glance(sys.argv[2], int(sys.argv[3]), sys.argv[4])
    elif cmd == "keystone":
        keystone(sys.argv[2], int(sys.argv[3]))
    elif cmd == "keystone-setup":
        keystone_setup(sys.argv[2], sys.argv[3], sys.argv[4])
    elif cmd == "v1":
        sys.path.insert(0, HERE)
        import glance_v1_server
        glance_v1_server.serve(int(sys.argv[2]), sys.argv[3] if len(sys.argv) > 3 else None,
                               sys.argv[4] if len(sys.argv) > 4 else None)
    elif cmd == "fault":
        sys.path.insert(0, HERE)
        import fault_registry
        sys.argv = ["fault_registry.py"] + sys.argv[2:]
        fault_registry.main()
    else:
        sys.exit("unknown command " + cmd)


if __name__ == "__main__":
    main()
