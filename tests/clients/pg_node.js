// node-postgres (`pg`) against Conveyor's Postgres-wire endpoint: a
// parameterised query (extended protocol) and a plain one. Prints JSON.
// Usage: node pg_node.js PORT USER PASSWORD   (NODE_PATH finds `pg`)
const { Client } = require('pg');

async function main() {
  const [port, user, password] = process.argv.slice(2);
  const client = new Client({ host: '127.0.0.1', port: Number(port), user, password, database: 'warehouse' });
  await client.connect();
  const out = {};
  const r = await client.query('SELECT id, name, amount, updated_at, address FROM src.items WHERE id = $1 OR name = $2 ORDER BY id', [3, 'Person 5']);
  out.rows = r.rows.map((row) => [row.id, row.name, row.amount, row.updated_at instanceof Date, row.address]);
  out.fields = r.fields.map((f) => [f.name, f.dataTypeID]);
  const v = await client.query('SELECT version() AS v, current_database() AS db, pg_backend_pid() AS pid');
  out.version = v.rows[0].v;
  try {
    await client.query('UPDATE src.items SET name = $1', ['x']);
    out.update = null;
  } catch (e) {
    out.update = [e.code, e.message];
  }
  await client.end();
  console.log(JSON.stringify(out));
}

main().catch((e) => {
  console.error(e);
  process.exit(1);
});
