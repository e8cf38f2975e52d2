"""A fault-injecting Image API v2 registry for the register security tests.

    python fault_registry.py STATE_DIR

It listens on ports the system chooses (no race with other processes for a
port picked in advance) and, once every port listens, writes them to
STATE_DIR/fault-tls/ports.json: {"main": P, "other": P, "tls-self": P, ...}.

MAIN is a plain-http registry that behaves like Glance v2 (POST
/v2/images, PUT .../file, GET and DELETE /v2/images/{id}) unless the image
*name* asks for a fault (see SCENARIOS below); the fault then applies to
every later request for that image id. OTHER is another origin (another
port) that answers anything with an active image record without checksums,
as a hostile server would. The three TLS ports serve MAIN's behaviour with
self-signed certificates written to STATE_DIR/fault-tls/:

    selfsigned.pem  CA:TRUE, for 127.0.0.1 and localhost (what curl and
                    Python accept when given with --cacert / cafile)
    expired.pem     the same, but expired
    wrongname.pem   the same, but only for registry.example

and a fourth TLS port (tls-clientcert) serves selfsigned.pem and wants a
client certificate signed by client-ca.pem: client.pem with client.key
(or client-combined.pem, certificate and key in one file) is one.

Every request is logged (port role, method, path, X-Auth-Token) and
`GET /_log` on any port returns the log as JSON. A pre-existing active
image PROD_ID ("prod-golden") must never be touched by diskforge.
"""
import datetime
import hashlib
import http.server
import ipaddress
import json
import os
import re
import ssl
import sys
import threading
import time
import uuid

PROD_ID = "0f0f0f0f-aaaa-4bbb-8ccc-000000000001"
IMAGES = {PROD_ID: {"id": PROD_ID, "name": "prod-golden", "status": "active", "size": 3,
                    "checksum": "acbd18db4cc2f85cedef654fccc4a4d8", "disk_format": "raw",
                    "container_format": "bare", "os_hash_algo": "sha512",
                    "os_hash_value": hashlib.sha512(b"foo").hexdigest()}}
SCENARIO = {}
LOG = []
FLAKY = {}
LOCK = threading.Lock()
PORTS = {}

# Names that select a fault (anything else is a normal image):
SCENARIOS = {
    "create-200",              # create answered 200 instead of 201
    "create-other-id",         # create answered 201 with prod-golden's record
    "create-302-golden",       # create answered 302 to prod-golden's record
    "create-redirect-other",   # create answered 307 to the OTHER origin
    "echo-token-400",          # create answered 400 whose message echoes the token
    "echo-token-record",       # create answered 201 with the token in the record
    "trickle-create",          # create answered one byte every 2 s
    "trickle-body",            # create's headers at once, its body one byte every 2 s
    "stall-create",            # create never answered
    "flaky-503",               # the first create answered 503
    "upload-get-redirect-other",  # GET after the upload: 302 to the OTHER origin
    "upload-get-redirect-same",   # GET after the upload: 302 within the same origin
    "upload-get-redirect-http",   # (TLS ports) GET after the upload: 302 to plain http
    "upload-no-checksum",      # upload accepted, record active without checksums
    "upload-500-active",       # upload answered 500, record then active
    "upload-500-queued",       # upload answered 500, record still queued
    "upload-401-early",        # upload answered 401 after 64 KiB, connection closed
    "upload-307-early",        # upload answered 307 after 64 KiB, connection closed
    "upload-trickle-reply",    # upload read whole, its reply one byte every 2 s
    "create-not-json",         # record made, create answered 201 with an HTML body
    "create-huge",             # record made, create answered 201 with 17 MiB of JSON
}


def now():
    return datetime.datetime.now(datetime.timezone.utc).strftime("%Y-%m-%dT%H:%M:%SZ")


