"""The machinery shared by the DELIBERATELY MISBEHAVING test upstreams (hostile_upstream.py for SMTP,
hostile_mailbox.py for IMAP/POP3), used only by fault and attack tests.

HostileServer: a threaded socket server on 127.0.0.1:<free port>: the listening socket, the accept
loop, one thread per connection, the recordings (sessions, under a lock), start/stop, the views every
test uses (all_bytes, all_commands), the mode (checked against the subclass's modes) and the
dialogue steps the protocols share (STARTTLS, fixed answers). A subclass sets its tunables and
implements _dialogue(io, sess), the scripted conversation of one connection, reading commands with
commands().
Conn: the buffered reader/writer over one accepted socket (plain, then optionally TLS) that records
every byte it reads; a subclass adds the protocol's own readers.
State owned: the listening socket, the accepted sockets, the threads, the recordings.
Invariants: bounded buffers (a session's record is capped at RECORD_CAP, a line at LINE_CAP); every
socket has a timeout; every loop is bounded; stop() closes every socket and joins the threads with a
timeout.
"""

import socket
import ssl
import threading
import time

RECORD_CAP = 64 * 1024 * 1024
LINE_CAP = 1 << 20


class Closed(Exception):
    """The peer went silent past the socket timeout, or the server is stopping."""


class Session:
    def __init__(self, peer):
        self.peer = peer
        self.received = bytearray()   # every byte read from the gateway (plaintext and decrypted)
        self.commands = []            # command lines (str, CRLF stripped)
        self.tls = False
        self.closed_by_peer = False


class Conn:
    """Buffered reader/writer over one accepted socket (plain, then optionally TLS)."""

    def __init__(self, sock, sess, server):
        self.sock, self.sess, self.server = sock, sess, server
        self.buf = b""

    def _recv(self):
        if self.server.stopping.is_set():
            raise Closed()
        try:
            chunk = self.sock.recv(65536)
        except socket.timeout:
            raise Closed()
        if chunk and len(self.sess.received) < RECORD_CAP:
            with self.server.lock:
                self.sess.received += chunk
        return chunk

    def send(self, data):
        self.sock.sendall(data)

    def _need(self, n):
        """Buffers at least n bytes; False when the peer closed first."""
        for _ in range(100000):
            if len(self.buf) >= n:
                return True
            chunk = self._recv()
            if not chunk:
                return False
            self.buf += chunk
        return False

    def readline(self):
        """One line with its line end (or LINE_CAP+ bytes without one); None when the peer closed."""
        for _ in range(100000):
            i = self.buf.find(b"\n")
            if i >= 0:
                line, self.buf = self.buf[:i + 1], self.buf[i + 1:]
                return line
            if len(self.buf) > LINE_CAP:
                line, self.buf = self.buf, b""
                return line
            chunk = self._recv()
            if not chunk:
                return None
            self.buf += chunk
        return None

    def starttls(self, ctx):
        self.buf = b""  # pipelined plaintext after STARTTLS: a correct client never sends any; drop it
        self.sock.settimeout(self.server.tls_timeout)
        self.sock = ctx.wrap_socket(self.sock, server_side=True)
        self.sess.tls = True

    def silence(self, limit=None):
        """Says nothing more; keeps reading (and recording) until the peer closes or limit (default:
        the server's silence_limit) passes."""
        limit = self.server.silence_limit if limit is None else limit
        deadline = time.monotonic() + limit
        self.sock.settimeout(0.5)
        for _ in range(int(limit / 0.5) + 2):
            if time.monotonic() >= deadline or self.server.stopping.is_set():
                return
            try:
                if not self._recv():
                    self.sess.closed_by_peer = True
                    return
            except Closed:
                continue
            except OSError:
                return

    def close(self):
        for f in (lambda: self.sock.shutdown(socket.SHUT_RDWR), self.sock.close):
            try:
                f()
            except OSError:
                pass


