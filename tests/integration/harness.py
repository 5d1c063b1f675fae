"""Integration-test harness for Portcullis: real servers on 127.0.0.1, started and stopped by PID.

Job: give the test modules (test_*.py) everything they need to hold a dialogue with the real
`portcullis` binary (env PORTCULLIS_BIN) in front of a real upstream:
  - free_port(), TempDir, make_pki(dir)  -- ports, scratch space, a throw-away CA + server cert
  - Postfix(dir)     -- a private Postfix instance (own config/queue/data dirs, Maildir delivery for
                        example.test: alice, bob; nosuchuser -> 550), optional TLS variant and a second
                        smtpd that expects HAProxy PROXY v2
  - Dovecot(dir)     -- a private Dovecot (passwd-file users alice/bob), today only as the SASL
                        authentication service behind Postfix (Postfix(sasl_path=dovecot.auth_socket))
  - SmtpSink(dir)    -- smtp-sink with per-message dumps, parsed back into envelope + message bytes
  - Gateway(dir,...) -- writes a YAML config (or passes one-line args), runs the binary, captures its log
  - SmtpClient       -- raw-socket SMTP client: raw writes (pipelining, smuggling), multi-line replies,
                        STARTTLS upgrade, implicit TLS, chosen source address (127.0.0.x)
State owned: the temp dirs and child processes it creates; each child is stopped by the PID recorded at
start (SIGTERM, bounded wait, SIGKILL). Invariants: every wait loop is bounded in count and time; nothing
binds outside 127.0.0.0/8; /etc/postfix is never written (only read: meta_directory, postfix-files).
The only fake server is hostile_upstream.HostileUpstream (a deliberately misbehaving upstream).
"""

import os
import re
import shutil
import signal
import socket
import ssl
import subprocess
import tempfile
import time

HERE = os.path.dirname(os.path.abspath(__file__))
REPO = os.path.dirname(os.path.dirname(HERE))
FIXTURES = os.path.join(REPO, "tests", "fixtures")
POSTFIX_FIXTURES = os.path.join(FIXTURES, "postfix")
DOVECOT_FIXTURES = os.path.join(FIXTURES, "dovecot")

POSTFIX_DAEMON_DIR = "/usr/lib/postfix/sbin"
NOBODY_UID = 65534
NOBODY_GID = 65534
DOMAIN = "example.test"


# --------------------------------------------------------------------------- small helpers

def have_tool(name):
    """True when an external program is installed (for skipUnless on genuinely missing tools)."""
    return shutil.which(name) is not None


def free_port(host="127.0.0.1"):
    """A currently free TCP port on host (bind to port 0, read it, close)."""
    base = os.environ.get("PORTCULLIS_TEST_PORT_BASE")
    if base:
        # Deterministic range from an env base: walk it until a port binds.
        start = int(base)
        for p in range(start + _port_counter(), start + 2000):
            if _bindable(host, p):
                return p
    s = socket.socket(socket.AF_INET, socket.SOCK_STREAM)
    try:
        s.bind((host, 0))
        return s.getsockname()[1]
    finally:
        s.close()


_PORT_STATE = {"n": 0}


def _port_counter():
    _PORT_STATE["n"] += 1
    return _PORT_STATE["n"]


def _bindable(host, port):
    s = socket.socket(socket.AF_INET, socket.SOCK_STREAM)
    try:
        s.bind((host, port))
        return True
    except OSError:
        return False
    finally:
        s.close()


def wait_until(predicate, timeout=10.0, interval=0.05, what="condition"):
    """Poll predicate() until truthy; bounded in time and in count. Returns its value or raises."""
    deadline = time.monotonic() + timeout
    max_iter = int(timeout / interval) + 2
    for _ in range(max_iter):
        v = predicate()
        if v:
            return v
        if time.monotonic() >= deadline:
            break
        time.sleep(interval)
    raise TimeoutError("timed out after %.1fs waiting for %s" % (timeout, what))


def port_open(port, host="127.0.0.1"):
    try:
        with socket.create_connection((host, port), timeout=0.5):
            return True
    except OSError:
        return False


def wait_port(port, host="127.0.0.1", timeout=15.0, proc=None):
    """Wait until host:port accepts a connection; fail early if proc (a Popen) has exited."""
    deadline = time.monotonic() + timeout
    for _ in range(int(timeout / 0.05) + 2):
        if proc is not None and proc.poll() is not None:
            raise RuntimeError("process exited with %s before listening on %d" % (proc.returncode, port))
        if port_open(port, host):
            return
        if time.monotonic() >= deadline:
            break
        time.sleep(0.05)
    raise TimeoutError("port %s:%d not accepting after %.1fs" % (host, port, timeout))


def stop_pid(proc, timeout=10.0):
    """Stop a child we started, by its PID: SIGTERM, bounded wait, then SIGKILL. Returns the exit code."""
    if proc is None:
        return None
    if proc.poll() is None:
        try:
            os.kill(proc.pid, signal.SIGTERM)
        except ProcessLookupError:
            pass
        try:
            proc.wait(timeout=timeout)
        except subprocess.TimeoutExpired:
            try:
                os.kill(proc.pid, signal.SIGKILL)
            except ProcessLookupError:
                pass
            proc.wait(timeout=5)
    return proc.returncode


class TempDir:
    """A scratch directory (mode 0755 so that unprivileged daemons such as postfix/nobody can traverse it).

    Set PORTCULLIS_KEEP_TMP=1 to keep it for debugging."""

    def __init__(self, prefix="portcullis-it-"):
        self.path = tempfile.mkdtemp(prefix=prefix)
        os.chmod(self.path, 0o755)

    def sub(self, *parts, mode=0o755):
        p = os.path.join(self.path, *parts)
        os.makedirs(p, exist_ok=True)
        os.chmod(p, mode)
        return p

    def file(self, name, content, mode=0o644):
        p = os.path.join(self.path, name)
        os.makedirs(os.path.dirname(p), exist_ok=True)
        with open(p, "wb" if isinstance(content, bytes) else "w") as f:
            f.write(content)
        os.chmod(p, mode)
        return p

    def cleanup(self):
        if os.environ.get("PORTCULLIS_KEEP_TMP"):
            return
        shutil.rmtree(self.path, ignore_errors=True)

    def __enter__(self):
        return self

    def __exit__(self, *exc):
        self.cleanup()

    def __str__(self):
        return self.path


class ChildProcess:
    """Base of the fixtures that run one child process (Postfix, Dovecot, SmtpSink, Gateway).

    A subclass sets self.proc (a Popen) in start(), names its log files in LOG_ATTRS (attribute
    names, read in that order by log_text()) and its stop timeout in STOP_TIMEOUT. stop() stops the
    child by its PID (stop_pid: SIGTERM, bounded wait, SIGKILL) and keeps the exit code in
    self.returncode; as a context manager it starts on enter and stops on exit."""

    STOP_TIMEOUT = 10.0
    LOG_ATTRS = ("log_path",)
    proc = None
    returncode = None

    def alive(self):
        return self.proc is not None and self.proc.poll() is None

    def stop(self, timeout=None):
        self.returncode = stop_pid(self.proc, timeout=self.STOP_TIMEOUT if timeout is None else timeout)
        return self.returncode

    def __enter__(self):
        return self.start()

    def __exit__(self, *exc):
        self.stop()

    def log_text(self):
        """The log files concatenated (a missing or unreadable one counts as empty)."""
        text = ""
        for attr in self.LOG_ATTRS:
            try:
                with open(getattr(self, attr), errors="replace") as f:
                    text += f.read()
            except OSError:
                pass
        return text


# --------------------------------------------------------------------------- PKI (openssl CLI)

def _openssl(*args, cwd=None):
    r = subprocess.run(["openssl"] + list(args), cwd=cwd, stdout=subprocess.PIPE,
                       stderr=subprocess.PIPE, timeout=60)
    if r.returncode != 0:
        raise RuntimeError("openssl %s failed: %s" % (" ".join(args), r.stderr.decode(errors="replace")))
    return r.stdout


