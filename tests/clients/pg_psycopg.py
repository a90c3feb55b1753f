"""psycopg 3 against Conveyor's Postgres-wire endpoint: server-side
parameters (prepared and not), binary results, types, a transaction that
wraps reads, cancel. Prints one JSON object of what it saw; the e2e test
(tests/e2e/pgwire.rs) asserts on it.

Usage: pg_psycopg.py PORT USER PASSWORD
"""
import datetime
import decimal
import json
import sys
import threading
import time

import psycopg

port, user, password = sys.argv[1], sys.argv[2], sys.argv[3]
out = {}
with psycopg.connect(host="127.0.0.1", port=port, user=user, password=password, dbname="warehouse") as conn:
    # psycopg opens a transaction (BEGIN) before the first statement.
    cur = conn.cursor()
    cur.execute(
        "SELECT id, name, CAST(amount AS DECIMAL(10,2)) AS amount, updated_at, address, active "
        "FROM src.items WHERE id = %s",
        (7,),
    )
    row = cur.fetchone()
    out["row"] = [row[0], row[1], str(row[2]), row[3].isoformat(), row[4], row[5]]
    out["types"] = [type(v).__name__ for v in row]
    out["decimal"] = isinstance(row[2], decimal.Decimal)
    out["datetime"] = isinstance(row[3], datetime.datetime)
    out["dict"] = isinstance(row[4], dict)
    out["description"] = [(d.name, d.type_code) for d in cur.description]
    out["status_in_tx"] = conn.info.transaction_status.name
    # Prepared on the server (named statement), run twice.
    names = []
    for i in (2, 3):
        cur.execute("SELECT name FROM src.items WHERE id = %s AND active = %s", (i, True), prepare=True)
        names.append(cur.fetchall())
    out["prepared"] = names
    # Binary results.
    cur2 = conn.cursor(binary=True)
    cur2.execute(
        "SELECT %s::int + 1 AS n, 1.5::double AS f, DATE '2024-02-29' AS d, "
        "TIMESTAMP '2024-06-01 12:30:00.25' AS t, 12.34::DECIMAL(6,2) AS m, 'x' AS s, true AS b",
        (41,),
    )
    r = cur2.fetchone()
    out["binary"] = [r[0], r[1], r[2].isoformat(), r[3].isoformat(), str(r[4]), r[5], r[6]]
    # More types, in text and in binary.
    more = {}
    for binary in (False, True):
        c = conn.cursor(binary=binary)
        c.execute(
            "SELECT UUID '01234567-89ab-cdef-0123-456789abcdef' AS u, INTERVAL '1 day 2 hours' AS i, "
            "'\\xDE\\xAD'::BLOB AS b, [1, 2] AS l, {'a': 1} AS s, TIME '12:34:56.5' AS t, "
            "123456789012345678901234567890::HUGEINT AS h, 2::TINYINT AS ti, 1.25::FLOAT AS fl"
        )
        r = c.fetchone()
        more["binary" if binary else "text"] = [
            str(r[0]), r[1].total_seconds(), r[2].hex(), r[3], r[4], r[5].isoformat(), str(r[6]), r[7], r[8]
        ]
        more["oids"] = [d.type_code for d in c.description]
    out["more"] = more
    # A client-side bound query (simple protocol).
    ccur = psycopg.ClientCursor(conn)
    ccur.execute("SELECT count(*) FROM src.items WHERE name LIKE %s", ("Person 1%",))
    out["client_cursor"] = ccur.fetchone()[0]
    # Errors carry SQLSTATEs.
    errors = {}
    for key, sql in [
        ("missing_table", "SELECT * FROM src.nope"),
        ("missing_column", "SELECT nope FROM src.items"),
        ("write", "DELETE FROM src.items"),
        ("drop_with_param", "DROP TABLE src.items"),
    ]:
        try:
            conn.execute(sql)
            errors[key] = None
        except psycopg.Error as e:
            errors[key] = [e.sqlstate, str(e).splitlines()[0]]
            conn.rollback()
    out["errors"] = errors
    conn.rollback()
    out["status_after"] = conn.info.transaction_status.name
    # Cancel a long read from another thread.
    conn.autocommit = True
    timer = threading.Timer(0.7, conn.cancel_safe if hasattr(conn, "cancel_safe") else conn.cancel)
    timer.start()
    started = time.monotonic()
    try:
        conn.execute("SELECT sum(i) FROM range(100000000000) t(i)").fetchall()
        out["cancel"] = None
    except psycopg.Error as e:
        out["cancel"] = e.sqlstate
    out["cancel_secs"] = time.monotonic() - started
    out["after_cancel"] = conn.execute("SELECT 1").fetchone()[0]
print(json.dumps(out, default=str))
