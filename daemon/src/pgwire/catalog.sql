-- The Postgres catalog as Postgres clients expect it, over DuckDB's: temp
-- views and macros created on each reader connection of the SQL endpoint
-- (see catalog.rs). Client SQL has its `pg_catalog.` prefixes removed, so
-- these temp objects shadow DuckDB's own pg_catalog views and macros.
-- Types use Postgres OIDs, the same ones the endpoint announces in its row
-- descriptions, so a client that looks up a column's type finds it.

-- DuckDB type name (duckdb_columns().data_type) → Postgres type OID.
CREATE OR REPLACE TEMP MACRO conveyor_pg_oid(t) AS CASE
    WHEN t = 'BOOLEAN' THEN 16
    WHEN t IN ('TINYINT', 'SMALLINT', 'UTINYINT') THEN 21
    WHEN t IN ('INTEGER', 'USMALLINT') THEN 23
    WHEN t IN ('BIGINT', 'UINTEGER') THEN 20
    WHEN t IN ('UBIGINT', 'HUGEINT', 'UHUGEINT') OR t LIKE 'DECIMAL%' THEN 1700
    WHEN t = 'FLOAT' THEN 700
    WHEN t = 'DOUBLE' THEN 701
    WHEN t = 'DATE' THEN 1082
    WHEN t IN ('TIME', 'TIME_NS') THEN 1083
    WHEN t = 'TIME WITH TIME ZONE' THEN 1266
    WHEN t IN ('TIMESTAMP', 'TIMESTAMP_S', 'TIMESTAMP_MS', 'TIMESTAMP_NS') THEN 1114
    WHEN t = 'TIMESTAMP WITH TIME ZONE' THEN 1184
    WHEN t = 'INTERVAL' THEN 1186
    WHEN t = 'BLOB' THEN 17
    WHEN t = 'UUID' THEN 2950
    WHEN t = 'JSON' OR t LIKE '%[]' OR t LIKE '%]' OR t LIKE 'STRUCT(%' OR t LIKE 'MAP(%' OR t LIKE 'UNION(%' THEN 114
    ELSE 25
END;

-- numeric(p, s) carries its precision and scale in the type modifier.
CREATE OR REPLACE TEMP MACRO conveyor_pg_typmod(t, p, s) AS
    CASE WHEN t LIKE 'DECIMAL%' THEN ((p << 16) | s) + 4 ELSE -1 END;

CREATE OR REPLACE TEMP VIEW pg_type AS
SELECT t.oid::BIGINT AS oid, t.typname::VARCHAR AS typname,
       (SELECT oid FROM duckdb_schemas() WHERE database_name = 'system' AND schema_name = 'pg_catalog') AS typnamespace,
       10::BIGINT AS typowner, t.typlen::SMALLINT AS typlen, t.typlen > 0 AS typbyval,
       'b' AS typtype, t.typcategory::VARCHAR AS typcategory,
       false AS typispreferred, true AS typisdefined, ',' AS typdelim, 0::BIGINT AS typrelid,
       NULL::VARCHAR AS typsubscript, t.typelem::BIGINT AS typelem, t.typarray::BIGINT AS typarray,
       (t.typname || 'in')::VARCHAR AS typinput, (t.typname || 'out')::VARCHAR AS typoutput,
       (t.typname || 'recv')::VARCHAR AS typreceive, (t.typname || 'send')::VARCHAR AS typsend,
       NULL::VARCHAR AS typmodin, NULL::VARCHAR AS typmodout, NULL::VARCHAR AS typanalyze,
       'i' AS typalign, CASE WHEN t.typlen > 0 THEN 'p' ELSE 'x' END AS typstorage,
       false AS typnotnull, 0::BIGINT AS typbasetype, -1 AS typtypmod, 0 AS typndims,
       CASE WHEN t.typcategory = 'S' THEN 100 ELSE 0 END::BIGINT AS typcollation,
       NULL::VARCHAR AS typdefaultbin, NULL::VARCHAR AS typdefault, NULL AS typacl