def make_pki(directory, names=("localhost", "mx.test"), ips=("127.0.0.1",)):
    """Generate a CA and a server certificate signed by it into directory.

    Returns a dict with paths: ca (ca.pem), ca_key, cert (server.pem), key (server.key), and also
    'wrong_cert'/'wrong_key' (a cert for wrong.test only, signed by the same CA)."""
    d = directory
    os.makedirs(d, exist_ok=True)
    ca, ca_key = os.path.join(d, "ca.pem"), os.path.join(d, "ca.key")
    _openssl("req", "-x509", "-newkey", "rsa:2048", "-nodes", "-sha256", "-days", "3",
             "-keyout", ca_key, "-out", ca, "-subj", "/CN=Portcullis Test CA",
             "-addext", "basicConstraints=critical,CA:TRUE",
             "-addext", "keyUsage=critical,keyCertSign,cRLSign")

    def leaf(stem, dns, ipl):
        key, csr, pem = (os.path.join(d, stem + ext) for ext in (".key", ".csr", ".pem"))
        ext = os.path.join(d, stem + ".ext")
        san = ",".join(["DNS:" + n for n in dns] + ["IP:" + i for i in ipl])
        with open(ext, "w") as f:
            f.write("basicConstraints=CA:FALSE\nkeyUsage=critical,digitalSignature,keyEncipherment\n"
                    "extendedKeyUsage=serverAuth,clientAuth\nsubjectAltName=%s\n" % san)
        _openssl("req", "-newkey", "rsa:2048", "-nodes", "-sha256", "-keyout", key, "-out", csr,
                 "-subj", "/CN=%s" % dns[0])
        _openssl("x509", "-req", "-in", csr, "-CA", ca, "-CAkey", ca_key, "-CAcreateserial",
                 "-out", pem, "-days", "3", "-sha256", "-extfile", ext)
        os.chmod(key, 0o644)  # test-only key; daemons running as other users must read it
        return pem, key

    cert, key = leaf("server", list(names), list(ips))
    wcert, wkey = leaf("wrong", ["wrong.test"], [])
    for p in (d,):
        os.chmod(p, 0o755)
    return {"ca": ca, "ca_key": ca_key, "cert": cert, "key": key, "wrong_cert": wcert, "wrong_key": wkey,
            "dir": d}


def client_context(ca=None, verify=True, min_version=None, max_version=None):
    """An SSLContext for the test client (verifies against the test CA by default)."""
    ctx = ssl.SSLContext(ssl.PROTOCOL_TLS_CLIENT)
    if verify and ca:
        ctx.load_verify_locations(ca)
    else:
        ctx.check_hostname = False
        ctx.verify_mode = ssl.CERT_NONE
    if min_version is not None:
        ctx.minimum_version = min_version
    if max_version is not None:
        ctx.maximum_version = max_version
    return ctx


# --------------------------------------------------------------------------- Postfix

def _render(template_path, values):
    with open(template_path) as f:
        text = f.read()
    for k, v in values.items():
        text = text.replace("@%s@" % k, str(v))
    left = re.findall(r"@[A-Z_]+@", text)
    if left:
        raise RuntimeError("unfilled placeholders in %s: %s" % (template_path, left))
    return text


class Postfix(ChildProcess):
    """A private Postfix instance: the real upstream for delivery tests.

    Own config_directory/queue_directory/data_directory under `directory`; master runs in the foreground
    (`master -c CONF -d`) and is stopped by its PID. Listens on 127.0.0.1:port (plain smtpd) and
    127.0.0.1:proxy_port (smtpd_upstream_proxy_protocol=haproxy). Virtual Maildir delivery for
    example.test (alice, bob) as uid/gid nobody; unknown recipients -> 550 at RCPT.
    With tls=True (needs pki from make_pki), smtpd offers STARTTLS with the test cert.
    With sasl_path (a Dovecot auth socket, e.g. Dovecot(...).auth_socket), smtpd offers
    AUTH PLAIN LOGIN, checked by that Dovecot (smtpd_sasl_type = dovecot)."""

    USERS = ("alice", "bob")
    STOP_TIMEOUT = 15.0
    LOG_ATTRS = ("stdout_path", "log_path")

    def __init__(self, directory, tls=False, pki=None, message_size_limit=5000000, extra_main="",
                 sasl_path=None):
        self.root = os.path.join(str(directory), "postfix")
        self.conf = os.path.join(self.root, "conf")
        self.queue = os.path.join(self.root, "queue")
        self.data = os.path.join(self.root, "data")
        self.mail = os.path.join(self.root, "mail")
        self.log_path = os.path.join(self.root, "maillog")
        self.stdout_path = os.path.join(self.root, "master.out")
        self.port = free_port()
        self.proxy_port = free_port()
        while self.proxy_port == self.port:
            self.proxy_port = free_port()
        self.tls = tls
        self.pki = pki
        self.message_size_limit = message_size_limit
        self.extra_main = extra_main
        self.sasl_path = sasl_path
        self.proc = None

    # -- setup
    def _sasl_main(self):
        if not self.sasl_path:
            return ""
        return ("smtpd_sasl_auth_enable = yes\n"
                "smtpd_sasl_type = dovecot\n"
                "smtpd_sasl_path = %s\n"
                "smtpd_sasl_security_options = noanonymous\n"
                "broken_sasl_auth_clients = no\n" % self.sasl_path)

    def _write_config(self):
        for p in (self.root, self.conf, self.queue):
            os.makedirs(p, exist_ok=True)
            os.chmod(p, 0o755)
        os.makedirs(self.data, exist_ok=True)
        os.chown(self.data, _uid("postfix"), _gid("postfix"))
        os.makedirs(self.mail, exist_ok=True)
        os.chown(self.mail, NOBODY_UID, NOBODY_GID)
        os.chmod(self.mail, 0o755)
        if self.tls:
            if not self.pki:
                raise ValueError("Postfix(tls=True) needs pki=make_pki(...)")
            tls_main = ("smtpd_tls_security_level = may\n"
                        "smtpd_tls_cert_file = %s\nsmtpd_tls_key_file = %s\n"
                        "smtpd_tls_CAfile = %s\nsmtpd_tls_received_header = yes\n"
                        % (self.pki["cert"], self.pki["key"], self.pki["ca"]))
        else:
            tls_main = "smtpd_tls_security_level = none\n"
        values = {
            "QUEUE": self.queue, "DATA": self.data, "MAIL": self.mail, "CONF": self.conf,
            "LOG": self.log_path, "LOG_PREFIX": os.path.dirname(self.root),
            "SIZE": self.message_size_limit, "TLS": tls_main + self._sasl_main() + self.extra_main,
            "PORT": self.port, "PROXY_PORT": self.proxy_port,
        }
        with open(os.path.join(self.conf, "main.cf"), "w") as f:
            f.write(_render(os.path.join(POSTFIX_FIXTURES, "main.cf.in"), values))
        with open(os.path.join(self.conf, "master.cf"), "w") as f:
            f.write(_render(os.path.join(POSTFIX_FIXTURES, "master.cf.in"), values))
        shutil.copy(os.path.join(POSTFIX_FIXTURES, "vmailbox"), os.path.join(self.conf, "vmailbox"))

    def start(self, timeout=30.0):
        self._write_config()
        # `postfix check` creates the queue subdirectories with the right owners (post-install
        # create-missing, reading /etc/postfix/postfix-files) and fails on a broken config.
        env = dict(os.environ, MAIL_CONFIG=self.conf)
        r = subprocess.run(["postfix", "-c", self.conf, "check"], stdout=subprocess.PIPE,
                           stderr=subprocess.STDOUT, timeout=60, env=env)
        if r.returncode != 0:
            raise RuntimeError("postfix check failed:\n" + r.stdout.decode(errors="replace"))
        out = open(self.stdout_path, "wb")
        self.proc = subprocess.Popen([os.path.join(POSTFIX_DAEMON_DIR, "master"), "-c", self.conf, "-d"],
                                     stdin=subprocess.DEVNULL, stdout=out, stderr=subprocess.STDOUT,
                                     env=env, start_new_session=True)
        # start_new_session: master is then its own process-group leader, so that on SIGTERM it can
        # signal its children (it kills its process group); we still only signal master's PID.
        out.close()
        try:
            wait_port(self.port, timeout=timeout, proc=self.proc)
            wait_port(self.proxy_port, timeout=timeout, proc=self.proc)
        except Exception:
            self.stop()
            raise RuntimeError("Postfix did not start:\n" + self.log_text()[-4000:])
        return self

    # -- mailboxes
    def maildir(self, user):
        return os.path.join(self.mail, DOMAIN, user)

    def _read_new(self, user):
        msgs = []
        for sub in ("new", "cur"):
            d = os.path.join(self.maildir(user), sub)
            try:
                names = os.listdir(d)
            except FileNotFoundError:
                continue
            for n in names:
                p = os.path.join(d, n)
                try:
                    st = os.stat(p)
                    with open(p, "rb") as f:
                        msgs.append((st.st_mtime, n, f.read()))
                except FileNotFoundError:
                    pass
        msgs.sort()
        return [m[2] for m in msgs]

    def maildir_messages(self, user, expect=1, timeout=15.0):
        """Messages delivered to user@example.test (raw bytes, LF line ends as Maildir stores them).

        Polls until at least `expect` messages exist or timeout (bounded); returns what is there
        (possibly fewer -- the caller asserts). expect=0 returns immediately."""
        deadline = time.monotonic() + timeout
        for _ in range(int(timeout / 0.1) + 2):
            msgs = self._read_new(user)
            if len(msgs) >= expect or time.monotonic() >= deadline:
                return msgs
            time.sleep(0.1)
        return self._read_new(user)

    def assert_no_delivery(self, users=("alice", "bob"), settle=3.0):
        """Wait `settle` seconds (bounded) and return the total number of messages delivered to users."""
        time.sleep(settle)
        return sum(len(self._read_new(u)) for u in users)

    def queue_ids(self):
        """Message files still in the queue (incoming/active/deferred/hold)."""
        found = []
        for sub in ("incoming", "active", "deferred", "hold", "maildrop"):
            for root, _dirs, files in os.walk(os.path.join(self.queue, sub)):
                found.extend(files)
        return found


