//! The case file's JSON Schema (`twlab schema`): the checked-in copy is the one the model
//! generates, every shipped case validates against it, and documents the loader refuses for
//! their shape (an unknown key, a wrong type, a word that is not one of the language's) are
//! refused by the schema too. No root needed.

use std::path::PathBuf;

use serde_json::Value;

const REGENERATE: &str = "cargo run -- schema --out schema/case.schema.json";

fn manifest_dir() -> PathBuf {
    PathBuf::from(env!("CARGO_MANIFEST_DIR"))
}

fn validator() -> jsonschema::Validator {
    jsonschema::draft7::new(&twlab::case::schema())
        .unwrap_or_else(|e| panic!("the generated schema is not a valid draft-7 schema: {e}"))
}

/// A case file as an editor's schema check sees it: YAML read into JSON values by the YAML
/// parser the loader uses, with YAML 1.2's booleans (`true`, `false`). The YAML language server
/// reads YAML 1.2, where `on` (`timer: on`) and `n` (`name: n`) are text, as the model reads
/// them wherever it wants text; YAML 1.1 would make them booleans.
fn to_json(source: &str) -> Result<Value, String> {
    let options = serde_saphyr::options! { strict_booleans: true };
    serde_saphyr::from_str_with_options::<Value>(source, options).map_err(|e| e.to_string())
}

/// Each schema error as `JSON-pointer: message` (the pointer is `/` for the whole document).
fn schema_errors(validator: &jsonschema::Validator, doc: &Value) -> Vec<String> {
    validator
        .iter_errors(doc)
        .map(|e| {
            let at = e.instance_path().to_string();
            let at = if at.is_empty() { "/".to_string() } else { at };
            format!("{at}: {e}")
        })
        .collect()
}

#[test]
fn checked_in_schema_is_the_generated_one() {
    let path = manifest_dir().join("schema/case.schema.json");
    let generated = twlab::case::schema_text();
    let on_disk = std::fs::read_to_string(&path).unwrap_or_else(|e| {
        panic!(
            "cannot read {}: {e}\nrun `{REGENERATE}` and commit it",
            path.display()
        )
    });
    if on_disk != generated {
        let line = on_disk
            .lines()
            .zip(generated.lines())
            .position(|(a, b)| a != b)
            .map_or_else(
                || on_disk.lines().count().min(generated.lines().count()) + 1,
                |i| i + 1,
            );
        panic!(
            "{} is not the schema the case model generates (first difference at line {line}): \
             run `{REGENERATE}` and commit it",
            path.display()
        );
    }
}

/// Whether a case file documents refused input (`expect_invalid:`, read as the runner reads
/// it): such a file may be refused by the schema as well, and is not counted as validated.
fn documents_refused_input(source: &str) -> bool {
    twlab::case::expected_refusal(source).is_some()
}

#[test]
fn every_shipped_case_validates() {
    let cases = manifest_dir().join("cases");
    let files = twlab::case::discover(std::slice::from_ref(&cases)).expect("cases/ lists");
    assert!(!files.is_empty(), "no case files under {}", cases.display());
    let validator = validator();
    let mut failures = Vec::new();
    let (mut valid, mut refused_on_purpose) = (0, 0);
    for (_, path) in &files {
        let shown = path.strip_prefix(manifest_dir()).unwrap_or(path).display();
        let source = std::fs::read_to_string(path).expect("a case file reads");
        let errors = match to_json(&source) {
            Ok(doc) => schema_errors(&validator, &doc),
            Err(e) => vec![format!("/: not read as YAML: {e}")],
        };
        if documents_refused_input(&source) {
            // Refused input by design: whether the schema sees why is not the question.
            refused_on_purpose += 1;
            if errors.is_empty() {
                valid += 1;
            }
            continue;
        }
        if errors.is_empty() {
            valid += 1;
        }
        for e in errors {
            failures.push(format!("{shown}: {e}"));
        }
    }
    assert!(
        failures.is_empty(),
        "shipped cases the schema refuses (the schema is wrong, or the case is: fix the model's \
         schema and run `{REGENERATE}`):\n  {}",
        failures.join("\n  ")
    );
    eprintln!(
        "{valid} of {} case files validate against the schema ({refused_on_purpose} document \
         refused input)",
        files.len()
    );
}