FROM (VALUES
    (16, 'bool', 1, 'B', 0, 1000), (17, 'bytea', -1, 'U', 0, 1001), (18, 'char', 1, 'Z', 0, 1002),
    (19, 'name', 64, 'S', 0, 1003), (20, 'int8', 8, 'N', 0, 1016), (21, 'int2', 2, 'N', 0, 1005),
    (23, 'int4', 4, 'N', 0, 1007), (25, 'text', -1, 'S', 0, 1009), (26, 'oid', 4, 'N', 0, 1028),
    (114, 'json', -1, 'U', 0, 199), (700, 'float4', 4, 'N', 0, 1021), (701, 'float8', 8, 'N', 0, 1022),
    (705, 'unknown', -2, 'X', 0, 0), (1043, 'varchar', -1, 'S', 0, 1015), (1082, 'date', 4, 'D', 0, 1182),
    (1083, 'time', 8, 'D', 0, 1183), (1114, 'timestamp', 8, 'D', 0, 1115), (1184, 'timestamptz', 8, 'D', 0, 1185),
    (1186, 'interval', 16, 'T', 0, 1187), (1266, 'timetz', 12, 'D', 0, 1270), (1700, 'numeric', -1, 'N', 0, 1231),
    (2950, 'uuid', 16, 'U', 0, 2951), (3802, 'jsonb', -1, 'U', 0, 3807),
    (1000, '_bool', -1, 'A', 16, 0), (1001, '_bytea', -1, 'A', 17, 0), (1005, '_int2', -1, 'A', 21, 0),
    (1007, '_int4', -1, 'A', 23, 0), (1016, '_int8', -1, 'A', 20, 0), (1009, '_text', -1, 'A', 25, 0),
    (1015, '_varchar', -1, 'A', 1043, 0), (1021, '_float4', -1, 'A', 700, 0), (1022, '_float8', -1, 'A', 701, 0),
    (1182, '_date', -1, 'A', 1082, 0), (1115, '_timestamp', -1, 'A', 1114, 0), (1185, '_timestamptz', -1, 'A', 1184, 0),
    (1231, '_numeric', -1, 'A', 1700, 0), (2951, '_uuid', -1, 'A', 2950, 0), (199, '_json', -1, 'A', 114, 0)
) AS t(oid, typname, typlen, typcategory, typelem, typarray);

-- Postgres type OID + modifier → the name Postgres gives it.
CREATE OR REPLACE TEMP MACRO format_type(type_oid, typemod) AS CASE type_oid
    WHEN 16 THEN 'boolean' WHEN 17 THEN 'bytea' WHEN 18 THEN '"char"' WHEN 19 THEN 'name'
    WHEN 20 THEN 'bigint' WHEN 21 THEN 'smallint' WHEN 23 THEN 'integer' WHEN 25 THEN 'text'
    WHEN 26 THEN 'oid' WHEN 114 THEN 'json' WHEN 700 THEN 'real' WHEN 701 THEN 'double precision'
    WHEN 1043 THEN 'character varying' WHEN 1082 THEN 'date' WHEN 1083 THEN 'time without time zone'
    WHEN 1114 THEN 'timestamp without time zone' WHEN 1184 THEN 'timestamp with time zone'
    WHEN 1186 THEN 'interval' WHEN 1266 THEN 'time with time zone' WHEN 2950 THEN 'uuid' WHEN 3802 THEN 'jsonb'
    WHEN 1700 THEN 'numeric' || CASE WHEN coalesce(typemod, -1) >= 4
        THEN '(' || ((typemod - 4) >> 16) || ',' || ((typemod - 4) & 65535) || ')' ELSE '' END
    -- Columns renamed so that an argument named like one (`oid`) binds
    -- to the caller's column, not to this subquery's.
    ELSE coalesce((SELECT CASE WHEN p.conveyor_elem <> 0
                          THEN (SELECT e.typname FROM pg_type e WHERE e.oid = p.conveyor_elem) || '[]'
                          ELSE p.conveyor_name END
                   FROM (SELECT oid AS conveyor_oid, typname AS conveyor_name, typelem AS conveyor_elem FROM pg_type) p
                   WHERE p.conveyor_oid = type_oid), '???')
END;

CREATE OR REPLACE TEMP VIEW pg_namespace AS
SELECT oid::BIGINT AS oid, schema_name::VARCHAR AS nspname, 10::BIGINT AS nspowner, NULL AS nspacl
FROM duckdb_schemas()
WHERE database_name = current_database()
   OR (database_name = 'system' AND schema_name IN ('pg_catalog', 'information_schema'));

