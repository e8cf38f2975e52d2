"""A small Image API v1 server for the register tests.

No Glance that installs today serves v1 (removed in Rocky), so this follows
the legacy wire format (docs/registry.md): metadata in x-image-meta-*
headers, custom properties in x-image-meta-property-*, image data as the
request body (application/octet-stream), 201 with {"image": {...}},
Location and ETag. It rejects what v1 rejected: 400 for a bad header value
(unknown disk/container format, a non-integer or negative min_disk/min_ram,
a non-boolean is_public/protected, a bad id, a name over 255 characters, a
size or checksum that does not match the data, a body that is not
application/octet-stream), 409 for a duplicate id, 413 over the size cap,
401 without the expected X-Auth-Token. Data is hashed and dropped.
"""
import hashlib
import http.server
import json
import re
import sys
import threading
import uuid
from datetime import datetime, timezone

DISK_FORMATS = {"ami", "ari", "aki", "vhd", "vhdx", "vmdk", "raw", "qcow2", "vdi", "iso", "ploop"}
CONTAINER_FORMATS = {"ami", "ari", "aki", "bare", "ovf", "ova", "docker", "compressed"}
UUID_RE = re.compile(r"^[0-9a-fA-F]{8}-[0-9a-fA-F]{4}-[0-9a-fA-F]{4}-[0-9a-fA-F]{4}-[0-9a-fA-F]{12}$")
SIZE_CAP = 1 << 40
BOOLS = {"true": True, "false": False, "1": True, "0": False, "yes": True, "no": False,
         "on": True, "off": False, "y": True, "n": False, "t": True, "f": False}

IMAGES = {}
LOCK = threading.Lock()
FLAKY = {}


def now():
    return datetime.now(timezone.utc).strftime("%Y-%m-%dT%H:%M:%S.000000")


class BadRequest(Exception):
    def __init__(self, code, msg):
        super().__init__(msg)
        self.code = code
        self.msg = msg


def parse_meta(headers):
    meta, props = {}, {}
    for key, value in headers.items():
        k = key.lower()
        if k.startswith("x-image-meta-property-"):
            props[k[len("x-image-meta-property-"):]] = value
        elif k.startswith("x-image-meta-"):
            meta[k[len("x-image-meta-"):].replace("-", "_")] = value
    out = {}
    for k, v in meta.items():
        if k == "name":
            if len(v) > 255:
                raise BadRequest(400, "Image name too long: %d" % len(v))
            out[k] = v
        elif k == "id":
            if not UUID_RE.match(v):
                raise BadRequest(400, "Invalid image id format")
            out[k] = v
        elif k == "disk_format":
            if v not in DISK_FORMATS:
                raise BadRequest(400, "Invalid disk format '%s' for image." % v)
            out[k] = v
        elif k == "container_format":
            if v not in CONTAINER_FORMATS:
                raise BadRequest(400, "Invalid container format '%s' for image." % v)
            out[k] = v
        elif k in ("min_disk", "min_ram", "size"):
            try:
                n = int(v)
            except ValueError:
                raise BadRequest(400, "Invalid %s: %s" % (k, v))
            if n < 0:
                raise BadRequest(400, "Invalid %s: %s (must be >= 0)" % (k, v))
            out[k] = n
        elif k in ("is_public", "protected"):
            if v.lower() not in BOOLS:
                raise BadRequest(400, "Invalid %s: %s (not a boolean)" % (k, v))
            out[k] = BOOLS[v.lower()]
        elif k == "checksum":
            out[k] = v
        elif k in ("status", "location", "owner", "deleted", "created_at", "updated_at"):
            raise BadRequest(403, "Attribute '%s' is read-only." % k)
        else:
            raise BadRequest(400, "Unknown image attribute x-image-meta-%s" % k.replace("_", "-"))
    return out, props