/// A case the loader takes, on the `pair` topology under `cases/`.
const GOOD: &str = r#"name: schema probe
description: A small case both the loader and the schema take.
topology: pair
families: [ipv4, ipv6]
steps:
  - listen: {on: server, port: 8080, options: {reuseport: true, keepidle: 1}}
  - connect: {from: client, to: server, port: 8080, timeout: 500ms}
  - close: {by: client, how: {linger: 1}}
  - sleep: 250ms
expect:
  - sockets: client
    state: TIME_WAIT
    count: {at_least: 1}
    when: kernel >= 5.4 and no feature netem
"#;

/// Loads `source` as if it were a file in `cases/seeds/` (so that the topology is found).
fn loader_accepts(source: &str) -> Result<(), String> {
    let root = manifest_dir().join("cases");
    let path = root.join("seeds").join("schema-probe.yaml");
    twlab::case::load_case_source(&root, &path, source.to_string())
        .map(|_| ())
        .map_err(|e| e.to_string())
}

#[test]
fn the_schema_refuses_what_the_loader_refuses_by_shape() {
    let validator = validator();
    let good = to_json(GOOD).unwrap();
    assert_eq!(
        schema_errors(&validator, &good),
        Vec::<String>::new(),
        "the probe case must validate, or the refusals below prove nothing"
    );
    loader_accepts(GOOD).expect("the loader takes the probe case");

    // (what is wrong, the text replaced, its replacement, where the schema must point)
    let wrong: &[(&str, &str, &str, &str)] = &[
        (
            "an unknown top-level key",
            "topology: pair\n",
            "topology: pair\ntopolgy: pair\n",
            "",
        ),
        (
            "an unknown key in a step",
            "timeout: 500ms}",
            "timeout: 500ms, retries: 3}",
            "/steps/1/connect",
        ),
        (
            "an unknown step",
            "  - sleep: 250ms\n",
            "  - nap: 250ms\n",
            "/steps/3",
        ),
        (
            "a port that is text",
            "port: 8080, options",
            "port: eighty, options",
            "/steps/0/listen/port",
        ),
        (
            "a port out of range",
            "port: 8080, options",
            "port: 80800, options",
            "/steps/0/listen/port",
        ),
        (
            "a duration without a unit",
            "sleep: 250ms",
            "sleep: 250",
            "/steps/3/sleep",
        ),
        (
            "a family that is not one",
            "[ipv4, ipv6]",
            "[ipv4, ipv5]",
            "/families/1",
        ),
        (
            "a closing side that is not one",
            "by: client",
            "by: both",
            "/steps/2/close/by",
        ),
        (
            "a flag option given a number",
            "reuseport: true",
            "reuseport: 1",
            "/steps/0/listen/options",
        ),
        (
            "a socket option twlab does not know",
            "keepidle: 1",
            "keepidle: 1, keepalives: true",
            "/steps/0/listen/options",
        ),
        (
            "a comparison with two operators",
            "count: {at_least: 1}",
            "count: {at_least: 1, at_most: 3}",
            "/expect/0/count",
        ),
        (
            "a when: that is not a condition",
            "when: kernel >= 5.4 and no feature netem",
            "when: kernel ~ 5.4",
            "/expect/0/when",
        ),
        (
            "an unknown key in an expectation",
            "    state: TIME_WAIT\n",
            "    state: TIME_WAIT\n    within: 1s\n",
            "/expect/0",
        ),
    ];
    let mut missed = Vec::new();
    for &(what, from, to, pointer) in wrong {
        assert!(GOOD.contains(from), "{what}: the probe has no `{from}`");
        let source = GOOD.replacen(from, to, 1);
        let doc = to_json(&source).unwrap_or_else(|e| panic!("{what}: not YAML: {e}"));
        let errors = schema_errors(&validator, &doc);
        let pointed = errors.iter().any(|e| {
            let at = e.split(": ").next().unwrap_or("");
            at == "/" && pointer.is_empty() || !pointer.is_empty() && at.starts_with(pointer)
        });
        if errors.is_empty() {
            missed.push(format!("{what}: the schema takes it"));
        } else if !pointed {
            missed.push(format!(
                "{what}: refused, but not at `{pointer}`:\n    {}",
                errors.join("\n    ")
            ));
        } else {
            eprintln!("{what}: refused\n    {}", errors.join("\n    "));
        }
        // The schema follows the model: what it refuses for its shape, the loader refuses too.
        if loader_accepts(&source).is_ok() {
            missed.push(format!(
                "{what}: the loader takes it, so the schema is stricter than the model"
            ));
        }
    }
    assert!(
        missed.is_empty(),
        "wrong documents the schema does not refuse as it should:\n  {}",
        missed.join("\n  ")
    );
}