CREATE OR REPLACE TEMP VIEW pg_class AS
SELECT table_oid::BIGINT AS oid, table_name::VARCHAR AS relname, schema_oid::BIGINT AS relnamespace,
       0::BIGINT AS reltype, 0::BIGINT AS reloftype, 10::BIGINT AS relowner, 2::BIGINT AS relam,
       0::BIGINT AS relfilenode, 0::BIGINT AS reltablespace, 0 AS relpages,
       coalesce(estimated_size, 0)::FLOAT AS reltuples, 0 AS relallvisible, 0::BIGINT AS reltoastrelid,
       false AS relhasindex, false AS relisshared, 'p' AS relpersistence, 'r' AS relkind,
       column_count::SMALLINT AS relnatts, 0::SMALLINT AS relchecks, false AS relhasoids,
       has_primary_key AS relhaspkey, false AS relhasrules, false AS relhastriggers,
       false AS relhassubclass, false AS relrowsecurity, false AS relforcerowsecurity,
       true AS relispopulated, 'd' AS relreplident, false AS relispartition, 0::BIGINT AS relrewrite,
       0 AS relfrozenxid, 0 AS relminmxid, NULL AS relacl, NULL::VARCHAR[] AS reloptions,
       NULL::VARCHAR AS relpartbound
FROM duckdb_tables() WHERE database_name = current_database()
UNION ALL
SELECT view_oid, view_name, schema_oid, 0, 0, 10, 0, 0, 0, 0, 0, 0, 0, false, false, 'p', 'v',
       column_count::SMALLINT, 0, false, false, false, false, false, false, false, true, 'n',
       false, 0, 0, 0, NULL, NULL, NULL
FROM duckdb_views() WHERE database_name = current_database() AND NOT internal;

CREATE OR REPLACE TEMP VIEW pg_attribute AS
SELECT table_oid::BIGINT AS attrelid, column_name::VARCHAR AS attname,
       conveyor_pg_oid(data_type)::BIGINT AS atttypid, -1 AS attstattarget,
       -1::SMALLINT AS attlen, column_index::SMALLINT AS attnum, 0 AS attndims, -1 AS attcacheoff,
       conveyor_pg_typmod(data_type, numeric_precision, numeric_scale)::INTEGER AS atttypmod,
       false AS attbyval, 'i' AS attalign, 'x' AS attstorage, '' AS attcompression,
       NOT is_nullable AS attnotnull, column_default IS NOT NULL AS atthasdef, false AS atthasmissing,
       '' AS attidentity, '' AS attgenerated, false AS attisdropped, true AS attislocal,
       0 AS attinhcount, 0::BIGINT AS attcollation, NULL AS attacl, NULL AS attoptions,
       NULL AS attfdwoptions, NULL AS attmissingval
FROM duckdb_columns() WHERE database_name = current_database();

CREATE OR REPLACE TEMP VIEW pg_attrdef AS
SELECT (table_oid * 10000 + column_index)::BIGINT AS oid, table_oid::BIGINT AS adrelid,
       column_index::SMALLINT AS adnum, column_default::VARCHAR AS adbin
FROM duckdb_columns() WHERE database_name = current_database() AND column_default IS NOT NULL;

CREATE OR REPLACE TEMP VIEW pg_collation AS
SELECT 100::BIGINT AS oid, 'default' AS collname,
       (SELECT oid FROM duckdb_schemas() WHERE database_name = 'system' AND schema_name = 'pg_catalog') AS collnamespace,
       10::BIGINT AS collowner, 'd' AS collprovider, true AS collisdeterministic, -1 AS collencoding,
       NULL::VARCHAR AS collcollate, NULL::VARCHAR AS collctype, NULL::VARCHAR AS colliculocale,
       NULL::VARCHAR AS collversion;

CREATE OR REPLACE TEMP VIEW pg_database AS
SELECT 1::BIGINT AS oid, current_database() AS datname, 10::BIGINT AS datdba, 6 AS encoding,
       'c' AS datlocprovider, false AS datistemplate, true AS datallowconn, -1 AS datconnlimit,
       0::BIGINT AS dattablespace, 'C' AS datcollate, 'C' AS datctype, NULL::VARCHAR AS daticulocale,
       NULL::VARCHAR AS datcollversion, NULL::VARCHAR[] AS datacl;