def _uid(name):
    import pwd
    return pwd.getpwnam(name).pw_uid


def _gid(name):
    import grp
    return grp.getgrnam(name).gr_gid


# --------------------------------------------------------------------------- Dovecot

def _user_exists(name):
    import pwd
    try:
        pwd.getpwnam(name)
        return True
    except KeyError:
        return False


def _primary_group(name):
    import grp
    import pwd
    return grp.getgrgid(pwd.getpwnam(name).pw_gid).gr_name


class Dovecot(ChildProcess):
    """A private Dovecot instance: today the SASL authentication service behind Postfix.

    Runs in the foreground (`dovecot -F -c CONF`) as a child of the test, stopped by its PID (SIGTERM,
    bounded wait, SIGKILL; master stops its own children). Config rendered from
    tests/fixtures/dovecot/dovecot.conf.in; base_dir, state_dir and the log under `directory`/dovecot.
    Users and passwords come from tests/fixtures/dovecot/users (passwd-file, {PLAIN}): USERS maps
    name -> password. The auth service listens on `auth_socket` (mode 0666) for Postfix's
    smtpd_sasl_path. No protocol is enabled by default; `protocols` (e.g. "imap") and `extra_conf`
    (e.g. a service imap-login { inet_listener ... } block) are there for later IMAP/POP3 use."""

    USERS_FILE = os.path.join(DOVECOT_FIXTURES, "users")
    STOP_TIMEOUT = 15.0
    LOG_ATTRS = ("stdout_path", "log_path")

    def __init__(self, directory, protocols="", extra_conf=""):
        self.root = os.path.join(str(directory), "dovecot")
        self.base_dir = os.path.join(self.root, "run")
        self.state_dir = os.path.join(self.root, "state")
        self.home = os.path.join(self.root, "home")
        self.conf_path = os.path.join(self.root, "dovecot.conf")
        self.users_path = os.path.join(self.root, "users")
        self.log_path = os.path.join(self.root, "dovecot.log")
        self.stdout_path = os.path.join(self.root, "dovecot.out")
        self.auth_socket = os.path.join(self.base_dir, "auth-postfix")
        self.protocols = protocols
        self.extra_conf = extra_conf
        self.proc = None

    @classmethod
    def users(cls):
        """{user: password} from the fixture passwd-file."""
        out = {}
        with open(cls.USERS_FILE) as f:
            for line in f:
                line = line.strip()
                if not line or line.startswith("#"):
                    continue
                name, pw = line.split(":", 2)[:2]
                out[name] = re.sub(r"^\{PLAIN\}", "", pw)
        return out

    def _write_config(self):
        for p in (self.root, self.state_dir, self.home):
            os.makedirs(p, exist_ok=True)
            os.chmod(p, 0o755)
        internal = "dovecot" if _user_exists("dovecot") else "nobody"
        login = "dovenull" if _user_exists("dovenull") else "nobody"
        shutil.copy(self.USERS_FILE, self.users_path)
        os.chmod(self.users_path, 0o644)  # test-only passwords; the auth process runs as `internal`
        values = {
            "PROTOCOLS": self.protocols, "INSTANCE": "portcullis-test-%d" % os.getpid(),
            "BASE_DIR": self.base_dir, "STATE_DIR": self.state_dir, "LOG": self.log_path,
            "INTERNAL_USER": internal, "INTERNAL_GROUP": _primary_group(internal), "LOGIN_USER": login,
            "USERS": self.users_path, "MAIL_UID": NOBODY_UID, "MAIL_GID": NOBODY_GID, "HOME": self.home,
            "EXTRA": self.extra_conf,
        }
        with open(self.conf_path, "w") as f:
            f.write(_render(os.path.join(DOVECOT_FIXTURES, "dovecot.conf.in"), values))

    def start(self, timeout=20.0):
        self._write_config()
        out = open(self.stdout_path, "wb")
        self.proc = subprocess.Popen(["dovecot", "-F", "-c", self.conf_path], stdin=subprocess.DEVNULL,
                                     stdout=out, stderr=subprocess.STDOUT, start_new_session=True)
        out.close()
        try:
            def socket_ready():
                if self.proc.poll() is not None:
                    raise RuntimeError("dovecot exited with %s" % self.proc.returncode)
                return os.path.exists(self.auth_socket)
            wait_until(socket_ready, timeout=timeout, what="dovecot auth socket %s" % self.auth_socket)
        except Exception as e:
            self.stop()
            raise RuntimeError("Dovecot did not start (%s):\n%s" % (e, self.log_text()[-4000:]))
        return self


def unfold(data):
    """Header bytes with folded lines joined (CRLF before white space removed)."""
    return re.sub(rb"\r\n([ \t])", rb"\1", data)


def header_block(msg):
    """The header section of a message (bytes), with CRLF or LF line ends."""
    m = re.search(rb"\r?\n\r?\n", msg)
    return msg[: m.start()] if m else msg


def headers(msg):
    """List of (name, value) header fields, unfolded, from raw message bytes."""
    out = []
    for line in re.split(rb"\r?\n", header_block(msg)):
        if line[:1] in (b" ", b"\t") and out:
            out[-1] = (out[-1][0], out[-1][1] + b" " + line.strip())
        elif b":" in line:
            k, v = line.split(b":", 1)
            out.append((k.decode("latin-1"), v.strip()))
    return out


def header_values(msg, name):
    return [v for k, v in headers(msg) if k.lower() == name.lower()]


def body_of(msg):
    m = re.search(rb"\r?\n\r?\n", msg)
    return msg[m.end():] if m else b""


def strip_first_received(msg):
    """Remove the first header field if it is Received: (with its continuation lines). Returns (hdr, rest)."""
    m = re.match(rb"(Received:[^\r\n]*\r?\n(?:[ \t][^\r\n]*\r?\n)*)", msg, re.I)
    if not m:
        return None, msg
    return m.group(1), msg[m.end():]


def to_crlf(data):
    """LF -> CRLF (for comparing Maildir/smtp-sink LF files with wire data)."""
    return re.sub(rb"(?<!\r)\n", b"\r\n", data)


# --------------------------------------------------------------------------- smtp-sink

class Unbound(ChildProcess):
    """A private Unbound as the gateway's DNS server (resolver.servers), answering from local data only:
    `unbound -d -c CONF` on 127.0.0.1:PORT (UDP and TCP), no recursion to the outside (the root is a
    static local zone), no remote control. records are zone-file lines as Unbound's local-data takes
    them ("name. 300 IN TXT \"text\""); everything else is NXDOMAIN. Stopped by PID."""

    def __init__(self, directory, records=(), name="unbound"):
        self.dir = os.path.join(str(directory), name)
        self.port = free_port()
        self.records = list(records)
        self.conf_path = os.path.join(self.dir, "unbound.conf")
        self.log_path = os.path.join(self.dir, "unbound.log")
        self.proc = None

    def _write_config(self):
        os.makedirs(self.dir, exist_ok=True)
        lines = ["server:",
                 "  interface: 127.0.0.1@%d" % self.port, "  port: %d" % self.port,
                 "  do-ip6: no", "  do-daemonize: no", '  username: ""', '  chroot: ""',
                 '  directory: "%s"' % self.dir, '  pidfile: "%s"' % os.path.join(self.dir, "unbound.pid"),
                 "  use-syslog: no", '  logfile: ""', "  verbosity: 1",
                 "  access-control: 127.0.0.0/8 allow", '  module-config: "iterator"',
                 '  local-zone: "." static',
                 "  local-data: \". 3600 IN SOA ns.test. admin.test. 1 3600 600 86400 60\""]
        for r in self.records:
            quote = "'" if '"' in r else '"'
            lines.append("  local-data: %s%s%s" % (quote, r, quote))
        lines += ["remote-control:", "  control-enable: no"]
        with open(self.conf_path, "w") as f:
            f.write("\n".join(lines) + "\n")

    def start(self, timeout=15.0):
        self._write_config()
        log = open(self.log_path, "wb")
        self.proc = subprocess.Popen(["unbound", "-d", "-c", self.conf_path], stdin=subprocess.DEVNULL,
                                     stdout=log, stderr=subprocess.STDOUT, start_new_session=True)
        log.close()
        try:
            wait_port(self.port, timeout=timeout, proc=self.proc)
        except Exception as e:
            self.stop()
            raise RuntimeError("unbound did not start (%s):\n%s" % (e, self.log_text()[-4000:]))
        return self

    @property
    def server(self):
        return "127.0.0.1:%d" % self.port