/// Every struct of the model denies unknown fields, so every object the schema describes
/// with `properties` must refuse other keys, or an editor would take a misspelt key.
#[test]
fn every_object_refuses_unknown_keys() {
    fn walk(v: &Value, at: &str, open: &mut Vec<String>) {
        match v {
            Value::Object(map) => {
                if map.contains_key("properties")
                    && map.get("additionalProperties") != Some(&Value::Bool(false))
                {
                    open.push(at.to_string());
                }
                for (k, child) in map {
                    walk(child, &format!("{at}/{k}"), open);
                }
            }
            Value::Array(items) => {
                for (i, child) in items.iter().enumerate() {
                    walk(child, &format!("{at}/{i}"), open);
                }
            }
            _ => {}
        }
    }
    let mut open = Vec::new();
    walk(&twlab::case::schema(), "#", &mut open);
    assert!(
        open.is_empty(),
        "objects in the schema that take unknown keys:\n  {}",
        open.join("\n  ")
    );
}

/// A validator for one definition of the schema (`Duration`, `When`...).
fn definition(name: &str) -> jsonschema::Validator {
    let mut schema = twlab::case::schema();
    let definitions = schema["definitions"].take();
    assert!(
        definitions.get(name).is_some(),
        "the schema has no definition `{name}`"
    );
    jsonschema::draft7::new(&serde_json::json!({
        "definitions": definitions,
        "allOf": [{"$ref": format!("#/definitions/{name}")}],
    }))
    .expect("a definition compiles")
}