CREATE OR REPLACE TEMP VIEW pg_roles AS
SELECT 10::BIGINT AS oid, 'conveyor' AS rolname, false AS rolsuper, true AS rolinherit,
       false AS rolcreaterole, false AS rolcreatedb, true AS rolcanlogin, false AS rolreplication,
       -1 AS rolconnlimit, '********' AS rolpassword, NULL::TIMESTAMP AS rolvaliduntil,
       false AS rolbypassrls, NULL::VARCHAR[] AS rolconfig;
CREATE OR REPLACE TEMP VIEW pg_user AS
SELECT rolname AS usename, oid AS usesysid, rolcreatedb AS usecreatedb, rolsuper AS usesuper,
       false AS userepl, false AS usebypassrls, '********' AS passwd, NULL::TIMESTAMP AS valuntil,
       NULL::VARCHAR[] AS useconfig
FROM pg_roles;

-- Catalogs of features the warehouse does not have: present, and empty.
CREATE OR REPLACE TEMP VIEW pg_auth_members AS
SELECT NULL::BIGINT AS oid, NULL::BIGINT AS roleid, NULL::BIGINT AS member, NULL::BIGINT AS grantor,
       NULL::BOOLEAN AS admin_option WHERE false;
CREATE OR REPLACE TEMP VIEW pg_policy AS
SELECT NULL::BIGINT AS oid, NULL::VARCHAR AS polname, NULL::BIGINT AS polrelid, NULL::VARCHAR AS polcmd,
       NULL::BOOLEAN AS polpermissive, NULL AS polroles, NULL::VARCHAR AS polqual,
       NULL::VARCHAR AS polwithcheck WHERE false;
CREATE OR REPLACE TEMP VIEW pg_statistic_ext AS
SELECT NULL::BIGINT AS oid, NULL::BIGINT AS stxrelid, NULL::VARCHAR AS stxname, NULL::BIGINT AS stxnamespace,
       NULL::BIGINT AS stxowner, NULL::INTEGER AS stxstattarget, NULL AS stxkeys, NULL AS stxkind,
       NULL::VARCHAR AS stxexprs WHERE false;
CREATE OR REPLACE TEMP VIEW pg_publication AS
SELECT NULL::BIGINT AS oid, NULL::VARCHAR AS pubname, NULL::BIGINT AS pubowner, NULL::BOOLEAN AS puballtables,
       NULL::BOOLEAN AS pubinsert, NULL::BOOLEAN AS pubupdate, NULL::BOOLEAN AS pubdelete,
       NULL::BOOLEAN AS pubtruncate, NULL::BOOLEAN AS pubviaroot WHERE false;
CREATE OR REPLACE TEMP VIEW pg_publication_namespace AS
SELECT NULL::BIGINT AS oid, NULL::BIGINT AS pnpubid, NULL::BIGINT AS pnnspid WHERE false;
CREATE OR REPLACE TEMP VIEW pg_publication_rel AS
SELECT NULL::BIGINT AS oid, NULL::BIGINT AS prpubid, NULL::BIGINT AS prrelid, NULL::VARCHAR AS prqual,
       NULL AS prattrs WHERE false;
CREATE OR REPLACE TEMP VIEW pg_inherits AS
SELECT NULL::BIGINT AS inhrelid, NULL::BIGINT AS inhparent, NULL::INTEGER AS inhseqno,
       NULL::BOOLEAN AS inhdetachpending WHERE false;
CREATE OR REPLACE TEMP VIEW pg_trigger AS
SELECT NULL::BIGINT AS oid, NULL::BIGINT AS tgrelid, NULL::BIGINT AS tgparentid, NULL::VARCHAR AS tgname,
       NULL::BIGINT AS tgfoid, NULL::SMALLINT AS tgtype, NULL::VARCHAR AS tgenabled,
       NULL::BOOLEAN AS tgisinternal, NULL::BIGINT AS tgconstrrelid, NULL::BIGINT AS tgconstraint WHERE false;
CREATE OR REPLACE TEMP VIEW pg_rewrite AS
SELECT NULL::BIGINT AS oid, NULL::VARCHAR AS rulename, NULL::BIGINT AS ev_class, NULL::VARCHAR AS ev_type,
       NULL::VARCHAR AS ev_enabled, NULL::BOOLEAN AS is_instead, NULL::VARCHAR AS ev_qual,
       NULL::VARCHAR AS ev_action WHERE false;
