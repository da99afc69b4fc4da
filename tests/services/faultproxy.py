#!/usr/bin/python3
"""faultproxy.py — an HTTP/1.1 proxy in front of an S3 server (radosgw)
that does harm on demand, for the client's retry and deadline tests.

    /usr/bin/python3 tests/services/faultproxy.py --upstream 127.0.0.1:PORT \
        --port-file FILE

listens on two free ports of 127.0.0.1 and writes "DATA CONTROL\\n" to FILE
(atomically) once it accepts connections. Clients send their S3 requests
to DATA; every request goes upstream on a connection of its own, with
"Connection: close" (so each request is one client connection and a
fault hits exactly the request it is meant for). Stop it with SIGTERM.

CONTROL takes one command per line and answers "ok" (or "ok N", or
"error WHY"). A fault command queues a fault for the next COUNT requests
(default 1) whose request line contains SUBSTR (on=SUBSTR; default any);
faults are used in the order they were queued:

    status CODE [COUNT] [on=SUBSTR] [code=NAME]
                                     answer CODE with an S3 error body:
                                     <Code>NAME</Code>, by default the
                                     usual one (503 SlowDown, 500
                                     InternalError, 404 NoSuchKey, ...)
    reset [COUNT] [on=SUBSTR]        reset the connection, answer nothing
    delay MS [COUNT] [on=SUBSTR]     wait MS ms, then pass the request on
    lose [COUNT] [on=SUBSTR]         pass it on, then reset the client
                                     instead of relaying the answer
    cut BYTES [COUNT] [on=SUBSTR]    relay BYTES of the answer, then reset
    flip [COUNT] [on=SUBSTR]         pass it on with one body byte changed
    clear                            forget the faults not yet used
    count                            "ok N": requests seen so far
"""
import argparse
import os
import signal
import socket
import struct
import sys
import threading
import time

CODES = {500: ("Internal Server Error", "InternalError"),
         502: ("Bad Gateway", "BadGateway"),
         503: ("Slow Down", "SlowDown"),
         504: ("Gateway Timeout", "GatewayTimeout"),
         429: ("Too Many Requests", "SlowDown"),
         403: ("Forbidden", "AccessDenied"),
         404: ("Not Found", "NoSuchKey")}


class Faults:
    def __init__(self):
        self.lock = threading.Lock()
        self.queue = []     # [kind, arg, count, substr, code name]
        self.seen = 0

    def add(self, kind, arg, count, on, name):
        with self.lock:
            self.queue.append([kind, arg, count, on, name])

    def clear(self):
        with self.lock:
            self.queue = []

    def take(self, request_line):
        """The fault for this request, or None; counts the request."""
        with self.lock:
            self.seen += 1
            for f in self.queue:
                if f[3] in request_line:
                    f[2] -= 1
                    if f[2] == 0:
                        self.queue.remove(f)
                    return f[0], f[1], f[4]
        return None


def reset(sock):
    """Closes sock with a TCP RST."""
    try:
        sock.setsockopt(socket.SOL_SOCKET, socket.SO_LINGER,
                        struct.pack("ii", 1, 0))
    except OSError:
        pass
    sock.close()


def read_head(sock):
    """The request head (bytes up to the blank line) and what followed."""
    buf = b""
    while b"\r\n\r\n" not in buf:
        data = sock.recv(65536)
        if not data:
            return None, b""
        buf += data
        if len(buf) > 1 << 20:
            return None, b""
    head, rest = buf.split(b"\r\n\r\n", 1)
    return head + b"\r\n\r\n", rest


def header(head, name):
    for line in head.split(b"\r\n")[1:]:
        k, _, v = line.partition(b":")
        if k.strip().lower() == name:
            return v.strip()
    return None


def error_response(code, name):
    reason, s3code = CODES.get(code, ("Error", "InternalError"))
    s3code = name or s3code
    body = ('<?xml version="1.0" encoding="UTF-8"?><Error><Code>%s</Code>'
            '<Message>injected by faultproxy</Message></Error>'
            % s3code).encode()
    return (b"HTTP/1.1 %d %s\r\nContent-Type: application/xml\r\n"
            b"Content-Length: %d\r\nConnection: close\r\n\r\n"
            % (code, reason.encode(), len(body))) + body