class SmtpSink(ChildProcess):
    """smtp-sink as a byte-recording upstream: `smtp-sink -u nobody -d DUMPDIR/%M. 127.0.0.1:PORT 64`.

    Each transaction is dumped into its own file: smtp-sink headers (X-Client-Addr, X-Helo-Args,
    X-Mail-Args, X-Rcpt-Args..., a 3-line Received), then the message (dot-unstuffed, LF line ends,
    bare CR dropped), then an empty line. messages() parses them back. dump=False: a plain sink
    (for benchmarks). Stopped by PID."""

    def __init__(self, directory, dump=True, backlog=64, extra_args=()):
        self.dir = os.path.join(str(directory), "sink")
        self.dumpdir = os.path.join(self.dir, "dump")
        self.port = free_port()
        self.dump = dump
        self.backlog = backlog
        self.extra_args = list(extra_args)
        self.proc = None
        self.log_path = os.path.join(self.dir, "smtp-sink.log")

    def start(self, timeout=10.0):
        os.makedirs(self.dumpdir, exist_ok=True)
        os.chmod(self.dir, 0o755)
        os.chown(self.dumpdir, NOBODY_UID, NOBODY_GID)
        args = ["smtp-sink", "-u", "nobody"] + self.extra_args
        if self.dump:
            args += ["-d", os.path.join(self.dumpdir, "%M.")]
        args += ["127.0.0.1:%d" % self.port, str(self.backlog)]
        log = open(self.log_path, "wb")
        self.proc = subprocess.Popen(args, stdin=subprocess.DEVNULL, stdout=log, stderr=subprocess.STDOUT)
        log.close()
        wait_port(self.port, timeout=timeout, proc=self.proc)
        return self

    def _files(self):
        out = []
        for root, _d, files in os.walk(self.dumpdir):
            for n in files:
                p = os.path.join(root, n)
                try:
                    out.append((os.stat(p).st_mtime_ns, p))
                except FileNotFoundError:
                    pass
        out.sort()
        return [p for _t, p in out]

    @staticmethod
    def parse_dump(data):
        """Parse one dump file -> dict(client_addr, helo, mail, rcpts, message (CRLF bytes))."""
        lines = data.split(b"\n")
        info = {"client_addr": None, "proto": None, "helo": None, "mail": None, "rcpts": []}
        i = 0
        while i < len(lines):
            l = lines[i]
            if l.startswith(b"X-Client-Addr: "):
                info["client_addr"] = l[15:].decode()
            elif l.startswith(b"X-Client-Proto: "):
                info["proto"] = l[16:].decode()
            elif l.startswith(b"X-Helo-Args: "):
                info["helo"] = l[13:].decode(errors="replace")
            elif l.startswith(b"X-Mail-Args: "):
                info["mail"] = l[13:].decode(errors="replace")
            elif l.startswith(b"X-Rcpt-Args: "):
                info["rcpts"].append(l[13:].decode(errors="replace"))
            elif l.startswith(b"Received: "):
                i += 1
                while i < len(lines) and lines[i][:1] == b"\t":
                    i += 1
                break
            else:
                break
            i += 1
        body = b"\n".join(lines[i:])
        if body.endswith(b"\n"):
            body = body[:-1]  # the trailing empty line smtp-sink appends
        info["message"] = body.replace(b"\n", b"\r\n")
        info["raw"] = data
        return info

    def messages(self, expect=0, timeout=10.0):
        """Parsed dumps of complete transactions; waits (bounded) until at least `expect` exist."""
        deadline = time.monotonic() + timeout
        for _ in range(int(timeout / 0.1) + 2):
            files = self._files()
            if len(files) >= expect or time.monotonic() >= deadline:
                break
            time.sleep(0.1)
        time.sleep(0.2)  # let the last write land
        out = []
        for p in self._files():
            with open(p, "rb") as f:
                data = f.read()
            if data:
                out.append(self.parse_dump(data))
        return out


# --------------------------------------------------------------------------- Gateway

def portcullis_bin():
    """Path of the binary under test: $PORTCULLIS_BIN, else build/ in the repo (for runs by hand)."""
    p = os.environ.get("PORTCULLIS_BIN")
    if p:
        return p
    for cand in ("build/portcullis", "build/gateway/portcullis", "build/src/portcullis"):
        c = os.path.join(REPO, cand)
        if os.access(c, os.X_OK):
            return c
    raise RuntimeError("PORTCULLIS_BIN is not set and no build/portcullis found: build the gateway first")


def _yaml_scalar(v):
    if isinstance(v, bool):
        return "true" if v else "false"
    if v is None:
        return "null"
    if isinstance(v, (int, float)):
        return str(v)
    s = str(v)
    if re.fullmatch(r"[A-Za-z0-9_./:@+-]+", s) and not re.fullmatch(r"(?i)true|false|yes|no|on|off|null|~", s) \
            and ":" not in s:
        return s
    return '"' + s.replace("\\", "\\\\").replace('"', '\\"') + '"'


def to_yaml(obj, indent=0):
    """Minimal block-style YAML emitter for dict/list/scalars (no PyYAML in the stdlib)."""
    pad = "  " * indent
    lines = []
    if isinstance(obj, dict):
        for k, v in obj.items():
            if isinstance(v, dict) and v:
                lines.append("%s%s:" % (pad, k))
                lines.append(to_yaml(v, indent + 1))
            elif isinstance(v, list) and v and any(isinstance(x, (dict, list)) for x in v):
                lines.append("%s%s:" % (pad, k))
                lines.append(to_yaml(v, indent + 1))
            elif isinstance(v, list):
                lines.append("%s%s: [%s]" % (pad, k, ", ".join(_yaml_scalar(x) for x in v)))
            elif isinstance(v, dict):
                lines.append("%s%s: {}" % (pad, k))
            else:
                lines.append("%s%s: %s" % (pad, k, _yaml_scalar(v)))
    elif isinstance(obj, list):
        for item in obj:
            if isinstance(item, dict):
                sub = to_yaml(item, indent + 1).split("\n")
                first = sub[0].lstrip()
                lines.append("%s- %s" % (pad, first))
                lines.extend(sub[1:])
            else:
                lines.append("%s- %s" % (pad, _yaml_scalar(item)))
    return "\n".join(l for l in lines if l != "")


def deep_merge(base, over):
    """Recursively merge dict `over` into a copy of dict `base` (lists and scalars replace)."""
    out = dict(base)
    for k, v in (over or {}).items():
        if isinstance(v, dict) and isinstance(out.get(k), dict):
            out[k] = deep_merge(out[k], v)
        else:
            out[k] = v
    return out


def listener_config(port, upstream_port, tls=None, pki=None, name="in", **over):
    """One SMTP listener, with the defaults the tests assume; `over` deep-merges on top.

    tls: None | 'starttls' | 'implicit' (needs pki)."""
    lst = {
        "name": name,
        "protocol": "smtp",
        "listen": ["127.0.0.1:%d" % port],
        "hostname": "gw.test",
        "trusted_networks": ["127.0.0.1/32"],
        "accepted_domains": [DOMAIN],
        "smtp": {"bare_lf": "reject"},
        "limits": {"line_length": 512, "text_line_length": 1000, "message_size": "10M",
                   "recipients": 100, "errors": 10, "max_received": 30},
        "upstream": {"address": "127.0.0.1:%d" % upstream_port, "tls": "none",
                     "client_identity": "none"},
    }
    if tls:
        lst["tls"] = {"mode": tls, "certificates": [{"cert": pki["cert"], "key": pki["key"]}],
                      "handshake_timeout": "10s"}
    return deep_merge(lst, over)


def gateway_config(tmp, listeners, **over):
    cfg = {
        "workers": 1,
        "log": {"target": "stderr", "level": "debug"},
        "spool": {"directory": os.path.join(str(tmp), "spool"), "memory_threshold": "256K"},
        "listeners": listeners if isinstance(listeners, list) else [listeners],
    }
    return deep_merge(cfg, over)