CREATE OR REPLACE TEMP VIEW pg_extension AS
SELECT NULL::BIGINT AS oid, NULL::VARCHAR AS extname, NULL::BIGINT AS extowner, NULL::BIGINT AS extnamespace,
       NULL::BOOLEAN AS extrelocatable, NULL::VARCHAR AS extversion, NULL AS extconfig,
       NULL AS extcondition WHERE false;
CREATE OR REPLACE TEMP VIEW pg_partitioned_table AS
SELECT NULL::BIGINT AS partrelid, NULL::VARCHAR AS partstrat, NULL::SMALLINT AS partnatts,
       NULL::BIGINT AS partdefid, NULL AS partattrs WHERE false;
CREATE OR REPLACE TEMP VIEW pg_foreign_table AS
SELECT NULL::BIGINT AS ftrelid, NULL::BIGINT AS ftserver, NULL AS ftoptions WHERE false;
CREATE OR REPLACE TEMP VIEW pg_matviews AS
SELECT NULL::VARCHAR AS schemaname, NULL::VARCHAR AS matviewname, NULL::VARCHAR AS matviewowner,
       NULL::VARCHAR AS tablespace, NULL::BOOLEAN AS hasindexes, NULL::BOOLEAN AS ispopulated,
       NULL::VARCHAR AS definition WHERE false;

-- Functions Postgres clients call that DuckDB lacks (or has with fewer
-- arguments).
CREATE OR REPLACE TEMP MACRO pg_get_userbyid(role_oid) AS 'conveyor';
CREATE OR REPLACE TEMP MACRO pg_encoding_to_char(encoding) AS 'UTF8';
CREATE OR REPLACE TEMP MACRO pg_get_expr(expr, relation) AS expr, (expr, relation, pretty) AS expr;
CREATE OR REPLACE TEMP MACRO pg_table_size(rel) AS NULL::BIGINT;
CREATE OR REPLACE TEMP MACRO pg_total_relation_size(rel) AS NULL::BIGINT;
CREATE OR REPLACE TEMP MACRO pg_relation_size(rel) AS NULL::BIGINT, (rel, fork) AS NULL::BIGINT;
CREATE OR REPLACE TEMP MACRO pg_get_statisticsobjdef_columns(stat) AS NULL::VARCHAR;
CREATE OR REPLACE TEMP MACRO pg_relation_is_publishable(rel) AS false;
CREATE OR REPLACE TEMP MACRO pg_get_serial_sequence(tbl, col) AS NULL::VARCHAR;
CREATE OR REPLACE TEMP MACRO pg_get_function_result(f) AS NULL::VARCHAR;
CREATE OR REPLACE TEMP MACRO pg_get_function_arguments(f) AS NULL::VARCHAR;
CREATE OR REPLACE TEMP MACRO pg_get_function_identity_arguments(f) AS NULL::VARCHAR;
CREATE OR REPLACE TEMP MACRO pg_get_indexdef(i) AS NULL::VARCHAR, (i, col, pretty) AS NULL::VARCHAR;
CREATE OR REPLACE TEMP MACRO pg_get_triggerdef(t) AS NULL::VARCHAR, (t, pretty) AS NULL::VARCHAR;
CREATE OR REPLACE TEMP MACRO pg_get_ruledef(r) AS NULL::VARCHAR, (r, pretty) AS NULL::VARCHAR;
CREATE OR REPLACE TEMP MACRO pg_is_in_recovery() AS false;
CREATE OR REPLACE TEMP MACRO txid_current() AS 1::BIGINT;
CREATE OR REPLACE TEMP MACRO array_upper(arr, dim) AS len(arr);
CREATE OR REPLACE TEMP MACRO array_lower(arr, dim) AS CASE WHEN len(arr) > 0 THEN 1 END;
CREATE OR REPLACE TEMP MACRO to_regtype(name) AS
    (SELECT min(oid) FROM pg_type WHERE typname = lower(name) OR format_type(oid, NULL) = lower(name));
CREATE OR REPLACE TEMP MACRO to_regclass(name) AS (
    SELECT min(c.oid) FROM pg_class c JOIN pg_namespace n ON n.oid = c.relnamespace
    WHERE (contains(name, '.') AND n.nspname = split_part(name, '.', 1) AND c.relname = split_part(name, '.', 2))
       OR (NOT contains(name, '.') AND c.relname = name));
CREATE OR REPLACE TEMP MACRO to_regnamespace(name) AS (SELECT min(oid) FROM pg_namespace WHERE nspname = name);