/// The words the model parses from text (durations, rates, ports, `when:`, windows, series,
/// relative numbers, flags): the schema's pattern takes what the parser takes and refuses
/// what it refuses, except for the few refusals a pattern cannot say (listed as `looser`).
#[test]
fn patterns_agree_with_the_parsers() {
    use twlab::case::{CaseDuration, SeqNumber, SeriesMetric, TsNumber, When, Window};
    use twlab::vocab::{FlagSet, PortRange, Rate};
    /// (definition, parser, texts both take, texts both refuse, texts only the parser refuses)
    type Word = (
        &'static str,
        fn(&str) -> bool,
        &'static [&'static str],
        &'static [&'static str],
        &'static [&'static str],
    );
    fn rate(s: &str) -> bool {
        serde_saphyr::from_str::<Rate>(&format!("\"{s}\"")).is_ok()
    }
    let words: &[Word] = &[
        (
            "Duration",
            |s| CaseDuration::parse(s).is_ok(),
            &["250ms", "5s", "1.5s", "2m", "3min", " 5 s ", ".5s", "5.s"],
            &["5", "5h", "ms", "1.5.5s", "-1s", "5 seconds", ""],
            &["1500m", "90000s"],
        ),
        (
            "Rate",
            rate,
            &["10mbit", "512kbit", "1gbit", "100bit", "10Mbit", " 1GBIT "],
            &["10", "10mb", "10 mbit", "0mbit", "mbit", "-1mbit"],
            &["35gbit"],
        ),
        (
            "PortRange",
            |s| PortRange::parse(s).is_ok(),
            &[
                "8080",
                "0",
                "65535",
                "40000..40009",
                " 1 .. 2 ",
                "+80",
                "08080",
            ],
            &["65536", "70000", "-1", "1..", "..2", "1...2", "http", ""],
            &["9..1"],
        ),
        (
            "When",
            |s| When::parse(s).is_ok(),
            &[
                "kernel >= 6.14",
                "kernel == 6.1.3",
                "kernel < 6.2 and feature netem",
                "no feature conntrack",
                "backend substitute",
                "family ipv6",
                "kernel != 6.1 and backend netem and family ipv4",
            ],
            &[
                "kernel ~ 5.4",
                "kernel >= six",
                "kernel >= 6",
                "kernel>=6.14",
                "feature ecn",
                "backend tc",
                "family ipv5",
                "kernel >= 6.14 or family ipv6",
                "kernel >= 6.14 and",
                "",
            ],
            &[],
        ),
        (
            "Window",
            |s| Window::parse(s).is_ok(),
            &["20s..40s", "20s..", "..10s", "1.5s..2s", " 1s .. 2s "],
            &["4s", "20..40", "a..b"],
            &["4s..2s"],
        ),
        (
            "SeriesMetric",
            |s| SeriesMetric::parse(s).is_ok(),
            &[
                "rate",
                "errors",
                "errors:EADDRNOTAVAIL",
                "time_wait@server",
                "TIME_WAIT@client",
                "TcpExt.TWRecycled@client",
                "conntrack_drops@router",
            ],
            &["time_wait", "tw", "", "sockets"],
            &["rate@client", "bogus@client"],
        ),
        (
            "SeqNumber",
            |s| SeqNumber::parse(s).is_ok(),
            &["1000", "rcv_nxt", "rcv_nxt-1", "snd_nxt + 5", " snd_nxt "],
            &["rcv", "rcv_nxt+x", "own", "rcv_nxt+"],
            &["4294967296"],
        ),
        (
            "TsNumber",
            |s| TsNumber::parse(s).is_ok(),
            &["own+10", "peer", "7"],
            &["rcv_nxt", "own*2"],
            &[],
        ),
        (
            "FlagSet",
            |s| FlagSet::parse(s).is_ok(),
            &["S.", "FP.", "s.", "R", "SFRPUEW."],
            &["SX", "", "syn"],
            &["SS"],
        ),
    ];
    let mut wrong = Vec::new();
    for &(name, parses, both_take, both_refuse, looser) in words {
        let schema = definition(name);
        let takes = |s: &str| schema.is_valid(&Value::String(s.to_string()));
        for &s in both_take {
            if !parses(s) {
                wrong.push(format!("{name}: the parser refuses {s:?} (fix the test)"));
            } else if !takes(s) {
                wrong.push(format!("{name}: the schema refuses {s:?}, which loads"));
            }
        }
        for &s in both_refuse {
            if parses(s) {
                wrong.push(format!("{name}: the parser takes {s:?} (fix the test)"));
            } else if takes(s) {
                wrong.push(format!(
                    "{name}: the schema takes {s:?}, which the loader refuses"
                ));
            }
        }
        for &s in looser {
            if parses(s) || !takes(s) {
                wrong.push(format!(
                    "{name}: {s:?} is listed as refused by the loader alone, but the parser {} it and the schema {} it",
                    if parses(s) { "takes" } else { "refuses" },
                    if takes(s) { "takes" } else { "refuses" },
                ));
            }
        }
    }
    assert!(wrong.is_empty(), "{}", wrong.join("\n"));
}