class Gateway(ChildProcess):
    """The binary under test, started from a YAML config (config=dict or str) or one-line args (args=list).

    stderr/stdout go to DIR/gateway-N.log; waits for `port` to accept; stopped by PID with SIGTERM
    (bounded wait, then SIGKILL)."""

    _n = 0

    def __init__(self, directory, config=None, args=None, port=None):
        Gateway._n += 1
        self.dir = str(directory)
        self.id = Gateway._n
        self.config = config
        self.args = args
        self.log_path = os.path.join(self.dir, "gateway-%d.log" % self.id)
        self.config_path = None
        self.proc = None
        self.returncode = None
        if port is None and isinstance(config, dict):
            port = int(config["listeners"][0]["listen"][0].rsplit(":", 1)[1])
        self.port = port

    def write_config(self):
        if self.config is None:
            return None
        text = self.config if isinstance(self.config, str) else to_yaml(self.config) + "\n"
        self.config_path = os.path.join(self.dir, "gateway-%d.yaml" % self.id)
        with open(self.config_path, "w") as f:
            f.write(text)
        return self.config_path

    def command(self):
        b = portcullis_bin()
        if self.args is not None:
            return [b] + list(self.args)
        return [b, "-c", self.write_config()]

    def start(self, timeout=15.0):
        os.makedirs(os.path.join(self.dir, "spool"), exist_ok=True)
        cmd = self.command()
        log = open(self.log_path, "ab")
        log.write(("# %s\n" % " ".join(cmd)).encode())
        log.flush()
        offset = log.tell()
        self.proc = subprocess.Popen(cmd, stdin=subprocess.DEVNULL, stdout=log, stderr=log)
        log.close()
        if self.port:
            try:
                wait_port(self.port, timeout=timeout, proc=self.proc)
                self.wait_started(offset, timeout)
            except Exception as e:
                self.stop()
                raise RuntimeError("gateway did not start on %s (%s); log:\n%s"
                                   % (self.port, e, self.log_text()[-4000:]))
        return self

    def wait_started(self, offset, timeout):
        """Bounded wait for this start's `event=started` line: the listening socket is bound before
        the workers and the periodic jobs (quarantine directory, store) are ready."""
        deadline = time.monotonic() + timeout
        while time.monotonic() < deadline:
            with open(self.log_path, "rb") as f:
                f.seek(offset)
                if b"event=started" in f.read():
                    return
            if self.proc.poll() is not None:
                raise RuntimeError("exited with %s" % self.proc.returncode)
            time.sleep(0.02)
        raise RuntimeError("no event=started in the log within %.0f s" % timeout)


def run_portcullis(args, timeout=30):
    """Run the binary to completion (for -t and other CLI checks). Returns CompletedProcess (text)."""
    return subprocess.run([portcullis_bin()] + list(args), stdout=subprocess.PIPE, stderr=subprocess.PIPE,
                          timeout=timeout, universal_newlines=True, errors="replace")


# --------------------------------------------------------------------------- raw SMTP client

class Reply:
    def __init__(self, code, lines, raw):
        self.code = code          # int, e.g. 250
        self.lines = lines        # text after "NNN-" / "NNN " of each line
        self.raw = raw            # the bytes as received

    @property
    def text(self):
        return "\n".join(self.lines)

    @property
    def enhanced(self):
        m = re.match(r"(\d\.\d{1,3}\.\d{1,3})\b", self.lines[0] if self.lines else "")
        return m.group(1) if m else None

    def __repr__(self):
        return "Reply(%d, %r)" % (self.code, self.lines[:5])


class SocketClient:
    """Base of the raw protocol clients (SmtpClient, Pop3Client, ImapClient) on self.sock: send()
    (str is sent UTF-8 encoded), close() and use as a context manager (closes on exit)."""

    def _connect(self, port, host, timeout, tls_context, server_hostname, source):
        """self.sock to host:port (bound to source when given; implicit TLS with tls_context), an
        empty read buffer, self.timeout for the reads."""
        self.timeout = timeout
        self.sock = socket.create_connection((host, port), timeout=timeout,
                                             source_address=(source, 0) if source else None)
        if tls_context is not None:
            self.sock = tls_context.wrap_socket(self.sock, server_hostname=server_hostname)
        self.buf = b""

    def send(self, data):
        if isinstance(data, str):
            data = data.encode()
        self.sock.sendall(data)

    def close(self):
        try:
            self.sock.close()
        except OSError:
            pass

    def __enter__(self):
        return self

    def __exit__(self, *exc):
        self.close()


class SmtpClient(SocketClient):
    """Raw-socket SMTP client for dialogue tests.

    source: local address to bind (e.g. '127.0.0.5'); tls_context: connect with implicit TLS.
    read_reply() returns a Reply, or None if the server closed the connection before any byte.
    Raises socket.timeout when no complete reply arrives in time."""

    MAX_REPLY_LINES = 2000

    def __init__(self, port, host="127.0.0.1", source=None, timeout=10.0, tls_context=None,
                 server_hostname="localhost", greeting=True):
        self.port, self.host, self.timeout = port, host, timeout
        self.buf = b""
        self.transcript = []
        self.sock = socket.socket(socket.AF_INET, socket.SOCK_STREAM)
        self.sock.settimeout(timeout)
        if source:
            self.sock.bind((source, 0))
        self.sock.connect((host, port))
        self.sock.setsockopt(socket.IPPROTO_TCP, socket.TCP_NODELAY, 1)
        self.tls = False
        if tls_context is not None:
            self.sock = tls_context.wrap_socket(self.sock, server_hostname=server_hostname)
            self.tls = True
        self.greeting = self.read_reply() if greeting else None

    # -- I/O
    def send(self, data):
        if isinstance(data, str):
            data = data.encode("utf-8")
        self.transcript.append((">", data))
        self.sock.sendall(data)

    def _fill(self, timeout):
        self.sock.settimeout(timeout)
        chunk = self.sock.recv(65536)
        if chunk:
            self.transcript.append(("<", chunk))
        return chunk

    def read_line(self, timeout=None):
        """One line (bytes, without CRLF), or None on EOF. Lines are capped at 64 KB."""
        timeout = self.timeout if timeout is None else timeout
        deadline = time.monotonic() + timeout
        for _ in range(100000):
            i = self.buf.find(b"\n")
            if i >= 0:
                line, self.buf = self.buf[:i], self.buf[i + 1:]
                return line[:-1] if line.endswith(b"\r") else line
            if len(self.buf) > 65536:
                line, self.buf = self.buf, b""
                return line
            left = deadline - time.monotonic()
            if left <= 0:
                raise socket.timeout("no complete line in %.1fs (have %r)" % (timeout, self.buf[:200]))
            try:
                chunk = self._fill(left)
            except (ConnectionResetError, BrokenPipeError, ssl.SSLError):
                chunk = b""
            if not chunk:
                if self.buf:
                    line, self.buf = self.buf, b""
                    return line
                return None
            self.buf += chunk
        raise RuntimeError("read_line loop bound hit")

    def read_reply(self, timeout=None):
        lines, raw = [], b""
        code = None
        for _ in range(self.MAX_REPLY_LINES):
            line = self.read_line(timeout)
            if line is None:
                if not lines:
                    return None
                raise EOFError("connection closed inside a multi-line reply: %r" % raw)
            raw += line + b"\r\n"
            m = re.match(rb"(\d{3})([ -]?)(.*)", line, re.S)
            if not m:
                raise ValueError("malformed reply line %r" % line)
            code = int(m.group(1))
            lines.append(m.group(3).decode("utf-8", "replace"))
            if m.group(2) != b"-":
                return Reply(code, lines, raw)
        raise ValueError("reply longer than %d lines" % self.MAX_REPLY_LINES)

    def cmd(self, line, timeout=None):
        if isinstance(line, str):
            line = line.encode("utf-8")
        self.send(line + b"\r\n")
        return self.read_reply(timeout)

    def ehlo(self, name="client.test"):
        r = self.cmd("EHLO " + name)
        self.caps = {}
        if r is not None and r.code == 250:
            for l in r.lines[1:]:
                parts = l.split(None, 1)
                if parts:
                    self.caps[parts[0].upper()] = parts[1] if len(parts) > 1 else ""
        return r

    def starttls(self, context, server_hostname="localhost"):
        """STARTTLS; on 220, upgrade. Any plaintext already buffered after the 220 is kept in
        self.leftover_after_starttls (a correct server sends none)."""
        r = self.cmd("STARTTLS")
        if r is None or r.code != 220:
            return r
        self.leftover_after_starttls = self.buf
        self.buf = b""
        self.sock.settimeout(self.timeout)
        self.sock = context.wrap_socket(self.sock, server_hostname=server_hostname)
        self.tls = True
        return r

    def closed(self, timeout=5.0):
        """True if the server closes the connection within timeout (reading and discarding data)."""
        deadline = time.monotonic() + timeout
        for _ in range(10000):
            left = deadline - time.monotonic()
            if left <= 0:
                return False
            try:
                chunk = self._fill(left)
            except socket.timeout:
                return False
            except (ConnectionResetError, BrokenPipeError, ssl.SSLError, OSError):
                return True
            if not chunk:
                return True
            self.buf += chunk
        return False

    # -- conveniences
    def transaction(self, sender, rcpts, data, helo=True):
        """MAIL/RCPT/DATA one step at a time; returns the list of replies (stops at the first refusal
        of MAIL or DATA). `data` is the unstuffed message; it is dot-stuffed and terminated here."""
        replies = []
        if helo:
            replies.append(self.ehlo())
        r = self.cmd("MAIL FROM:<%s>" % sender)
        replies.append(r)
        if r is None or r.code != 250:
            return replies
        ok = False
        for rc in rcpts:
            r = self.cmd("RCPT TO:<%s>" % rc)
            replies.append(r)
            ok = ok or (r is not None and r.code == 250)
        if not ok:
            return replies
        r = self.cmd("DATA")
        replies.append(r)
        if r is None or r.code != 354:
            return replies
        self.send(dot_stuff(data) + b".\r\n")
        replies.append(self.read_reply(timeout=max(self.timeout, 30)))
        return replies


