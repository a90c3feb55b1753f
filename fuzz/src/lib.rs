//! Bodies of Conveyor's fuzz targets that live outside the crates they
//! test (the config target's body is `conveyor_config::fuzzing`, beside the
//! code it checks). Each module is also included by path from
//! `connectors/tests/suite/fuzz_corpus.rs`, which replays the seed corpus in the
//! normal test suite, so each uses only crates that test has.

pub mod page_columns;
pub mod rest_pager;