class HostileServer:
    """Base of the hostile servers. Subclasses set the class attributes below and _dialogue()."""

    session_class = Session
    conn_class = Conn
    session_timeout = 30.0    # socket timeout of an accepted connection
    tls_timeout = 15.0        # socket timeout once STARTTLS / implicit TLS begins
    silence_limit = 30.0      # how long Conn.silence() keeps listening by default
    command_limit = 100000    # at most this many commands per connection

    def __init__(self, mode, modes, tls_context, what="mode"):
        if mode not in modes:
            raise ValueError("unknown %s %r" % (what, mode))
        self.mode = mode
        self.tls_context = tls_context   # ssl.SSLContext (server side) for STARTTLS, or None
        self.sessions = []
        self.lock = threading.Lock()
        self.conns = []
        self.threads = []
        self.stopping = threading.Event()
        self.sock = socket.socket(socket.AF_INET, socket.SOCK_STREAM)
        self.sock.setsockopt(socket.SOL_SOCKET, socket.SO_REUSEADDR, 1)
        self.sock.bind(("127.0.0.1", 0))
        self.port = self.sock.getsockname()[1]

    # ------------------------------------------------------------------ lifecycle
    def start(self):
        self.sock.listen(64)
        self.sock.settimeout(0.2)
        self._spawn(self._accept_loop)
        return self

    def stop(self, timeout=5.0):
        self.stopping.set()
        try:
            self.sock.close()
        except OSError:
            pass
        self._shutdown_conns(close=True)
        deadline = time.monotonic() + timeout
        for t in list(self.threads):
            t.join(max(0.0, deadline - time.monotonic()))

    def drop_connections(self):
        """Closes every session open now (the listener stays): an upstream that lost its sessions."""
        self._shutdown_conns(close=False)

    def __enter__(self):
        return self.start()

    def __exit__(self, *exc):
        self.stop()

    def _shutdown_conns(self, close):
        with self.lock:
            conns = list(self.conns)
        for c in conns:
            steps = [lambda: c.shutdown(socket.SHUT_RDWR)] + ([c.close] if close else [])
            for f in steps:
                try:
                    f()
                except OSError:
                    pass

    def _spawn(self, target, *args):
        t = threading.Thread(target=target, args=args, daemon=True)
        t.start()
        self.threads.append(t)

    def _accept_loop(self):
        while not self.stopping.is_set():
            try:
                conn, peer = self.sock.accept()
            except socket.timeout:
                continue
            except OSError:
                return
            conn.setsockopt(socket.IPPROTO_TCP, socket.TCP_NODELAY, 1)
            sess = self.session_class(peer)
            with self.lock:
                self.conns.append(conn)
                self.sessions.append(sess)
            self._spawn(self._serve, conn, sess)

    # ------------------------------------------------------------------ views for tests
    def all_bytes(self):
        with self.lock:
            return b"".join(bytes(s.received) for s in self.sessions)

    def all_commands(self):
        with self.lock:
            return [c for s in self.sessions for c in s.commands]

    # ------------------------------------------------------------------ one connection
    def _serve(self, conn, sess):
        conn.settimeout(self.session_timeout)
        io = self.conn_class(conn, sess, self)
        try:
            self._dialogue(io, sess)
        except (OSError, ssl.SSLError, Closed, ValueError):
            pass
        finally:
            io.close()

    def _dialogue(self, io, sess):
        raise NotImplementedError

    def starttls_step(self, io, mode, offered, inject, ready, refused):
        """The STARTTLS (STLS) step of a dialogue. In mode starttls_inject: sends inject (the go-ahead
        and injected bytes, in one write), then TLS, or without a tls_context keeps silent. Otherwise
        ready and TLS when offered, else refused. Returns False when the dialogue is over."""
        if mode == "starttls_inject":
            io.send(inject)
            if self.tls_context is None:
                io.silence()
                return False
            io.starttls(self.tls_context)
        elif offered:
            io.send(ready)
            io.starttls(self.tls_context)
        else:
            io.send(refused)
        return True

    def fixed_answer(self, io, verb, answers, unknown, last="QUIT"):
        """Sends answers[verb], the fixed answer of a verb (unknown for any other); returns False
        after the verb last (the dialogue is over)."""
        io.send(answers.get(verb, unknown))
        return verb != last

    def record(self, sess, text):
        with self.lock:
            sess.commands.append(text)

    def commands(self, io, sess, read=None):
        """Yields each command line the peer sends (str, CRLF stripped; read: the reader, by default
        io.readline), recorded in sess.commands; when the peer closes, marks the session
        closed_by_peer and stops. Bounded by command_limit."""
        read = read or io.readline
        for _ in range(self.command_limit):
            line = read()
            if line is None:
                sess.closed_by_peer = True
                return
            text = line.rstrip(b"\r\n").decode("latin-1")
            self.record(sess, text)
            yield text
