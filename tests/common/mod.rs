//! Test helpers shared by the integration tests.
#![allow(dead_code)]

pub mod biggan_fixture;
pub mod formula;
pub mod http_server;
pub mod pickle_writer;
pub mod ui;
