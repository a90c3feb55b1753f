"""Reads a table Conveyor published to Iceberg as another engine would:
pyiceberg through the SQL catalog on Postgres, then stock DuckDB over the
Parquet files of the current snapshot. Prints one JSON object.

usage: iceberg_read.py NAMESPACE.TABLE   (CATALOG_URI, CATALOG_NAME in the environment)
"""

import hashlib
import json
import os
import sys

import duckdb
from pyiceberg.catalog.sql import SqlCatalog


def main():
    name = sys.argv[1]
    catalog = SqlCatalog(os.environ["CATALOG_NAME"], uri=os.environ["CATALOG_URI"])
    table = catalog.load_table(name)
    data = table.scan().to_arrow()
    ids = sorted(data.column("id").to_pylist())
    snapshot = table.current_snapshot()
    files = [task.file.file_path for task in table.scan().plan_files()]
    con = duckdb.connect()
    stock = con.execute(
        "SELECT count(*), sum(id) FROM read_parquet(?)", [files]
    ).fetchone()
    print(json.dumps({
        "rows": data.num_rows,
        "columns": data.column_names,
        "id_sum": sum(ids),
        "ids_md5": hashlib.md5(",".join(map(str, ids)).encode()).hexdigest(),
        "snapshots": len(table.metadata.snapshots),
        "schemas": len(table.metadata.schemas),
        "non_null": {c: len(data) - data.column(c).null_count for c in data.column_names},
        "operation": snapshot.summary.operation.value,
        "run_id": snapshot.summary.additional_properties.get("conveyor.run-id"),
        "lease_token": snapshot.summary.additional_properties.get("conveyor.lease-token"),
        "files": files,
        "duckdb_rows": stock[0],
        "duckdb_id_sum": int(stock[1] or 0),
        "namespaces": [".".join(n) for n in catalog.list_namespaces()],
    }))


if __name__ == "__main__":
    main()
