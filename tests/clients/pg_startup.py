"""Raw Postgres startups against Conveyor's Postgres-wire endpoint, for
what drivers never send: a startup without a user, an SSLRequest to a
server without TLS. Prints JSON.

Usage: pg_startup.py PORT
"""
import json
import socket
import struct
import sys

port = int(sys.argv[1])


def fields(payload):
    out = {}
    for part in payload.split(b"\0"):
        if part:
            out[chr(part[0])] = part[1:].decode()
    return out


def startup(params):
    body = struct.pack("!I", 196608) + b"".join(k.encode() + b"\0" + v.encode() + b"\0" for k, v in params.items()) + b"\0"
    s = socket.create_connection(("127.0.0.1", port), timeout=10)
    s.sendall(struct.pack("!I", len(body) + 4) + body)
    kind = s.recv(1)
    (length,) = struct.unpack("!I", s.recv(4))
    payload = b""
    while len(payload) < length - 4:
        payload += s.recv(length - 4 - len(payload))
    s.close()
    return kind.decode(), payload


out = {}
kind, payload = startup({"database": "warehouse"})
out["no_user"] = [kind, fields(payload)] if kind == "E" else [kind]
s = socket.create_connection(("127.0.0.1", port), timeout=10)
s.sendall(struct.pack("!II", 8, 80877103))
out["ssl_answer"] = s.recv(1).decode()
s.close()
print(json.dumps(out))
