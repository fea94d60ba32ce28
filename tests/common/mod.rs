//! Test helpers shared by the integration tests.
#![allow(dead_code)]

pub mod http_server;
pub mod pickle_writer;
