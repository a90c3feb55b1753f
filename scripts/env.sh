# Shared settings for Conveyor's scripts; sourced, not run.
# DuckDB takes ~20 minutes to compile, so every script (and CI) builds into
# one persistent target directory outside the clone.
export CARGO_TARGET_DIR="${CARGO_TARGET_DIR:-$HOME/.cache/conveyor-target}"
CONVEYOR_ROOT="$(cd "$(dirname "${BASH_SOURCE[0]}")/.." && pwd)"
export CONVEYOR_ROOT
# Python tools the tests use (the stock DuckDB engine to open our file).
export CONVEYOR_VENV="${CONVEYOR_VENV:-$HOME/.cache/conveyor-venv}"
# node-postgres for the SQL endpoint's tests (npm install --prefix).
export CONVEYOR_NODE="${CONVEYOR_NODE:-$HOME/.cache/conveyor-node}"