class Handler(http.server.BaseHTTPRequestHandler):
    protocol_version = "HTTP/1.1"
    role = "main"

    def log_message(self, fmt, *args):
        pass

    def log_request_seen(self):
        with LOCK:
            LOG.append({"role": self.role, "method": self.command, "path": self.path,
                        "token": self.headers.get("X-Auth-Token")})

    def send_json(self, code, body, headers=()):
        data = json.dumps(body).encode()
        self.send_response(code)
        for k, v in headers:
            self.send_header(k, v)
        self.send_header("Content-Type", "application/json")
        self.send_header("Content-Length", str(len(data)))
        self.send_header("Connection", "close")
        self.end_headers()
        self.wfile.write(data)
        self.close_connection = True

    def send_raw(self, code, data, ctype):
        self.send_response(code)
        self.send_header("Content-Type", ctype)
        self.send_header("Content-Length", str(len(data)))
        self.send_header("Connection", "close")
        self.end_headers()
        try:
            self.wfile.write(data)
        except OSError:
            pass
        self.close_connection = True

    def error(self, code, title, message, headers=()):
        self.send_json(code, {"message": message, "code": "%d %s" % (code, title),
                              "title": title}, headers)

    def trickle(self, raw, pause=2.0):
        try:
            for b in raw:
                self.wfile.write(bytes([b]))
                self.wfile.flush()
                time.sleep(pause)
        except OSError:
            pass
        self.close_connection = True

    def origin(self, role):
        return "http://127.0.0.1:%d" % PORTS[role]

    def read_body(self, limit=None):
        left = int(self.headers.get("Content-Length") or 0)
        if limit is not None:
            left = min(left, limit)
        md5, sha, total = hashlib.md5(), hashlib.sha512(), 0
        while left:
            chunk = self.rfile.read(min(left, 1 << 20))
            if not chunk:
                break
            md5.update(chunk)
            sha.update(chunk)
            total += len(chunk)
            left -= len(chunk)
        return total, md5.hexdigest(), sha.hexdigest()

    def image_id(self):
        m = re.match(r"^/v2/(?:_moved/)?images/([^/?]+)(/file)?$", self.path)
        return (m.group(1), bool(m.group(2))) if m else (None, False)

    # --- the other origin: a hostile server ---------------------------------
    def other(self):
        self.log_request_seen()
        if self.command in ("PUT", "POST"):
            self.read_body()
        iid = self.image_id()[0] or str(uuid.uuid4())
        self.send_json(200, {"id": iid, "name": "from-the-other-origin", "status": "active",
                             "size": None, "checksum": None, "os_hash_algo": None,
                             "os_hash_value": None})

    def do_GET(self):
        if self.path == "/_log":
            with LOCK:
                return self.send_json(200, {"log": LOG, "prod_id": PROD_ID})
        if self.role == "other":
            return self.other()
        self.log_request_seen()
        iid, _ = self.image_id()
        with LOCK:
            rec = IMAGES.get(iid)
            scen = SCENARIO.get(iid, "")
        if rec is None:
            return self.error(404, "Not Found", "No image found with ID %s" % iid)
        moved = self.path.startswith("/v2/_moved/")
        if scen == "upload-get-redirect-other" and rec["status"] == "active":
            return self.send_json(302, {}, [("Location", self.origin("other") + self.path)])
        if scen == "upload-get-redirect-same" and not moved:
            return self.send_json(302, {}, [("Location", "/v2/_moved/images/%s" % iid)])
        if scen == "upload-get-redirect-http" and rec["status"] == "active":
            return self.send_json(302, {}, [("Location", self.origin("main") + self.path)])
        self.send_json(200, rec)

    def do_POST(self):
        if self.role == "other":
            return self.other()
        self.log_request_seen()
        if self.path.rstrip("/") != "/v2/images":
            return self.error(404, "Not Found", "The resource could not be found.")
        body = json.loads(self.rfile.read(int(self.headers.get("Content-Length") or 0)) or b"{}")
        name = body.get("name") or ""
        iid = body.get("id") or str(uuid.uuid4())
        token = self.headers.get("X-Auth-Token") or ""
        scen = name if name in SCENARIOS else ""
        if scen == "flaky-503":
            with LOCK:
                FLAKY[iid] = FLAKY.get(iid, 0) + 1
                first = FLAKY[iid] == 1
            if first:
                return self.error(503, "Service Unavailable", "Glance is busy, try again")
        if scen == "stall-create":
            time.sleep(30)
            return
        if scen == "echo-token-400":
            return self.error(400, "Bad Request",
                              "Invalid request from token %s: %s" % (token, json.dumps(token)))
        if scen == "create-302-golden":
            return self.send_json(302, {}, [("Location", "/v2/images/%s" % PROD_ID)])
        if scen == "create-redirect-other":
            return self.send_json(307, {}, [("Location", self.origin("other") + "/v2/images")])
        if scen == "create-other-id":
            return self.send_json(201, IMAGES[PROD_ID])
        rec = {"id": iid, "name": name, "status": "queued", "size": None, "checksum": None,
               "os_hash_algo": None, "os_hash_value": None, "visibility": "shared",
               "disk_format": body.get("disk_format"),
               "container_format": body.get("container_format"), "created_at": now(),
               "protected": False, "tags": []}
        if scen == "echo-token-record":
            rec["description"] = "issued to you: " + token
            rec["owner_token"] = token
            rec["tags"] = [token]
        with LOCK:
            if iid in IMAGES:
                return self.error(409, "Conflict", "Image with identifier %s already exists!" % iid)
            IMAGES[iid] = rec
            SCENARIO[iid] = scen
        if scen == "create-not-json":
            return self.send_raw(201, b"<html><body>Created</body></html>", "text/html")
        if scen == "create-huge":
            huge = dict(rec, padding="x" * (17 << 20))
            return self.send_raw(201, json.dumps(huge).encode(), "application/json")
        if scen == "trickle-create":
            data = json.dumps(rec).encode()
            head = ("HTTP/1.1 201 Created\r\nContent-Type: application/json\r\n"
                    "Content-Length: %d\r\n\r\n" % len(data)).encode()
            return self.trickle(head + data)
        if scen == "trickle-body":
            data = json.dumps(rec).encode()
            self.send_response(201)
            self.send_header("Content-Type", "application/json")
            self.send_header("Content-Length", str(len(data)))
            self.end_headers()
            self.wfile.flush()
            return self.trickle(data)
        self.send_json(200 if scen == "create-200" else 201, rec,
                       [("Location", "%s/v2/images/%s" % (self.origin("main"), iid))])

    def do_PUT(self):
        if self.role == "other":
            return self.other()
        self.log_request_seen()
        iid, is_file = self.image_id()
        with LOCK:
            rec = IMAGES.get(iid)
            scen = SCENARIO.get(iid, "")
        if rec is None or not is_file:
            self.read_body()
            return self.error(404, "Not Found", "No image found with ID %s" % iid)
        if scen == "upload-401-early":
            self.read_body(limit=64 << 10)
            return self.send_json(401, {"error": {
                "code": 401, "title": "Unauthorized",
                "message": "The request you have made requires authentication (token expired)."}})
        if scen == "upload-307-early":
            self.read_body(limit=64 << 10)
            return self.error(307, "Temporary Redirect", "The upload moved to another store.",
                              [("Location", self.origin("other") + self.path)])
        size, md5, sha = self.read_body()
        if scen == "upload-500-active":
            rec.update(status="active", size=size, checksum=md5, os_hash_algo="sha512",
                       os_hash_value=sha)
            return self.error(500, "Internal Server Error", "The store failed.")
        if scen == "upload-500-queued":
            return self.error(500, "Internal Server Error", "The store failed.")
        rec.update(status="active", size=size)
        if scen != "upload-no-checksum":
            rec.update(checksum=md5, os_hash_algo="sha512", os_hash_value=sha)
        if scen == "upload-trickle-reply":
            return self.trickle(b"HTTP/1.1 204 No Content\r\nContent-Length: 0\r\n\r\n")
        self.send_response(204)
        self.send_header("Content-Length", "0")
        self.send_header("Connection", "close")
        self.end_headers()
        self.close_connection = True

    def do_DELETE(self):
        if self.role == "other":
            return self.other()
        self.log_request_seen()
        iid, _ = self.image_id()
        with LOCK:
            rec = IMAGES.pop(iid, None) if iid != PROD_ID else IMAGES.get(iid)
        if rec is None:
            return self.error(404, "Not Found", "No image found with ID %s" % iid)
        self.send_response(204)
        self.send_header("Content-Length", "0")
        self.send_header("Connection", "close")
        self.end_headers()
        self.close_connection = True


