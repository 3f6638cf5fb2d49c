//! dealledger.toml is one schema: an unknown section or key is an error naming the file, the
//! line and the closest known key, for every command that reads the file (nothing is ignored).

use crate::harness::Ledger;

/// Runs `args` with `toml` as the data directory's dealledger.toml; returns the failing run.
fn refused(toml: &str, args: &[&str]) -> crate::harness::Run {
    let l = Ledger::new();
    l.ingest(
        "in.jsonl",
        &[r#"{"deal":"C-1","type":"opened","at":"2024-01-10T09:00:00Z","owner":"ana","amount":1}"#],
    )
    .ok();
    std::fs::write(l.data().join("dealledger.toml"), toml).unwrap();
    let run = l.run(args);
    assert_eq!(
        run.code, 1,
        "expected the config to be refused\nstdout: {}\nstderr: {}",
        run.stdout, run.stderr
    );
    run
}

#[test]
fn an_unknown_section_names_the_file_the_line_and_the_closest_section() {
    let toml = "[costs]\nquota = 1000\n\n[flag]\ngone_dark_days = 7\n";
    for args in [
        &["report", "flags"][..],
        &["report", "pipeline"],
        &["report", "time-in-stage"],
        &["whatif", "--rule", "gone_dark=14"],
    ] {
        let run = refused(toml, args);
        assert!(run.stderr.contains("dealledger.toml:4:"), "{args:?}: {}", run.stderr);
        assert!(run.stderr.contains("unknown section [flag]"), "{args:?}: {}", run.stderr);
        assert!(run.stderr.contains("did you mean [flags]?"), "{args:?}: {}", run.stderr);
    }
}

#[test]
fn an_unknown_key_names_the_file_the_line_and_the_closest_key() {
    let cases = [
        (
            "[flags]\nmin_contacts = 3\ngone_drak = 14\n",
            3,
            "unknown key `gone_drak` in [flags]",
            "gone_dark_days",
        ),
        ("[serve]\nlisen = \"127.0.0.1:1\"\n", 2, "unknown key `lisen` in [serve]", "listen"),
        ("[costs.owners.ana]\nqota = 5\n", 2, "unknown key `qota` in [costs.owners.ana]", "quota"),
        (
            "[[pipeline.stages]]\nname = \"a\"\nprobabilty = 0.5\n",
            3,
            "unknown key `probabilty` in [[pipeline.stages]]",
            "probability",
        ),
        (
            "[import.stages]\nWon = \"won\"\n[import]\ncolumn = {}\n",
            4,
            "unknown key `column` in [import]",
            "columns",
        ),
        (
            "[hubspot]\napp_secret = \"s\"\nopen_unkown = true\n",
            3,
            "unknown key `open_unkown` in [hubspot]",
            "open_unknown",
        ),
        ("[ingest]\nmax_futur = \"1d\"\n", 2, "unknown key `max_futur` in [ingest]", "max_future"),
        ("gone_dark_days = 14\n", 1, "unknown key `gone_dark_days` at the top of the file", "flags"),
    ];
    for (toml, line, what, closest) in cases {
        let run = refused(toml, &["report", "flags"]);
        assert!(run.stderr.contains(&format!("dealledger.toml:{line}:")), "{toml}: {}", run.stderr);
        assert!(run.stderr.contains(what), "{toml}: {}", run.stderr);
        assert!(
            run.stderr.contains(&format!("did you mean `{closest}`?"))
                || run.stderr.contains(&format!("did you mean [{closest}]?")),
            "{toml}: {}",
            run.stderr
        );
    }
}

#[test]
fn a_value_of_the_wrong_type_names_the_file_the_line_and_the_key() {
    let run = refused("[flags]\n\ngone_dark_days = \"two weeks\"\n", &["report", "flags"]);
    assert!(run.stderr.contains("dealledger.toml:3:"), "{}", run.stderr);
    assert!(run.stderr.contains("[flags] gone_dark_days"), "{}", run.stderr);
    assert_eq!(run.stderr.trim().lines().count(), 1, "one line: {}", run.stderr);
}

#[test]
fn a_hubspot_stage_map_to_a_stage_not_in_the_pipeline_is_refused_at_start() {
    let l = Ledger::new();
    std::fs::create_dir_all(l.data()).unwrap();
    let toml = "[hubspot]\napp_secret = \"s\"\n[hubspot.stages]\nclosedwon = \"won\"\nqualifiedtobuy = \"qualifyng\"\n";
    std::fs::write(l.data().join("dealledger.toml"), toml).unwrap();
    let mut child = std::process::Command::new(crate::harness::binary())
        .args(["--data", l.data().to_str().unwrap(), "serve", "--listen", "127.0.0.1:0"])
        .stdout(std::process::Stdio::null())
        .stderr(std::process::Stdio::piped())
        .spawn()
        .unwrap();
    let deadline = std::time::Instant::now() + std::time::Duration::from_secs(20);
    let status = loop {
        if let Some(status) = child.try_wait().unwrap() {
            break status;
        }
        if std::time::Instant::now() > deadline {
            child.kill().unwrap();
            child.wait().unwrap();
            panic!("the daemon started with a stage map to a stage the pipeline does not have");
        }
        std::thread::sleep(std::time::Duration::from_millis(50));
    };
    let mut stderr = String::new();
    std::io::Read::read_to_string(&mut child.stderr.take().unwrap(), &mut stderr).unwrap();
    assert_eq!(status.code(), Some(1), "{stderr}");
    assert!(
        stderr.contains("[hubspot.stages] `qualifiedtobuy` = `qualifyng`: not a pipeline stage"),
        "{stderr}"
    );
}
