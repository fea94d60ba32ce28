//! `intervene fetch` behind a proxy: with `HTTPS_PROXY` set, a download from a host this
//! machine cannot resolve goes through the proxy (an HTTP CONNECT tunnel, as ureq does it) and
//! completes. A test binary of its own, because it sets process-wide environment variables.

mod common;

use std::collections::HashMap;
use std::path::Path;

use common::http_server::{Mode, Server};
use intervene::fetch::{self, Content, KnownFile, KnownModel, Pin, Source};
use intervene::jobs::Control;

#[test]
fn https_proxy_is_honoured() {
    let read = |n: &str| {
        std::fs::read(Path::new(env!("CARGO_MANIFEST_DIR")).join("tests/fixtures/biggan-deep-tiny-128").join(n))
            .unwrap()
    };
    let files = HashMap::from([
        ("tiny-config.json".to_string(), read("config.json")),
        ("tiny-pytorch_model.bin".to_string(), read("pytorch_model.bin")),
    ]);
    let proxy = Server::start("biggan", files, Mode::Normal, None);
    // SAFETY (edition 2021 `set_var`): the only test of this binary, before it starts threads
    // that read the environment.
    std::env::set_var("HTTPS_PROXY", format!("http://127.0.0.1:{}", proxy.port));
    std::env::remove_var("NO_PROXY");
    std::env::remove_var("no_proxy");
    let model = KnownModel {
        name: "tiny",
        what: "test",
        files: &[
            KnownFile {
                remote: "tiny-config.json",
                local: "config.json",
                content: Content::BigGanConfig,
                pin: Pin::Unpinned,
            },
            KnownFile {
                remote: "tiny-pytorch_model.bin",
                local: "pytorch_model.bin",
                content: Content::Weights,
                pin: Pin::Unpinned,
            },
        ],
    };
    let dir = std::env::temp_dir().join(format!("intervene-fetch-proxy-{}", std::process::id()));
    let _ = std::fs::remove_dir_all(&dir);
    // `.invalid` never resolves (RFC 6761): only the proxy can have served this.
    let src = Source::Url("http://release.invalid/biggan".into());
    fetch::fetch_model(&model, &src, &dir, &Control::new()).unwrap();
    assert_eq!(std::fs::read(dir.join("tiny/pytorch_model.bin")).unwrap(), read("pytorch_model.bin"));
    let log = proxy.log();
    assert!(log.iter().any(|l| l.starts_with("CONNECT release.invalid:80")), "{log:?}");
    assert!(log.iter().any(|l| l.starts_with("GET /biggan/tiny-pytorch_model.bin")), "{log:?}");
    std::fs::remove_dir_all(&dir).ok();
}