def dot_stuff(data):
    """Canonical CRLF message -> DATA payload (dots doubled at line start; CRLF ensured at the end)."""
    if isinstance(data, str):
        data = data.encode("utf-8")
    if not data.endswith(b"\r\n"):
        data += b"\r\n"
    if data.startswith(b"."):
        data = b"." + data
    return data.replace(b"\r\n.", b"\r\n..")


def simple_message(subject="test", body="Hello.\r\n", sender="sender@client.test", to="alice@example.test",
                   extra_headers=""):
    if isinstance(body, str):
        body = body.encode("utf-8")
    head = ("From: <%s>\r\nTo: <%s>\r\nSubject: %s\r\nMessage-ID: <%s@client.test>\r\n%s\r\n"
            % (sender, to, subject, "%x" % int(time.time() * 1e6), extra_headers))
    return head.encode() + body


def loopback_alias_ok(addr="127.0.0.5"):
    """Linux routes all of 127/8 to lo; check that binding to addr works here."""
    s = socket.socket()
    try:
        s.bind((addr, 0))
        return True
    except OSError:
        return False
    finally:
        s.close()


# --------------------------------------------------------------------------- unittest base class

import struct  # noqa: E402
import sys  # noqa: E402
import threading  # noqa: E402
import unittest  # noqa: E402


def trickle_until_close(socks, data=b"NOOPNOOPNOOPNOOPNOOPNOOP", every=0.5, limit=15.0):
    """A slow client on each socket of socks: one byte of data (never a line end) every `every`
    seconds, round-robin, until the peer closes or `limit` seconds pass. Returns, per socket, the
    seconds until the peer closed it, or None when it was still open at the limit. Bounded."""
    t0 = time.monotonic()
    closed = [None] * len(socks)
    for i in range(int(limit / every) + 1):
        if all(c is not None for c in closed) or time.monotonic() - t0 > limit:
            break
        for k, s in enumerate(socks):
            if closed[k] is not None:
                continue
            try:
                s.settimeout(0.01)
                try:
                    if s.recv(4096) == b"":
                        closed[k] = time.monotonic() - t0
                        continue
                except socket.timeout:
                    pass
                s.sendall(data[i % len(data):i % len(data) + 1])
            except (ConnectionError, ssl.SSLError, OSError):
                closed[k] = time.monotonic() - t0
        time.sleep(every)
    return closed


def read_until_close(sock, timeout=15.0, cap=64 << 20):
    """Everything the peer sends until it closes: (bytes, closed). Bounded in time and size."""
    deadline = time.monotonic() + timeout
    out = bytearray()
    for _ in range(1000000):
        left = deadline - time.monotonic()
        if left <= 0 or len(out) > cap:
            return bytes(out), False
        sock.settimeout(max(0.05, min(left, 1.0)))
        try:
            d = sock.recv(65536)
        except socket.timeout:
            continue
        except (ConnectionError, ssl.SSLError, OSError):
            return bytes(out), True
        if not d:
            return bytes(out), True
        out += d
    return bytes(out), False


def drain(c, timeout=15.0):
    """What client c (with a .buf of bytes read ahead and a .sock) has not consumed yet, plus
    everything until the peer closes: (bytes, closed)."""
    head, c.buf = bytes(c.buf), b""
    data, closed = read_until_close(c.sock, timeout)
    return head + data, closed


def wait_for(predicate, timeout=5.0, interval=0.1):
    """Polls predicate() until it is true or timeout passes (bounded). Returns its last value."""
    deadline = time.monotonic() + timeout
    for _ in range(int(timeout / interval) + 2):
        value = predicate()
        if value or time.monotonic() >= deadline:
            return value
        time.sleep(interval)
    return predicate()


def proxy_v1(src, dst="127.0.0.1", sport=40000, dport=25):
    return ("PROXY TCP4 %s %s %d %d\r\n" % (src, dst, sport, dport)).encode()


def proxy_v2(src, dst="127.0.0.1", sport=40000, dport=25):
    body = socket.inet_aton(src) + socket.inet_aton(dst) + struct.pack("!HH", sport, dport)
    return b"\r\n\r\n\x00\r\nQUIT\n" + bytes([0x21, 0x11]) + struct.pack("!H", len(body)) + body


SANITIZER_MARKS = ("ERROR: AddressSanitizer", "ERROR: LeakSanitizer", "runtime error:")

BARE_LF = re.compile(rb"(?<!\r)\n")
BARE_CR = re.compile(rb"\r(?!\n)")