class Handler(http.server.BaseHTTPRequestHandler):
    protocol_version = "HTTP/1.1"
    token = None

    def log_message(self, fmt, *args):
        pass

    def reply(self, code, body=None, headers=()):
        data = json.dumps(body).encode() if body is not None else b""
        self.send_response(code)
        for k, v in headers:
            self.send_header(k, v)
        self.send_header("Content-Type", "application/json")
        self.send_header("Content-Length", str(len(data)))
        self.end_headers()
        self.wfile.write(data)

    def error(self, code, msg):
        titles = {400: "Bad Request", 401: "Unauthorized", 403: "Forbidden", 404: "Not Found",
                  409: "Conflict", 413: "Request Entity Too Large", 503: "Service Unavailable"}
        # v1 answered with webob's HTML error pages.
        html = ("<html><head><title>%d %s</title></head><body><h1>%d %s</h1>%s<br /><br />"
                "</body></html>" % (code, titles.get(code, ""), code, titles.get(code, ""), msg))
        data = html.encode()
        self.send_response(code)
        self.send_header("Content-Type", "text/html; charset=UTF-8")
        self.send_header("Content-Length", str(len(data)))
        self.end_headers()
        self.wfile.write(data)
        self.close_connection = True

    def authorized(self):
        if self.token is not None and self.headers.get("X-Auth-Token") != self.token:
            self.error(401, "This server could not verify that you are authorized to access the document you requested.")
            return False
        return True

    def read_body(self, record):
        """Streams the request body through md5, counting bytes."""
        md5 = hashlib.md5()
        total = 0
        te = self.headers.get("Transfer-Encoding", "").lower()
        length = self.headers.get("Content-Length")
        if te == "chunked":
            while True:
                line = self.rfile.readline()
                n = int(line.split(b";")[0].strip(), 16)
                if n == 0:
                    while self.rfile.readline() not in (b"\r\n", b"\n", b""):
                        pass
                    break
                left = n
                while left:
                    chunk = self.rfile.read(min(left, 1 << 20))
                    md5.update(chunk)
                    left -= len(chunk)
                total += n
                self.rfile.readline()
        elif length is not None:
            left = int(length)
            while left:
                chunk = self.rfile.read(min(left, 1 << 20))
                if not chunk:
                    break
                md5.update(chunk)
                left -= len(chunk)
                total += len(chunk)
        return total, md5.hexdigest()

    def has_body(self):
        return (self.headers.get("Transfer-Encoding", "").lower() == "chunked"
                or int(self.headers.get("Content-Length") or 0) > 0)

    def store(self, record):
        if self.headers.get("Content-Type", "").split(";")[0].strip() != "application/octet-stream":
            raise BadRequest(400, "Unsupported Content-Type")
        if int(self.headers.get("Content-Length") or 0) > SIZE_CAP:
            raise BadRequest(413, "Image storage media is full or image exceeds the size cap")
        size, checksum = self.read_body(record)
        if record.get("size") not in (None, 0) and record["size"] != size:
            raise BadRequest(400, "Size of uploaded data (%d) does not match x-image-meta-size (%d)" % (size, record["size"]))
        if record.get("checksum") and record["checksum"] != checksum:
            raise BadRequest(400, "Checksum of uploaded data (%s) does not match x-image-meta-checksum (%s)" % (checksum, record["checksum"]))
        record.update(size=size, checksum=checksum, status="active", updated_at=now())

    def do_POST(self):
        if self.path.rstrip("/") != "/v1/images":
            return self.error(404, "The resource could not be found.")
        if not self.authorized():
            return
        try:
            meta, props = parse_meta(self.headers)
            name = meta.get("name", "")
            if name.startswith("flaky-503"):
                with LOCK:
                    FLAKY[name] = FLAKY.get(name, 0) + 1
                    if FLAKY[name] == 1:
                        if self.has_body():
                            self.read_body({})
                        raise BadRequest(503, "Service temporarily overloaded, try again")
            record = {"id": meta.get("id") or str(uuid.uuid4()), "name": meta.get("name"),
                      "disk_format": meta.get("disk_format"), "container_format": meta.get("container_format"),
                      "size": meta.get("size", 0), "checksum": meta.get("checksum"),
                      "min_disk": meta.get("min_disk", 0), "min_ram": meta.get("min_ram", 0),
                      "is_public": meta.get("is_public", False), "protected": meta.get("protected", False),
                      "status": "queued", "owner": None, "deleted": False, "deleted_at": None,
                      "created_at": now(), "updated_at": now(), "properties": props}
            with LOCK:
                if record["id"] in IMAGES:
                    if self.has_body():
                        self.read_body({})
                    raise BadRequest(409, "An image with identifier %s already exists" % record["id"])
                IMAGES[record["id"]] = record
            if self.has_body():
                if not record["disk_format"] or not record["container_format"]:
                    with LOCK:
                        del IMAGES[record["id"]]
                    raise BadRequest(400, "Disk format and container format are required to upload data")
                try:
                    self.store(record)
                except BadRequest:
                    with LOCK:
                        del IMAGES[record["id"]]
                    raise
        except BadRequest as e:
            return self.error(e.code, e.msg)
        headers = [("Location", "http://%s/v1/images/%s" % (self.headers.get("Host"), record["id"]))]
        if record["checksum"]:
            headers.append(("ETag", record["checksum"]))
        self.reply(201, {"image": record}, headers)

    def image_id(self):
        m = re.match(r"^/v1/images/([^/?]+)$", self.path)
        return m.group(1) if m else None

    def do_PUT(self):
        iid = self.image_id()
        if not self.authorized():
            return
        with LOCK:
            record = IMAGES.get(iid)
        if record is None:
            return self.error(404, "Image %s not found." % iid)
        try:
            meta, props = parse_meta(self.headers)
            if self.has_body():
                if record["status"] != "queued":
                    raise BadRequest(409, "Cannot upload to an unqueued image")
                record.update(meta)
                self.store(record)
            else:
                record.update(meta)
            record["properties"].update(props)
        except BadRequest as e:
            return self.error(e.code, e.msg)
        self.reply(200, {"image": record})

    def do_GET(self):
        iid = self.image_id()
        if not self.authorized():
            return
        with LOCK:
            record = IMAGES.get(iid)
        if record is None:
            return self.error(404, "Image %s not found." % iid)
        self.reply(200, {"image": record})

    def do_HEAD(self):
        iid = self.image_id()
        with LOCK:
            record = IMAGES.get(iid)
        if record is None:
            return self.error(404, "Image not found")
        self.send_response(200)
        for k, v in record.items():
            if k != "properties":
                self.send_header("x-image-meta-" + k.replace("_", "-"), str(v))
        for k, v in record["properties"].items():
            self.send_header("x-image-meta-property-" + k, v)
        self.send_header("Content-Length", "0")
        self.end_headers()

    def do_DELETE(self):
        iid = self.image_id()
        if not self.authorized():
            return
        with LOCK:
            record = IMAGES.pop(iid, None)
        if record is None:
            return self.error(404, "Image %s not found." % iid)
        self.send_response(200)
        self.send_header("Content-Length", "0")
        self.end_headers()