def self_signed(path, names, expired=False):
    """A self-signed CA:TRUE certificate (and its key) for `names`."""
    from cryptography import x509
    from cryptography.hazmat.primitives import hashes, serialization
    from cryptography.hazmat.primitives.asymmetric import ec
    from cryptography.x509.oid import NameOID

    t = datetime.datetime.now(datetime.timezone.utc)
    day = datetime.timedelta(days=1)
    before, after = (t - 30 * day, t - day) if expired else (t - day, t + 30 * day)
    key = ec.generate_private_key(ec.SECP256R1())
    name = x509.Name([x509.NameAttribute(NameOID.COMMON_NAME, "diskforge fault registry")])
    sans = []
    for n in names:
        try:
            sans.append(x509.IPAddress(ipaddress.ip_address(n)))
        except ValueError:
            sans.append(x509.DNSName(n))
    cert = (x509.CertificateBuilder().subject_name(name).issuer_name(name)
            .public_key(key.public_key()).serial_number(x509.random_serial_number())
            .not_valid_before(before).not_valid_after(after)
            .add_extension(x509.BasicConstraints(ca=True, path_length=None), critical=True)
            .add_extension(x509.SubjectAlternativeName(sans), critical=False)
            .sign(key, hashes.SHA256()))
    pem = serialization.Encoding.PEM
    with open(path + ".pem", "wb") as f:
        f.write(cert.public_bytes(pem))
    with open(path + ".key", "wb") as f:
        f.write(key.private_bytes(pem, serialization.PrivateFormat.PKCS8,
                                  serialization.NoEncryption()))
    return path + ".pem", path + ".key"