def pump_body(src, dst, rest, length, flip):
    """Sends length body bytes (rest first, then from src) to dst."""
    sent = 0
    data = rest
    while sent < length:
        if not data:
            data = src.recv(min(65536, length - sent))
            if not data:
                return
        data = data[:length - sent]
        if flip and sent <= length // 2 < sent + len(data):
            i = length // 2 - sent
            data = data[:i] + bytes([data[i] ^ 0xff]) + data[i + 1:]
        dst.sendall(data)
        sent += len(data)
        data = b""


def handle(client, upstream, faults):
    try:
        head, rest = read_head(client)
        if head is None:
            client.close()
            return
        line = head.split(b"\r\n", 1)[0].decode("latin-1")
        fault = faults.take(line)
        kind, arg, name = fault if fault else ("pass", 0, "")
        length = int(header(head, b"content-length") or 0)
        expect = (header(head, b"expect") or b"").lower() == b"100-continue"
        if kind == "status":
            # Read the body unless the client waits for a 100 first.
            if not expect:
                left = length - len(rest)
                while left > 0:
                    data = client.recv(min(65536, left))
                    if not data:
                        break
                    left -= len(data)
            client.sendall(error_response(arg, name))
            client.close()
            return
        if kind == "reset":
            reset(client)
            return
        if kind == "delay":
            time.sleep(arg / 1000.0)
        # Every request on a connection of its own, closed after it.
        lines = [l for l in head[:-4].split(b"\r\n")
                 if not l.lower().startswith(b"connection:")]
        head = b"\r\n".join(lines) + b"\r\nConnection: close\r\n\r\n"
        up = socket.create_connection(upstream)
        up.sendall(head)
        t = threading.Thread(target=pump_body, daemon=True,
                             args=(client, up, rest, length,
                                   kind == "flip"))
        t.start()
        relayed = 0
        while True:
            data = up.recv(65536)
            if not data:
                break
            if kind == "lose":
                continue
            if kind == "cut" and relayed + len(data) >= arg:
                client.sendall(data[:arg - relayed])
                reset(client)
                up.close()
                return
            client.sendall(data)
            relayed += len(data)
        up.close()
        if kind == "lose":
            reset(client)
            return
        client.shutdown(socket.SHUT_WR)
        client.close()
    except OSError:
        try:
            client.close()
        except OSError:
            pass


def control(conn, faults):
    f = conn.makefile("rwb", buffering=0)
    for raw in f:
        words = raw.decode().split()
        opt = {"on": "", "code": ""}
        while words and "=" in words[-1]:
            k, _, v = words.pop().partition("=")
            opt[k] = v
        try:
            cmd, args = words[0], [int(w) for w in words[1:]]
            if cmd == "clear":
                faults.clear()
                f.write(b"ok\n")
                continue
            if cmd == "count":
                f.write(b"ok %d\n" % faults.seen)
                continue
            takes_arg = {"status": True, "delay": True, "cut": True,
                         "reset": False, "lose": False, "flip": False}
            if cmd not in takes_arg:
                raise ValueError("unknown command")
            arg = args.pop(0) if takes_arg[cmd] else 0
            count = args.pop(0) if args else 1
            if args or count < 1:
                raise ValueError("bad arguments")
            faults.add(cmd, arg, count, opt["on"], opt["code"])
            f.write(b"ok\n")
        except (ValueError, IndexError) as e:
            f.write(b"error %s\n" % str(e).encode())
    conn.close()


def serve(sock, fn, *args):
    while True:
        conn, _ = sock.accept()
        threading.Thread(target=fn, args=(conn,) + args,
                         daemon=True).start()


def main():
    ap = argparse.ArgumentParser()
    ap.add_argument("--upstream", required=True, help="HOST:PORT")
    ap.add_argument("--port-file", required=True)
    a = ap.parse_args()
    host, _, port = a.upstream.rpartition(":")
    upstream = (host, int(port))
    faults = Faults()
    data = socket.socket()
    data.setsockopt(socket.SOL_SOCKET, socket.SO_REUSEADDR, 1)
    data.bind(("127.0.0.1", 0))
    data.listen(128)
    ctl = socket.socket()
    ctl.bind(("127.0.0.1", 0))
    ctl.listen(8)
    signal.signal(signal.SIGTERM, lambda *_: os._exit(0))
    threading.Thread(target=serve, args=(ctl, control, faults),
                     daemon=True).start()
    tmp = a.port_file + ".tmp"
    with open(tmp, "w") as f:
        f.write("%d %d\n" % (data.getsockname()[1], ctl.getsockname()[1]))
    os.rename(tmp, a.port_file)
    serve(data, handle, upstream, faults)


if __name__ == "__main__":
    sys.exit(main())
