//! `exec` steps, `stop` steps, `vars:` and `program:` expectations fed bad input: each refusal
//! names the problem and points at it (file:line:col); good input loads.

use twlab::case::{Case, CaseErrors, SourceError, load_case};

/// Loads `text` as `cases/x.yaml` in a throwaway repository (the built-in pair topology) and
/// a `cases/www/` directory.
fn load(text: &str) -> Result<Case, CaseErrors> {
    let dir = tempfile::tempdir().unwrap();
    let root = dir.path();
    std::fs::create_dir_all(root.join("cases/www")).unwrap();
    std::fs::create_dir_all(root.join("namespaces")).unwrap();
    let path = root.join("cases/x.yaml");
    std::fs::write(&path, text).unwrap();
    load_case(&root.join("cases"), &path)
}

/// The only error for `text`, which must be refused.
#[track_caller]
fn refuse_one(text: &str) -> SourceError {
    match load(text) {
        Ok(_) => panic!("expected a refusal:\n{text}"),
        Err(mut e) => {
            assert_eq!(e.0.len(), 1, "expected one error, got:\n{e}");
            e.0.remove(0)
        }
    }
}

/// 1-based line and column of the first occurrence of `needle`.
fn pos(text: &str, needle: &str) -> (u64, u64) {
    let byte = text.find(needle).expect("needle in text");
    let before = &text[..byte];
    let line = before.matches('\n').count() as u64 + 1;
    let start = before.rfind('\n').map_or(0, |i| i + 1);
    (line, text[start..byte].chars().count() as u64 + 1)
}

#[track_caller]
fn assert_error(err: &SourceError, at: (u64, u64), says: &[&str]) {
    assert_eq!((err.line, err.col), at, "error at the wrong place:\n{err}");
    for s in says {
        assert!(err.message.contains(s), "message lacks `{s}`:\n{err}");
    }
}

fn case(vars: &str, steps: &str, expect: &str) -> String {
    format!("name: t\ndescription: d\ntopology: pair\n{vars}steps:\n{steps}expect:\n{expect}")
}

const SERVER: &str = "  - exec:\n      on: server\n      argv: [busybox, httpd, -f, -p, \"{server.host}:{port}\"]\n      background: true\n      ready: {listening: 8080}\n      label: httpd\n";
const EXPECT_HTTPD: &str = "  - program: httpd\n    signal: SIGTERM\n";
const VARS: &str = "vars: {port: 8080}\n";

#[test]
fn a_good_exec_case_loads() {
    let steps = format!(
        "{SERVER}  - exec:\n      on: client\n      argv: [curl, -w, \"%{{{{num_connects}}}}\", \"http://{{server.host}}:{{port}}/\", 3]\n      env: {{LANG: C, N: 3}}\n      cwd: www\n      timeout: 5s\n  - stop: httpd\n"
    );
    let text = case(
        VARS,
        &steps,
        "  - program: exec\n    exit: 0\n    stdout_contains: x\n  - result: exec\n    first_error: EXIT_7\n",
    );
    let c = load(&text).unwrap_or_else(|e| panic!("{e}"));
    assert_eq!(c.programs(), vec!["busybox", "curl"]);
    assert_eq!(c.vars, vec![("port".to_string(), "8080".to_string())]);
}

#[test]
fn unknown_var_placeholder_points_at_the_argument() {
    let text = case("vars: {prot: 8080}\n", SERVER, EXPECT_HTTPD);
    let err = refuse_one(&text);
    assert_error(
        &err,
        pos(&text, "\"{server.host}:{port}\""),
        &["unknown placeholder `{port}`", "vars: prot"],
    );
}

#[test]
fn placeholder_for_a_namespace_the_topology_lacks() {
    let text = case(
        VARS,
        &SERVER.replace("{server.host}", "{sever.host}"),
        EXPECT_HTTPD,
    );
    let err = refuse_one(&text);
    assert_error(
        &err,
        pos(&text, "\"{sever.host}"),
        &[
            "`{sever.host}`",
            "`sever` is not a namespace",
            "client, server",
        ],
    );
}

#[test]
fn unknown_namespace_field() {
    let text = case(
        VARS,
        &SERVER.replace("{server.host}", "{server.port}"),
        EXPECT_HTTPD,
    );
    let err = refuse_one(&text);
    assert_error(
        &err,
        pos(&text, "\"{server.port}"),
        &[".addr, .host", "not .port"],
    );
}