def client_certs(tls):
    """A client CA and a client certificate (client.pem, client.key) it signed."""
    from cryptography import x509
    from cryptography.hazmat.primitives import hashes, serialization
    from cryptography.hazmat.primitives.asymmetric import ec
    from cryptography.x509.oid import ExtendedKeyUsageOID, NameOID

    t = datetime.datetime.now(datetime.timezone.utc)
    day = datetime.timedelta(days=1)
    ca_key = ec.generate_private_key(ec.SECP256R1())
    ca_name = x509.Name([x509.NameAttribute(NameOID.COMMON_NAME, "fault client CA")])
    ca = (x509.CertificateBuilder().subject_name(ca_name).issuer_name(ca_name)
          .public_key(ca_key.public_key()).serial_number(x509.random_serial_number())
          .not_valid_before(t - day).not_valid_after(t + 30 * day)
          .add_extension(x509.BasicConstraints(ca=True, path_length=None), critical=True)
          .sign(ca_key, hashes.SHA256()))
    key = ec.generate_private_key(ec.SECP256R1())
    cert = (x509.CertificateBuilder()
            .subject_name(x509.Name([x509.NameAttribute(NameOID.COMMON_NAME, "ci-runner")]))
            .issuer_name(ca_name).public_key(key.public_key())
            .serial_number(x509.random_serial_number())
            .not_valid_before(t - day).not_valid_after(t + 30 * day)
            .add_extension(x509.BasicConstraints(ca=False, path_length=None), critical=True)
            .add_extension(x509.ExtendedKeyUsage([ExtendedKeyUsageOID.CLIENT_AUTH]), critical=False)
            .sign(ca_key, hashes.SHA256()))
    pem = serialization.Encoding.PEM
    key_pem = key.private_bytes(pem, serialization.PrivateFormat.PKCS8,
                                serialization.NoEncryption())
    files = {"client-ca.pem": ca.public_bytes(pem), "client.pem": cert.public_bytes(pem),
             "client.key": key_pem, "client-combined.pem": cert.public_bytes(pem) + key_pem}
    for name, data in files.items():
        with open(os.path.join(tls, name), "wb") as f:
            f.write(data)
    return os.path.join(tls, "client-ca.pem")


def serve(role, cert=None, client_ca=None):
    handler = type("H_" + role, (Handler,), {"role": role})
    server = http.server.ThreadingHTTPServer(("127.0.0.1", 0), handler)
    PORTS[role] = server.server_address[1]
    server.daemon_threads = True
    if cert:
        ctx = ssl.SSLContext(ssl.PROTOCOL_TLS_SERVER)
        ctx.load_cert_chain(*cert)
        if client_ca:
            ctx.verify_mode = ssl.CERT_REQUIRED
            ctx.load_verify_locations(cafile=client_ca)
        server.socket = ctx.wrap_socket(server.socket, server_side=True)
    t = threading.Thread(target=server.serve_forever, daemon=True)
    t.start()
    return t


def main():
    state = sys.argv[1]
    tls = os.path.join(state, "fault-tls")
    os.makedirs(tls, exist_ok=True)
    certs = {
        "tls-self": self_signed(os.path.join(tls, "selfsigned"), ["127.0.0.1", "localhost"]),
        "tls-expired": self_signed(os.path.join(tls, "expired"), ["127.0.0.1"], expired=True),
        "tls-wrongname": self_signed(os.path.join(tls, "wrongname"), ["registry.example"]),
    }
    threads = [serve("main"), serve("other")]
    threads += [serve(role, cert) for role, cert in certs.items()]
    threads.append(serve("tls-clientcert", certs["tls-self"], client_certs(tls)))
    # Ready: the certificates are written and every port listens.
    tmp = os.path.join(tls, "ports.json.tmp")
    with open(tmp, "w") as f:
        json.dump(PORTS, f)
    os.replace(tmp, os.path.join(tls, "ports.json"))
    for t in threads:
        t.join()


if __name__ == "__main__":
    main()
