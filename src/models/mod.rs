//! Network runtimes, one model per file.