def make_certs(directory):
    """A test CA (ca.pem) and a server certificate for 127.0.0.1 signed by
    it; returns (cert file, key file)."""
    import datetime
    import ipaddress
    import os
    from cryptography import x509
    from cryptography.hazmat.primitives import hashes, serialization
    from cryptography.hazmat.primitives.asymmetric import ec
    from cryptography.x509.oid import ExtendedKeyUsageOID, NameOID

    now = datetime.datetime.now(datetime.timezone.utc)
    day = datetime.timedelta(days=1)
    ca_key = ec.generate_private_key(ec.SECP256R1())
    ca_name = x509.Name([x509.NameAttribute(NameOID.COMMON_NAME, "diskforge test CA")])
    ca = (x509.CertificateBuilder().subject_name(ca_name).issuer_name(ca_name)
          .public_key(ca_key.public_key()).serial_number(x509.random_serial_number())
          .not_valid_before(now - day).not_valid_after(now + 30 * day)
          .add_extension(x509.BasicConstraints(ca=True, path_length=None), critical=True)
          .add_extension(x509.KeyUsage(digital_signature=True, content_commitment=False,
                                       key_encipherment=False, data_encipherment=False,
                                       key_agreement=False, key_cert_sign=True, crl_sign=True,
                                       encipher_only=False, decipher_only=False), critical=True)
          .sign(ca_key, hashes.SHA256()))
    key = ec.generate_private_key(ec.SECP256R1())
    cert = (x509.CertificateBuilder()
            .subject_name(x509.Name([x509.NameAttribute(NameOID.COMMON_NAME, "127.0.0.1")]))
            .issuer_name(ca_name).public_key(key.public_key())
            .serial_number(x509.random_serial_number())
            .not_valid_before(now - day).not_valid_after(now + 30 * day)
            .add_extension(x509.SubjectAlternativeName(
                [x509.IPAddress(ipaddress.ip_address("127.0.0.1")), x509.DNSName("localhost")]),
                critical=False)
            .add_extension(x509.BasicConstraints(ca=False, path_length=None), critical=True)
            .add_extension(x509.ExtendedKeyUsage([ExtendedKeyUsageOID.SERVER_AUTH]), critical=False)
            .sign(ca_key, hashes.SHA256()))
    os.makedirs(directory, exist_ok=True)
    pem = serialization.Encoding.PEM
    with open(os.path.join(directory, "ca.pem"), "wb") as f:
        f.write(ca.public_bytes(pem))
    cert_file = os.path.join(directory, "server.pem")
    key_file = os.path.join(directory, "server.key")
    with open(cert_file, "wb") as f:
        f.write(cert.public_bytes(pem))
    with open(key_file, "wb") as f:
        f.write(key.private_bytes(pem, serialization.PrivateFormat.PKCS8,
                                  serialization.NoEncryption()))
    return cert_file, key_file


def serve(port, token=None, tls_dir=None):
    Handler.token = token
    server = http.server.ThreadingHTTPServer(("127.0.0.1", port), Handler)
    server.daemon_threads = True
    if tls_dir:
        import ssl
        cert_file, key_file = make_certs(tls_dir)
        ctx = ssl.SSLContext(ssl.PROTOCOL_TLS_SERVER)
        ctx.load_cert_chain(cert_file, key_file)
        server.socket = ctx.wrap_socket(server.socket, server_side=True)
    server.serve_forever()


if __name__ == "__main__":
    serve(int(sys.argv[1]), sys.argv[2] if len(sys.argv) > 2 else None)
