//! Every bad value is refused while parsing — exit status 2 with clap's message, before any
//! model is loaded — one bad value per subcommand.

use clap::Parser as _;
use intervene::cli::Cli;

fn refused(args: &[&str], why: &str) {
    let mut v = vec!["intervene"];
    v.extend_from_slice(args);
    match Cli::try_parse_from(&v) {
        Ok(c) => panic!("{args:?} was accepted: {c:?}"),
        Err(e) => {
            assert_eq!(e.exit_code(), 2, "{args:?}: {e}");
            let msg = e.to_string();
            assert!(msg.contains(why), "{args:?}: expected '{why}' in\n{msg}");
        }
    }
}

#[test]
fn one_bad_value_per_subcommand_exits_2() {
    refused(&["generate", "--truncation", "1.5", "--out", "x.png"], "must lie in (0, 1]");
    refused(&["steer", "--components", "c.npz", "--batch", "0"], "at least 1");
    refused(&["pca", "--samples", "0", "--out", "c.npz"], "at least 1");
    refused(
        &[
            "cgn",
            "--model",
            "m.pth",
            "--shape",
            "1",
            "--texture",
            "1",
            "--background",
            "1",
            "--out",
            "o.png",
            "--truncation",
            "0",
        ],
        "must lie in (0, 1]",
    );
    refused(&["export", "cgn", "--model", "m.pth", "--n", "0", "--out", "d"], "at least 1");
    refused(&["export", "cgn", "--model", "m.pth", "--n", "5", "--out", "d", "--shard", "3/3"], "not a shard");
    refused(
        &["sweep", "--components", "c.npz", "--real", "r", "--class", "1", "--truncations", "0.5,2"],
        "must lie in (0, 1]",
    );
    refused(&["cam", "--classifier", "m", "--method", "scorecam"], "scorecam");
    refused(&["bound", "--query-features", "q.npy", "--dict-features", "d.npy", "--variant", "cosine"], "cosine");
    refused(&["bench", "biggan", "--batch", "0"], "at least 1");
    refused(&["data", "build", "--variant", "rainbow", "--out", "d"], "rainbow");
    refused(&["init-biggan", "--config", "deep-128", "--out", "d", "--seed=-1"], "-1");
    refused(&["inspect"], "required");
    refused(&["selftest", "--atol=-1"], "must be a finite number ≥ 0");
    refused(&["train", "biggan", "--data", "mnist", "--out", "o", "--ch", "6"], "multiple of 4");
    refused(&["train", "biggan", "--data", "no-such-data", "--out", "o"], "not a data set name");
    refused(&["train", "cgn", "--variant", "rainbow", "--out", "o"], "rainbow");
    refused(&["train", "cvae", "--out", "o", "--scale", "0"], "must be a finite number > 0");
    refused(
        &["quality", "measure", "--generator", "g", "--judge", "j", "--data", "mnist", "--truncation", "0"],
        "must lie in (0, 1]",
    );
}

#[test]
fn good_values_parse() {
    for args in [
        vec!["intervene", "generate", "--truncation", "1", "--out", "x.png"],
        vec!["intervene", "cam", "--classifier", "m", "--method", "gradcam++", "--arch", "mnist-cnn"],
        vec!["intervene", "export", "cgn", "--model", "m.pth", "--n", "5", "--out", "d", "--shard", "2/3"],
    ] {
        Cli::try_parse_from(&args).unwrap_or_else(|e| panic!("{args:?}: {e}"));
    }
}
