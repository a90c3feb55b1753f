"""SQLAlchemy's inspector (postgresql+psycopg) against Conveyor's
Postgres-wire endpoint: the pg_catalog queries it issues. Prints JSON.

Usage: pg_sqlalchemy.py PORT USER PASSWORD
"""
import json
import sys

from sqlalchemy import create_engine, inspect, text

port, user, password = sys.argv[1], sys.argv[2], sys.argv[3]
engine = create_engine(f"postgresql+psycopg://{user}:{password}@127.0.0.1:{port}/warehouse")
insp = inspect(engine)
out = {
    "schemas": insp.get_schema_names(),
    "tables": insp.get_table_names(schema="src"),
    "conveyor_tables": insp.get_table_names(schema="conveyor"),
    "columns": [(c["name"], str(c["type"]), c["nullable"]) for c in insp.get_columns("items", schema="src")],
    "has_table": insp.has_table("items", schema="src"),
    "has_missing": insp.has_table("nope", schema="src"),
}
with engine.connect() as c:
    out["count"] = c.execute(text("SELECT count(*) FROM src.items WHERE id > :n"), {"n": 2}).scalar()
print(json.dumps(out))