class GatewayTest(unittest.TestCase):
    """Base for gateway dialogue tests: a temp dir + PKI per class, optional Postfix per class,
    helpers to start gateways / hostile upstreams / clients that are all stopped in cleanups."""

    postfix = False          # start a private Postfix for the class
    postfix_tls = False      # ... with STARTTLS enabled

    @classmethod
    def setUpClass(cls):
        cls.tmp = TempDir()
        cls.pki = make_pki(cls.tmp.sub("pki"))
        cls.pf = None
        if cls.postfix:
            cls.pf = Postfix(cls.tmp, tls=cls.postfix_tls, pki=cls.pki).start()

    @classmethod
    def tearDownClass(cls):
        if cls.pf:
            cls.pf.stop()
        cls.tmp.cleanup()

    # -- starting things
    def gateway(self, upstream_port, tls=None, top=None, tls_over=None, **listener_over):
        """tls: the mode (None, 'starttls', 'implicit'); tls_over: more keys for the tls section."""
        port = free_port()
        lst = listener_config(port, upstream_port, tls=tls, pki=self.pki, **listener_over)
        if tls_over:
            lst["tls"] = deep_merge(lst["tls"], tls_over)
        cfg = gateway_config(self.tmp, lst, **(top or {}))
        gw = Gateway(self.tmp, cfg)
        self.addCleanup(self._stop_gateway, gw)
        gw.start()
        return gw

    def gateway_args(self, args, port):
        gw = Gateway(self.tmp, args=args, port=port)
        self.addCleanup(self._stop_gateway, gw)
        gw.start()
        return gw

    def _stop_gateway(self, gw):
        gw.stop()
        log = gw.log_text()
        if os.environ.get("PORTCULLIS_TEST_VERBOSE") or not self._ok():
            sys.stderr.write("\n--- gateway log %s (tail) ---\n%s\n" % (gw.log_path, log[-6000:]))
        # Under the sanitizer build a memory error, undefined behaviour or leak in the gateway fails
        # the test that provoked it, even when every reply the client saw was right.
        for mark in SANITIZER_MARKS:
            if mark in log:
                at = log.index(mark)
                raise AssertionError("sanitizer report in gateway log %s:\n%s"
                                     % (gw.log_path, log[max(0, at - 200):at + 4000]))

    def _ok(self):
        outcome = getattr(self, "_outcome", None)
        if outcome is None:
            return True
        res = getattr(outcome, "result", None)
        if res is not None and hasattr(res, "failures"):
            mine = [t for t, _ in list(res.failures) + list(res.errors) if t is self]
            return not mine and getattr(outcome, "success", True)
        return getattr(outcome, "success", True)

    def hostile(self, mode="record", **kw):
        up = HostileUpstreamRef()(mode, **kw)
        up.start()
        self.addCleanup(up.stop)
        return up

    def client(self, port, **kw):
        c = SmtpClient(port.port if hasattr(port, "port") else port, **kw)
        self.addCleanup(c.close)
        return c

    def server_tls_context(self):
        ctx = ssl.SSLContext(ssl.PROTOCOL_TLS_SERVER)
        ctx.load_cert_chain(self.pki["cert"], self.pki["key"])
        return ctx

    def ca_context(self, **kw):
        return client_context(self.pki["ca"], **kw)

    # -- assertions
    def assertCode(self, reply, code, msg=None):
        """code: exact int (e.g. 250) or a first digit (2..5)."""
        self.assertIsNotNone(reply, msg or "connection closed instead of a reply")
        if code < 10:
            self.assertEqual(reply.code // 100, code, msg or repr(reply))
        else:
            self.assertEqual(reply.code, code, msg or repr(reply))

    def assertEnhanced(self, reply, prefix):
        self.assertIsNotNone(reply)
        self.assertTrue((reply.enhanced or "").startswith(prefix), "%r: want enhanced %s" % (reply, prefix))

    def assertTempFailed(self, replies, accepted):
        """An attempt() that was not accepted and whose first refusal is a 4xx reply."""
        self.assertFalse(accepted, replies)
        fail = first_failure(replies)
        self.assertIsInstance(fail, Reply, "expected a 4xx reply, got %r" % (replies,))
        self.assertEqual(fail.code // 100, 4, replies)
        return fail

    def assertGatewayServes(self, gw, source=None):
        """A fresh session still gets a 220 greeting and a 250 EHLO (the gateway survived)."""
        self.assertTrue(gw.alive(), "gateway process died; log:\n" + gw.log_text()[-3000:])
        c = SmtpClient(gw.port, source=source)
        try:
            self.assertCode(c.greeting, 220)
            self.assertCode(c.ehlo(), 250)
            c.cmd("QUIT")
        finally:
            c.close()

    def delivered(self, user, token, expect=1, timeout=15.0):
        """Maildir messages of user containing token (bytes), waiting (bounded) for `expect` of them."""
        if isinstance(token, str):
            token = token.encode()
        deadline = time.monotonic() + timeout
        for _ in range(int(timeout / 0.2) + 2):
            got = [m for m in self.pf.maildir_messages(user, expect=0) if token in m]
            if len(got) >= expect or time.monotonic() >= deadline:
                return got
            time.sleep(0.2)
        return [m for m in self.pf.maildir_messages(user, expect=0) if token in m]


def HostileUpstreamRef():
    from hostile_upstream import HostileUpstream
    return HostileUpstream


def unique(tag="msg"):
    return "%s-%x" % (tag, int(time.time() * 1e6))


def attempt(port, sender, rcpts, message, timeout=30.0, **client_kw):
    """Try a full delivery; returns (replies, accepted). Stops at the first refusal of the greeting,
    EHLO, MAIL or DATA, or a closed connection. accepted: the end-of-data reply was 250."""
    replies = []
    try:
        c = SmtpClient(port, timeout=timeout, **client_kw)
    except (OSError, ssl.SSLError) as e:
        return [("connect", e)], False
    try:
        replies.append(c.greeting)
        if c.greeting is None or c.greeting.code != 220:
            return replies, False
        r = c.ehlo()
        replies.append(r)
        if r is None or r.code != 250:
            return replies, False
        reps = c.transaction(sender, rcpts, message, helo=False)
        replies.extend(reps)
        accepted = (len(reps) >= 2 and reps[-2] is not None and reps[-2].code == 354
                    and reps[-1] is not None and reps[-1].code == 250)
        return replies, accepted
    except (OSError, EOFError, ValueError, ssl.SSLError) as e:
        replies.append(("error", e))
        return replies, False
    finally:
        c.close()


def first_failure(replies):
    """The first reply in an attempt() list that is not 2xx/3xx (or None / an error tuple)."""
    for r in replies:
        if r is None:
            return ("closed", None)
        if isinstance(r, tuple) or r.code >= 400:
            return r
    return None


def send_in_thread(sock_send, data, chunk=65536):
    """Write data from a thread (so the test can read replies concurrently); returns the thread.
    Write errors (the peer closed) are recorded in thread.error."""
    def run():
        try:
            for i in range(0, len(data), chunk):
                sock_send(data[i:i + chunk])
        except (OSError, ssl.SSLError) as e:
            t.error = e
    t = threading.Thread(target=run, daemon=True)
    t.error = None
    t.start()
    return t


# ---- POP3 (test_pop3*.py): a raw client, Dovecot pop3 settings, Maildir seeding, a listener ----

class Pop3Client(SocketClient):
    """A raw POP3 client: status lines and multi-line bodies as bytes (CRLF stripped from status
    lines; bodies returned as received on the wire, dot-stuffing kept, without the final ".\\r\\n")."""

    def __init__(self, port, host="127.0.0.1", timeout=10.0, tls_context=None,
                 server_hostname="localhost", greeting=True, source=None):
        self._connect(port, host, timeout, tls_context, server_hostname, source)
        self.greeting = self.read_line() if greeting else None


    def _fill(self):
        try:
            d = self.sock.recv(65536)
        except (socket.timeout, ConnectionError, ssl.SSLError, OSError):
            return False
        if not d:
            return False
        self.buf += d
        return True

    def read_line(self):
        """One line without CRLF, or None if the connection closed first."""
        while b"\r\n" not in self.buf:
            if not self._fill():
                return None
        line, self.buf = self.buf.split(b"\r\n", 1)
        return line

    def read_body(self):
        """The multi-line body after a +OK, wire form, up to (excluding) the final ".\\r\\n"."""
        while True:
            if self.buf.startswith(b".\r\n"):
                self.buf = self.buf[3:]
                return b""
            i = self.buf.find(b"\r\n.\r\n")
            if i >= 0:
                body, self.buf = self.buf[:i + 2], self.buf[i + 5:]
                return body
            if not self._fill():
                return None

    def cmd(self, line):
        self.send(line + "\r\n")
        return self.read_line()

    def cmd_multi(self, line):
        """(status, body or None)."""
        st = self.cmd(line)
        if st is None or not st.startswith(b"+OK"):
            return st, None
        return st, self.read_body()

    def login(self, user, password):
        self.cmd("USER " + user)
        return self.cmd("PASS " + password)

    def stls(self, context, server_hostname="localhost"):
        st = self.cmd("STLS")
        if st is None or not st.startswith(b"+OK"):
            return st
        self.sock = context.wrap_socket(self.sock, server_hostname=server_hostname)
        self.buf = b""
        return st

    def closed(self, timeout=5.0):
        """True if the peer closes within timeout (pending bytes are discarded)."""
        self.sock.settimeout(timeout)
        try:
            while True:
                d = self.sock.recv(65536)
                if not d:
                    return True
        except (ConnectionError, ssl.SSLError):
            return True
        except (socket.timeout, OSError):
            return False
        finally:
            self.sock.settimeout(self.timeout)



def unstuff(body):
    """A POP3 multi-line body in wire form → the message (dot-stuffing removed)."""
    lines = body.split(b"\r\n")
    return b"\r\n".join(l[1:] if l.startswith(b".") else l for l in lines)


def dovecot_pop3_conf(directory, port, pop3s_port=0, pki=None, haproxy=False):
    """extra_conf for Dovecot(protocols="pop3", ...): a pop3 inet_listener on 127.0.0.1:port (STLS
    offered when pki is given), a pop3s one on pop3s_port (0 = off), Maildir under each user's home.
    The settings go into DIRECTORY/dovecot-pop3.conf and extra_conf is one `!include` line (the
    template's header comment also names the @EXTRA@ placeholder, so it must stay one line)."""
    ssl_conf = ""
    if pki:
        ssl_conf = "ssl = yes\nssl_cert = <%s\nssl_key = <%s\n" % (pki["cert"], pki["key"])
    hap = ""
    if haproxy:
        hap = "haproxy_trusted_networks = 127.0.0.0/8\n"
    text = (
        "mail_location = maildir:~/Maildir\n"
        "pop3_uidl_format = %%08Xu%%08Xv\n"
        "%s%s"
        "service pop3-login {\n"
        "  inet_listener pop3 {\n    address = 127.0.0.1\n    port = %d\n%s  }\n"
        "  inet_listener pop3s {\n    address = 127.0.0.1\n    port = %d\n    ssl = yes\n  }\n"
        "}\n"
    ) % (ssl_conf, hap, port, "    haproxy = yes\n" if haproxy else "", pop3s_port)
    path = os.path.join(str(directory), "dovecot-pop3.conf")
    with open(path, "w") as f:
        f.write(text)
    os.chmod(path, 0o644)
    return "!include %s" % path


def pop3_listener_config(port, upstream_port, tls=None, pki=None, name="pop", upstream=None, **over):
    """One POP3 listener; tls: None | 'starttls' | 'implicit'; upstream: extra upstream keys."""
    lst = {
        "name": name,
        "protocol": "pop3",
        "listen": ["127.0.0.1:%d" % port],
        "hostname": "gw.test",
        "upstream": deep_merge({"address": "127.0.0.1:%d" % upstream_port, "tls": "none",
                                "client_identity": "none"}, upstream or {}),
    }
    if tls:
        lst["tls"] = {"mode": tls, "certificates": [{"cert": pki["cert"], "key": pki["key"]}],
                      "handshake_timeout": "10s"}
    return deep_merge(lst, over)


# --------------------------------------------------------------------------- IMAP (test_imap*.py)

def dovecot_imap_conf(port):
    """extra_conf for Dovecot(protocols="imap"): an imap inet_listener on 127.0.0.1:port, no imaps,
    Maildir in the users' homes (home/<user>/Maildir, owned by uid/gid 65534).
    dovecot.conf.in also names @EXTRA@ inside a comment line ending in "."; the text therefore
    starts with a newline and ends with "#" so that both copies parse (Dovecot merges the repeated
    named sections)."""
    return "\n" + ("mail_location = maildir:~/Maildir\n"
            "service imap-login {\n"
            "  inet_listener imap {\n    address = 127.0.0.1\n    port = %d\n  }\n"
            "  inet_listener imaps {\n    port = 0\n  }\n}\n" % port) + "#"


def seed_maildir(dovecot, user, messages):
    """Replaces user's Maildir by a fresh one holding messages (bytes, CRLF or LF) in cur/."""
    md = os.path.join(dovecot.home, user, "Maildir")
    shutil.rmtree(os.path.join(dovecot.home, user), ignore_errors=True)
    for sub in ("cur", "new", "tmp"):
        os.makedirs(os.path.join(md, sub), exist_ok=True)
    for i, m in enumerate(messages):
        with open(os.path.join(md, "cur", "%d.M%dP1.test:2," % (1700000000 + i, i)), "wb") as f:
            f.write(m)
    for root, dirs, files in os.walk(os.path.join(dovecot.home, user)):
        for n in dirs + files:
            os.chown(os.path.join(root, n), NOBODY_UID, NOBODY_GID)
    os.chown(os.path.join(dovecot.home, user), NOBODY_UID, NOBODY_GID)
    return md


def imap_listener_config(port, upstream_port, tls=None, pki=None, name="imap", **over):
    """One IMAP listener in front of upstream_port; tls: None | 'starttls' | 'implicit'."""
    lst = {
        "name": name,
        "protocol": "imap",
        "listen": ["127.0.0.1:%d" % port],
        "hostname": "gw.test",
        "upstream": {"address": "127.0.0.1:%d" % upstream_port, "tls": "none",
                     "client_identity": "none"},
    }
    if tls:
        lst["tls"] = {"mode": tls, "certificates": [{"cert": pki["cert"], "key": pki["key"]}],
                      "handshake_timeout": "10s"}
    return deep_merge(lst, over)


class ImapClient(SocketClient):
    """Raw-socket IMAP client: raw writes, literal-aware response reading (a response is returned
    as bytes with its literals inline), STARTTLS, implicit TLS. Every read is bounded by timeout."""

    def __init__(self, port, host="127.0.0.1", timeout=10.0, tls_context=None,
                 server_hostname="localhost", greeting=True, source=None):
        self._connect(port, host, timeout, tls_context, server_hostname, source)
        self.n = 0
        self.greeting = self.read_response() if greeting else None


    def _fill(self, timeout):
        self.sock.settimeout(timeout)
        d = self.sock.recv(65536)
        if not d:
            raise EOFError("connection closed")
        self.buf += d

    def read_response(self, timeout=None):
        """One response (a logical line, literals included, CRLF included) or None on close."""
        t = self.timeout if timeout is None else timeout
        deadline = time.monotonic() + t
        out = b""
        while True:
            try:
                while b"\r\n" not in self.buf:
                    if time.monotonic() > deadline:
                        raise socket.timeout("no response")
                    self._fill(max(0.05, deadline - time.monotonic()))
            except EOFError:
                return None if not out and not self.buf else out + self.buf
            i = self.buf.index(b"\r\n") + 2
            line, self.buf = self.buf[:i], self.buf[i:]
            out += line
            m = re.search(rb"\{(\d+)\+?\}\r\n$", line)
            if not m or line.startswith((b"+ ", b"+\r")):
                return out
            size = int(m.group(1))
            while len(self.buf) < size:
                if time.monotonic() > deadline:
                    raise socket.timeout("literal incomplete")
                self._fill(max(0.05, deadline - time.monotonic()))
            out += self.buf[:size]
            self.buf = self.buf[size:]

    def tag(self):
        self.n += 1
        return "t%d" % self.n

    def until_tagged(self, tag, timeout=None):
        """Responses up to and including the tagged one (list of bytes); stops early at close."""
        res = []
        for _ in range(100000):
            r = self.read_response(timeout)
            if r is None:
                return res
            res.append(r)
            if r.startswith(tag.encode() + b" "):
                return res
        return res

    def cmd(self, text, timeout=None):
        """Sends 'TAG text' and returns all responses up to the tagged one."""
        t = self.tag()
        self.send("%s %s\r\n" % (t, text))
        return self.until_tagged(t, timeout)

    def starttls(self, context, server_hostname="localhost"):
        r = self.cmd("STARTTLS")
        if not r or b" OK " not in r[-1]:
            return r
        self.sock = context.wrap_socket(self.sock, server_hostname=server_hostname)
        self.buf = b""
        return r

    def closed(self, timeout=5.0):
        """True when the peer closes within timeout (pending bytes are read and dropped)."""
        deadline = time.monotonic() + timeout
        while time.monotonic() < deadline:
            try:
                self._fill(max(0.05, deadline - time.monotonic()))
            except EOFError:
                return True
            except socket.timeout:
                return False
            except OSError:
                return True
        return False


# --------------------------------------------------------------------------- Redis

class Redis(ChildProcess):
    """A private redis-server for the state store: 127.0.0.1:port (and, with unix_socket=True, a
    UNIX socket in its directory), nothing persisted (`--save '' --appendonly no`), its files in a
    directory of its own, optionally `requirepass`. start() after stop() starts it again on the
    same port (and socket), for tests of reconnecting. cli(*args) runs one command through
    redis-cli and returns its raw output. Stopped by PID."""

    STOP_TIMEOUT = 10.0

    def __init__(self, directory, password=None, port=None, unix_socket=False, name="redis"):
        self.dir = os.path.join(str(directory), name)
        self.port = port or free_port()
        self.password = password
        self.socket_path = os.path.join(self.dir, "redis.sock") if unix_socket else None
        self.log_path = os.path.join(self.dir, "redis.log")
        self.proc = None

    def start(self, timeout=15.0):
        os.makedirs(self.dir, exist_ok=True)
        args = ["redis-server", "--port", str(self.port), "--bind", "127.0.0.1",
                "--save", "", "--appendonly", "no", "--dir", self.dir, "--daemonize", "no",
                "--logfile", "", "--databases", "16"]
        if self.password:
            args += ["--requirepass", self.password]
        if self.socket_path:
            args += ["--unixsocket", self.socket_path, "--unixsocketperm", "700"]
        log = open(self.log_path, "ab")
        self.proc = subprocess.Popen(args, stdin=subprocess.DEVNULL, stdout=log,
                                     stderr=subprocess.STDOUT, start_new_session=True)
        log.close()
        try:
            wait_port(self.port, timeout=timeout, proc=self.proc)
            wait_until(lambda: self.cli("PING").strip() == "PONG", timeout=timeout,
                       what="redis PING")
        except Exception as e:
            self.stop()
            raise RuntimeError("redis-server did not start (%s):\n%s" % (e, self.log_text()[-4000:]))
        return self

    @property
    def address(self):
        return "127.0.0.1:%d" % self.port

    def cli(self, *args, db=0, timeout=10):
        """One command through redis-cli; its output (text, one line per reply element)."""
        cmd = ["redis-cli", "-h", "127.0.0.1", "-p", str(self.port), "-n", str(db), "--raw"]
        env = dict(os.environ)
        if self.password:
            env["REDISCLI_AUTH"] = self.password
        r = subprocess.run(cmd + [str(a) for a in args], stdin=subprocess.DEVNULL,
                           stdout=subprocess.PIPE, stderr=subprocess.PIPE, timeout=timeout, env=env)
        return r.stdout.decode(errors="replace")
