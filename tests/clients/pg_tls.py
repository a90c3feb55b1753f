"""TLS on Conveyor's Postgres-wire endpoint.

  pg_tls.py gen DIR                  writes a throwaway CA (ca.pem) and a
                                     server certificate for 127.0.0.1
                                     (cert.pem, key.pem) with trustme
  pg_tls.py check PORT USER PASSWORD CA
                                     connects with sslmode=verify-full and
                                     prints JSON of what it saw
"""
import json
import sys

if sys.argv[1] == "gen":
    import os

    import trustme

    d = sys.argv[2]
    ca = trustme.CA()
    cert = ca.issue_cert("127.0.0.1", "localhost")
    ca.cert_pem.write_to_path(os.path.join(d, "ca.pem"))
    cert.private_key_pem.write_to_path(os.path.join(d, "key.pem"))
    with open(os.path.join(d, "cert.pem"), "wb") as f:
        for blob in cert.cert_chain_pems:
            f.write(blob.bytes())
    print(json.dumps({"ok": True}))
else:
    import psycopg

    port, user, password, ca = sys.argv[2:6]
    out = {}
    with psycopg.connect(
        host="127.0.0.1", port=port, user=user, password=password, dbname="warehouse",
        sslmode="verify-full", sslrootcert=ca,
    ) as conn:
        out["ssl"] = bool(conn.pgconn.ssl_in_use)
        out["one"] = conn.execute("SELECT 1").fetchone()[0]
    try:
        psycopg.connect(host="127.0.0.1", port=port, user=user, password="wrong", dbname="warehouse",
                        sslmode="require").close()
        out["wrong"] = None
    except psycopg.OperationalError as e:
        out["wrong"] = str(e)
    print(json.dumps(out))