#[test]
fn unclosed_brace() {
    let text = case(VARS, &SERVER.replace("{port}\"", "{port\""), EXPECT_HTTPD);
    let err = refuse_one(&text);
    assert_error(&err, pos(&text, "\"{server.host}"), &["unclosed `{`", "{{"]);
}

#[test]
fn ready_on_a_foreground_program() {
    let text = case(
        VARS,
        &SERVER.replace("      background: true\n", ""),
        EXPECT_HTTPD,
    );
    let err = refuse_one(&text);
    assert_error(
        &err,
        pos(&text, "{listening"),
        &["ready is for background programs"],
    );
}

#[test]
fn ready_needs_exactly_one_condition() {
    let text = case(
        VARS,
        &SERVER.replace("{listening: 8080}", "{listening: 8080, output: up}"),
        EXPECT_HTTPD,
    );
    let err = refuse_one(&text);
    assert_error(
        &err,
        pos(&text, "{listening"),
        &["exactly one of `listening: PORT`"],
    );
}

#[test]
fn timeout_on_a_background_program() {
    let text = case(
        VARS,
        &SERVER.replace(
            "      label: httpd\n",
            "      label: httpd\n      timeout: 5s\n",
        ),
        EXPECT_HTTPD,
    );
    let err = refuse_one(&text);
    assert_error(
        &err,
        pos(&text, "5s"),
        &["timeout is for foreground programs"],
    );
}

#[test]
fn stop_of_an_unknown_program() {
    let text = case(VARS, &format!("{SERVER}  - stop: htpd\n"), EXPECT_HTTPD);
    let err = refuse_one(&text);
    assert_error(&err, pos(&text, "htpd"), &["labelled `htpd`", "httpd"]);
}

#[test]
fn program_expectation_for_an_unknown_label() {
    let text = case(VARS, SERVER, "  - program: web\n    exit: 0\n");
    let err = refuse_one(&text);
    assert_error(
        &err,
        pos(&text, "web"),
        &["no `exec` step is labelled `web`", "httpd"],
    );
}

#[test]
fn program_expectation_with_a_key_of_another_kind() {
    let text = case(
        VARS,
        SERVER,
        "  - program: httpd\n    count: 1\n    exit: 0\n",
    );
    let err = refuse_one(&text);
    assert_error(
        &err,
        pos(&text, "program: httpd"),
        &["`count` does not belong"],
    );
}

#[test]
fn program_expectation_with_a_bad_signal() {
    let text = case(VARS, SERVER, "  - program: httpd\n    signal: TERMINATE\n");
    let err = refuse_one(&text);
    assert_error(&err, pos(&text, "TERMINATE"), &["not a signal name"]);
}

#[test]
fn missing_working_directory() {
    let text = case(
        VARS,
        &SERVER.replace(
            "      label: httpd\n",
            "      label: httpd\n      cwd: wwww\n",
        ),
        EXPECT_HTTPD,
    );
    let err = refuse_one(&text);
    assert_error(&err, pos(&text, "wwww"), &["cwd `wwww` is not a directory"]);
}

#[test]
fn empty_argv() {
    let text = case(
        "",
        "  - exec: {on: client, argv: []}\n",
        "  - program: exec\n    exit: 0\n",
    );
    let err = refuse_one(&text);
    assert_error(&err, pos(&text, "[]"), &["argv is empty"]);
}

#[test]
fn boolean_argument_is_refused_with_advice() {
    let text = case(
        "",
        "  - exec: {on: client, argv: [prog, true]}\n",
        "  - program: exec\n    exit: 0\n",
    );
    let err = refuse_one(&text);
    assert_error(&err, pos(&text, "true"), &["quote it"]);
}

#[test]
fn reserved_var_name() {
    let text = case(
        "vars: {family: x}\n",
        SERVER.replace("{port}", "8080").as_str(),
        EXPECT_HTTPD,
    );
    let err = refuse_one(&text);
    assert_error(&err, pos(&text, "family"), &["cannot be a var name"]);
}

#[test]
fn two_background_programs_with_one_label() {
    let text = case(VARS, &format!("{SERVER}{SERVER}"), EXPECT_HTTPD);
    let err = refuse_one(&text);
    assert!(
        err.message
            .contains("another `exec` step is labelled `httpd`"),
        "{err}"
    );
    assert_eq!(err.line, 12, "the second exec step: {err}");
}
