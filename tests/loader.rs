//! The case loader and validator fed bad input: every refusal must name the problem and point at
//! it (file:line:col, the source line, a caret), and one broken file must not hide the others.
//!
//! Each test lays out a throwaway repository (`cases/x.yaml` next to a `namespaces/` directory) in a
//! temporary directory. Positions are computed from the text of the case itself (`pos`), so a
//! test states *what* it points at rather than magic numbers.
//!
//! Tests marked `#[ignore]` assert behaviour the loader does not have yet; the reason names the
//! gap.

use std::path::{Path, PathBuf};

use tempfile::TempDir;
use twlab::case::{Case, CaseErrors, SourceError, load_case};
use twlab::runner::{TrialKind, collect};

/// A temporary repository: `cases/` and an empty `namespaces/` (the built-in topologies serve).
struct Repo {
    dir: TempDir,
}

impl Repo {
    fn new() -> Repo {
        let dir = tempfile::tempdir().expect("tempdir");
        let repo = Repo { dir };
        std::fs::create_dir_all(repo.cases()).unwrap();
        std::fs::create_dir_all(repo.root().join("namespaces")).unwrap();
        repo
    }

    fn root(&self) -> &Path {
        self.dir.path()
    }

    fn cases(&self) -> PathBuf {
        self.root().join("cases")
    }

    /// Write a file relative to the repository root.
    fn write(&self, rel: &str, text: &str) -> PathBuf {
        let path = self.root().join(rel);
        std::fs::create_dir_all(path.parent().unwrap()).unwrap();
        std::fs::write(&path, text).unwrap();
        path
    }

    fn load(&self, rel: &str, text: &str) -> Result<Case, CaseErrors> {
        let path = self.write(rel, text);
        load_case(&self.cases(), &path)
    }
}

/// Load `text` as `cases/x.yaml`; it must be refused. Returns the errors and the case's path.
fn refuse(text: &str) -> (Vec<SourceError>, PathBuf) {
    let repo = Repo::new();
    match repo.load("cases/x.yaml", text) {
        Ok(case) => panic!(
            "expected the case to be refused, but it loaded with {} expectation(s):\n{text}",
            case.expectations.len()
        ),
        Err(errors) => (errors.0, repo.root().join("cases/x.yaml")),
    }
}

/// The only error for `text`.
fn refuse_one(text: &str) -> SourceError {
    let (mut errors, _) = refuse(text);
    assert_eq!(
        errors.len(),
        1,
        "expected exactly one error, got:\n{}",
        CaseErrors(errors.clone())
    );
    errors.remove(0)
}

/// 1-based (line, column in characters) of the `nth` (0-based) occurrence of `needle` in `text`.
fn pos_nth(text: &str, needle: &str, nth: usize) -> (u64, u64) {
    let (byte, _) = text
        .match_indices(needle)
        .nth(nth)
        .unwrap_or_else(|| panic!("`{needle}` (occurrence {nth}) not in the case text"));
    let before = &text[..byte];
    let line = before.matches('\n').count() as u64 + 1;
    let line_start = before.rfind('\n').map_or(0, |i| i + 1);
    let col = text[line_start..byte].chars().count() as u64 + 1;
    (line, col)
}

/// Where `needle` first occurs in `text`.
fn pos(text: &str, needle: &str) -> (u64, u64) {
    pos_nth(text, needle, 0)
}

#[track_caller]
fn assert_at(err: &SourceError, expected: (u64, u64)) {
    assert_eq!(
        (err.line, err.col),
        expected,
        "error at the wrong place:\n{err}"
    );
}

#[track_caller]
fn assert_says(err: &SourceError, fragments: &[&str]) {
    for f in fragments {
        assert!(
            err.message.contains(f),
            "message does not mention `{f}`:\n{err}"
        );
    }
}

/// The one error whose message contains `fragment`.
#[track_caller]
fn find<'a>(errors: &'a [SourceError], fragment: &str) -> &'a SourceError {
    let found: Vec<_> = errors
        .iter()
        .filter(|e| e.message.contains(fragment))
        .collect();
    assert_eq!(
        found.len(),
        1,
        "expected one error mentioning `{fragment}`, got:\n{}",
        CaseErrors(errors.to_vec())
    );
    found[0]
}

const HEAD: &str = "name: t\ndescription: d\ntopology: pair\n";

/// A case with the given steps and expectations (both as YAML lines, already indented).
fn case(steps: &str, expect: &str) -> String {
    format!("{HEAD}steps:\n{steps}expect:\n{expect}")
}

const LISTEN: &str = "  - listen: {on: server, port: 8080}\n";
const CONNECT: &str = "  - connect: {from: client, to: server, port: 8080}\n";
const EXPECT_LISTEN_OK: &str = "  - result: listen\n    ok: 1\n";

// ---------------------------------------------------------------------------------------------
// Baselines: the layout and the templates are good, so each refusal below is about its one flaw.

#[test]
fn baseline_case_loads() {
    let repo = Repo::new();
    let text = case(&format!("{LISTEN}{CONNECT}"), EXPECT_LISTEN_OK);
    let case = repo
        .load("cases/x.yaml", &text)
        .unwrap_or_else(|e| panic!("{e}"));
    assert_eq!(case.id, "x");
    assert_eq!(case.expectations.len(), 1);
    assert_eq!(case.topology.namespaces, ["client", "server"]);
}

#[test]
fn seed_case_loads_in_a_temp_repo() {
    let repo = Repo::new();
    let seed = std::fs::read_to_string(
        Path::new(env!("CARGO_MANIFEST_DIR")).join("cases/seeds/server-close-reconnect.yaml"),
    )
    .unwrap();
    let case = repo
        .load("cases/seeds/server-close-reconnect.yaml", &seed)
        .unwrap_or_else(|e| panic!("{e}"));
    assert_eq!(case.id, "seeds/server-close-reconnect");
    assert!(!case.expectations.is_empty());
}

// ---------------------------------------------------------------------------------------------
// Malformed YAML.

/// YAML 1.1's `yes` is not a boolean in YAML 1.2, which editors and the schema follow: it is
/// refused at its place, never read as true.
#[test]
fn yaml_1_1_booleans_are_refused() {
    let text = case(
        &format!("{LISTEN}  - connect: {{from: client, to: server, port: 8080, reuseaddr: yes}}\n"),
        EXPECT_LISTEN_OK,
    );
    let err = refuse_one(&text);
    assert_says(&err, &["true or false"]);
    assert_at(&err, pos(&text, "yes"));
}

#[test]
fn unclosed_bracket_at_end_of_file() {
    let text = format!("{HEAD}steps:\n{LISTEN}expect: [\n");
    let err = refuse_one(&text);
    assert_says(&err, &["unclosed bracket '['"]);
    assert_at(&err, pos(&text, "["));
    let shown = err.to_string();
    assert!(shown.contains("expect: ["), "{shown}");
    assert!(shown.lines().last().unwrap().ends_with('^'), "{shown}");
}

#[test]
fn unclosed_flow_mapping_at_end_of_file() {
    let text = case(LISTEN, "  - {result: listen, ok: 1\n");
    let err = refuse_one(&text);
    assert_says(&err, &["unclosed bracket '{'"]);
    assert_at(&err, pos(&text, "{result"));
}

#[test]
fn unclosed_quote() {
    let text = case("  - listen: {on: \"server, port: 8080}\n", EXPECT_LISTEN_OK);
    let err = refuse_one(&text);
    assert_says(&err, &["unclosed quote"]);
    assert_at(&err, pos(&text, "\"server"));
}

/// A `{` left open in the middle of the file: YAML lets a flow mapping run over several lines,
/// so the next step is read as part of the port's value and the error is a type error.
#[test]
#[ignore = "loader bug: an unclosed `{` mid-file is reported as `invalid u16` at the port value, not as an unclosed bracket at the `{`"]
fn unclosed_flow_mapping_mid_file_names_the_bracket() {
    let text = case(
        "  - listen: {on: server, port: 8080\n  - close: {by: client}\n",
        EXPECT_LISTEN_OK,
    );
    let err = refuse_one(&text);
    assert_says(&err, &["unclosed"]);
    assert_at(&err, pos(&text, "{on"));
}

#[test]
fn unclosed_flow_mapping_mid_file_is_refused() {
    // What happens today (see the ignored test above): refused, but with a type error.
    let text = case(
        "  - listen: {on: server, port: 8080\n  - close: {by: client}\n",
        EXPECT_LISTEN_OK,
    );
    let err = refuse_one(&text);
    assert_eq!(err.line, pos(&text, "{on").0);
}

#[test]
#[ignore = "loader gap: an unclosed `[` followed by more keys is reported as \"illegal placement of ':' indicator\" on the next line, without mentioning the `[`"]
fn unclosed_flow_sequence_mid_file_names_the_bracket() {
    let text = format!("{HEAD}families: [ipv4\nsteps:\n{LISTEN}expect:\n{EXPECT_LISTEN_OK}");
    let err = refuse_one(&text);
    assert_says(&err, &["unclosed"]);
    assert_at(&err, pos(&text, "[ipv4"));
}

#[test]
fn document_that_is_not_a_mapping() {
    let err = refuse_one("- a\n- b\n");
    assert_says(&err, &["mapping"]);
    assert_at(&err, (1, 1));
}

#[test]
fn duplicate_top_level_key() {
    let text = format!("{HEAD}name: again\nsteps:\n{LISTEN}expect:\n{EXPECT_LISTEN_OK}");
    let err = refuse_one(&text);
    assert_says(&err, &["duplicate", "name"]);
    assert_at(&err, pos(&text, "name: again"));
}

#[test]
fn duplicate_key_message_has_no_library_advice() {
    let text = format!("{HEAD}name: again\nsteps:\n{LISTEN}expect:\n{EXPECT_LISTEN_OK}");
    let err = refuse_one(&text);
    assert!(!err.message.contains("DuplicateKeyPolicy"), "{err}");
}

#[test]
fn yaml_messages_do_not_repeat_the_position() {
    let text = case(
        "  - listen: {on: server, port: 8080}\n  - colse: {by: client}\n",
        EXPECT_LISTEN_OK,
    );
    let err = refuse_one(&text);
    assert!(!err.message.contains(" at line "), "{err}");
}

// ---------------------------------------------------------------------------------------------
// Unknown keys.

#[test]
fn misspelt_step_kind() {
    let text = case(
        &format!("{LISTEN}{CONNECT}  - colse: {{by: client}}\n"),
        EXPECT_LISTEN_OK,
    );
    let err = refuse_one(&text);
    assert_says(&err, &["`colse`", "close"]);
    assert_at(&err, pos(&text, "colse"));
}

#[test]
fn unknown_key_inside_connect() {
    let text = case(
        &format!(
            "{LISTEN}  - connect:\n      from: client\n      to: server\n      port: 8080\n      reuse_addr: true\n"
        ),
        EXPECT_LISTEN_OK,
    );
    let err = refuse_one(&text);
    assert_says(&err, &["unknown field `reuse_addr`", "reuseaddr"]);
    assert_at(&err, pos(&text, "reuse_addr"));
}

#[test]
fn unknown_key_inside_flow_connect() {
    let text = case(
        &format!("{LISTEN}  - connect: {{from: client, to: server, port: 8080, lingr: 1}}\n"),
        EXPECT_LISTEN_OK,
    );
    let err = refuse_one(&text);
    assert_says(&err, &["unknown field `lingr`"]);
    assert_at(&err, pos(&text, "lingr"));
}

#[test]
fn unknown_top_level_key() {
    let text = format!("{HEAD}stepz:\n{LISTEN}expect:\n{EXPECT_LISTEN_OK}");
    let err = refuse_one(&text);
    assert_says(&err, &["unknown field `stepz`", "steps"]);
    assert_at(&err, pos(&text, "stepz"));
}

#[test]
fn unknown_key_in_an_expectation() {
    let text = case(LISTEN, "  - result: listen\n    okk: 1\n");
    let err = refuse_one(&text);
    assert_says(&err, &["unknown field `okk`"]);
    assert_at(&err, pos(&text, "okk"));
}

#[test]
fn missing_required_field() {
    let text = case("  - listen: {on: server}\n", EXPECT_LISTEN_OK);
    let err = refuse_one(&text);
    assert_says(&err, &["a `listen` needs `on:` and `port:`, or `socket:`"]);
    assert_eq!(err.line, pos(&text, "listen").0, "{err}");
}

// ---------------------------------------------------------------------------------------------
// Wrong types.

#[test]
fn port_that_is_not_a_number() {
    let text = case(
        "  - listen:\n      on: server\n      port: abc\n",
        EXPECT_LISTEN_OK,
    );
    let err = refuse_one(&text);
    assert_says(&err, &["65535"]);
    assert_at(&err, pos(&text, "abc"));
}

#[test]
fn port_quoted_string_in_flow_mapping() {
    let text = case(
        "  - listen: {on: server, port: \"abc\"}\n",
        EXPECT_LISTEN_OK,
    );
    let err = refuse_one(&text);
    assert_at(&err, pos(&text, "\"abc\""));
}

#[test]
fn port_out_of_range() {
    let text = case(
        "  - listen:\n      on: server\n      port: 70000\n",
        EXPECT_LISTEN_OK,
    );
    let err = refuse_one(&text);
    assert_says(&err, &["65535"]);
    assert_at(&err, pos(&text, "70000"));
}

#[test]
fn negative_port() {
    let text = case(
        &format!("{LISTEN}  - connect: {{from: client, to: server, port: -1}}\n"),
        EXPECT_LISTEN_OK,
    );
    let err = refuse_one(&text);
    assert_at(&err, pos(&text, "-1"));
}

#[test]
#[ignore = "serde's integer errors do not carry the value: the message names the range (0 to 65535) but not the 70000 written"]
fn port_out_of_range_names_value_and_range() {
    let text = case(
        "  - listen:\n      on: server\n      port: 70000\n",
        EXPECT_LISTEN_OK,
    );
    let err = refuse_one(&text);
    assert_says(&err, &["70000", "65535"]);
}

#[test]
fn unknown_family() {
    let text = format!("{HEAD}families: [ipv5]\nsteps:\n{LISTEN}expect:\n{EXPECT_LISTEN_OK}");
    let err = refuse_one(&text);
    assert_says(&err, &["`ipv5`", "ipv4", "ipv6"]);
    assert_at(&err, pos(&text, "ipv5"));
}

#[test]
fn sysctl_value_true_is_refused_with_advice() {
    let text = format!(
        "{HEAD}sysctls:\n  client:\n    net.ipv4.tcp_tw_reuse: true\nsteps:\n{LISTEN}expect:\n{EXPECT_LISTEN_OK}"
    );
    let err = refuse_one(&text);
    assert_says(&err, &["`true`", "write 1"]);
    assert_at(&err, pos(&text, "true"));
}

#[test]
fn steps_not_a_list() {
    let text = format!("{HEAD}steps: listen\nexpect:\n{EXPECT_LISTEN_OK}");
    let err = refuse_one(&text);
    assert_says(&err, &["sequence"]);
    assert_at(&err, pos(&text, "listen"));
}

// ---------------------------------------------------------------------------------------------
// Names that must exist: topology, namespaces, connections.

#[test]
fn missing_topology_names_the_known_ones() {
    let text = "name: t\ndescription: d\ntopology: nosuch\nsteps:\n  - listen: {on: server, port: 8080}\nexpect:\n  - result: listen\n    ok: 1\n";
    let err = refuse_one(text);
    assert_says(
        &err,
        &[
            "unknown topology `nosuch`",
            "nosuch.yaml",
            "built-in ones are nat, pair, router",
        ],
    );
    assert_at(&err, pos(text, "nosuch"));
}

#[test]
fn known_topologies_are_only_yaml_files() {
    let repo = Repo::new();
    repo.write("namespaces/README.md", "notes\n");
    let text = "name: t\ndescription: d\ntopology: nosuch\nsteps:\n  - listen: {on: server, port: 8080}\nexpect:\n  - result: listen\n    ok: 1\n";
    let errors = repo.load("cases/x.yaml", text).unwrap_err();
    let err = &errors.0[0];
    assert_says(
        err,
        &[
            "built-in ones are nat, pair, router",
            "has none (there is no nosuch.yaml)",
        ],
    );
}

#[test]
fn without_a_namespaces_directory_the_builtin_topology_serves() {
    let dir = tempfile::tempdir().unwrap();
    // The search walks up from the case file; skip if some ancestor of the temp dir happens to
    // have a `namespaces/` directory, which would be found instead.
    if dir
        .path()
        .ancestors()
        .any(|d| d.join("namespaces").is_dir())
    {
        eprintln!("skipped: an ancestor of the temp dir has a namespaces/ directory");
        return;
    }
    let path = dir.path().join("cases/x.yaml");
    std::fs::create_dir_all(path.parent().unwrap()).unwrap();
    std::fs::write(&path, case(LISTEN, EXPECT_LISTEN_OK)).unwrap();
    let loaded = load_case(&dir.path().join("cases"), &path).expect("loads");
    assert_eq!(loaded.topology.origin, twlab::topology::Origin::Builtin);
    let text = "name: t\ndescription: d\ntopology: mesh\nsteps:\n  - listen: {on: server, port: 8080}\nexpect:\n  - result: listen\n    ok: 1\n";
    std::fs::write(&path, text).unwrap();
    let errors = load_case(&dir.path().join("cases"), &path).unwrap_err();
    assert_eq!(errors.0.len(), 1, "{errors}");
    assert_says(
        &errors.0[0],
        &[
            "unknown topology `mesh`",
            "nat, pair, router",
            "`namespaces/` directory",
        ],
    );
    assert_at(&errors.0[0], pos(text, "mesh"));
}

#[test]
fn a_local_topology_overrides_the_builtin_one_of_its_name() {
    let repo = Repo::new();
    let topo = "description: a pair on other addresses\nnamespaces: [client, server]\nlinks:\n  - ends:\n      - {ns: client, ifname: c0, ipv4: 198.19.0.1/24, ipv6: \"fd00:9::1/64\"}\n      - {ns: server, ifname: s0, ipv4: 198.19.0.2/24, ipv6: \"fd00:9::2/64\"}\n";
    let topo_path = repo.write("namespaces/pair.yaml", topo);
    let loaded = repo
        .load("cases/x.yaml", &case(LISTEN, EXPECT_LISTEN_OK))
        .expect("loads");
    assert_eq!(
        loaded.topology.origin,
        twlab::topology::Origin::File(topo_path)
    );
    assert_eq!(loaded.topology.links[0].ends[0].ifname, "c0");
}

#[test]
fn broken_topology_is_reported_in_the_topology_file() {
    let repo = Repo::new();
    let topo = "description: b\nnamespaces: [a, a]\nlinks:\n  - ends:\n      - {ns: a, ifname: x, ipv4: 10.0.0.1/24, ipv6: \"fd00::1/64\"}\n      - {ns: zz, ifname: y, ipv4: 198.18.0.2/24, ipv6: \"fd00::2/64\"}\n";
    let topo_path = repo.write("namespaces/broken.yaml", topo);
    let text = "name: t\ndescription: d\ntopology: broken\nsteps:\n  - listen: {on: a, port: 8080}\nexpect:\n  - result: listen\n    ok: 1\n";
    let errors = repo.load("cases/x.yaml", text).unwrap_err().0;
    assert_eq!(errors.len(), 3, "{}", CaseErrors(errors.clone()));
    assert!(errors.iter().all(|e| e.file == topo_path));
    assert_at(find(&errors, "listed twice"), pos(topo, "a]"));
    assert_at(find(&errors, "10.0.0.1"), pos(topo, "10.0.0.1"));
    assert_at(find(&errors, "`zz`"), pos(topo, "zz"));
}

#[test]
fn namespace_not_in_topology() {
    let text = case(
        &format!("{LISTEN}  - connect: {{from: nowhere, to: server, port: 8080}}\n"),
        EXPECT_LISTEN_OK,
    );
    let err = refuse_one(&text);
    assert_says(&err, &["`nowhere`", "topology `pair`", "client, server"]);
    assert_at(&err, pos(&text, "nowhere"));
}

#[test]
fn connect_target_that_is_neither_namespace_nor_address() {
    let text = case(
        &format!("{LISTEN}  - connect: {{from: client, to: serverr, port: 8080}}\n"),
        EXPECT_LISTEN_OK,
    );
    let err = refuse_one(&text);
    assert_says(&err, &["`serverr`", "nor an IP address"]);
    assert_at(&err, pos(&text, "serverr"));
}

#[test]
fn sysctl_for_unknown_namespace() {
    let text = format!(
        "{HEAD}sysctls:\n  nowhere:\n    net.ipv4.tcp_fin_timeout: 5\nsteps:\n{LISTEN}expect:\n{EXPECT_LISTEN_OK}"
    );
    let err = refuse_one(&text);
    assert_says(&err, &["`nowhere`"]);
    assert_at(&err, pos(&text, "nowhere"));
}

#[test]
fn close_of_unknown_connection() {
    let text = case(
        &format!("{LISTEN}{CONNECT}  - close: {{conn: other, by: client}}\n"),
        EXPECT_LISTEN_OK,
    );
    let err = refuse_one(&text);
    assert_says(&err, &["`other`", "connect"]);
    // At the step (the connection name is not kept with its position).
    assert_eq!(err.line, pos(&text, "other").0, "{err}");
}

#[test]
fn close_listener_of_unknown_listener() {
    let text = case(
        &format!("{LISTEN}  - close_listener: {{name: other}}\n"),
        EXPECT_LISTEN_OK,
    );
    let err = refuse_one(&text);
    assert_says(&err, &["`listen` step is named `other`"]);
    assert_eq!(err.line, pos(&text, "other").0, "{err}");
}

// ---------------------------------------------------------------------------------------------
// Sysctls.

#[test]
fn unknown_sysctl_key() {
    let text = format!(
        "{HEAD}sysctls:\n  client:\n    net.ipv4.tcp_no_such_thing: 1\nsteps:\n{LISTEN}expect:\n{EXPECT_LISTEN_OK}"
    );
    let err = refuse_one(&text);
    assert_says(
        &err,
        &[
            "unknown sysctl `net.ipv4.tcp_no_such_thing`",
            "/proc/sys/net/ipv4/tcp_no_such_thing",
        ],
    );
    assert_at(&err, pos(&text, "net.ipv4.tcp_no_such_thing"));
}

#[test]
fn non_network_sysctl() {
    let text = format!(
        "{HEAD}sysctls:\n  client:\n    kernel.pid_max: 100000\nsteps:\n{LISTEN}expect:\n{EXPECT_LISTEN_OK}"
    );
    let err = refuse_one(&text);
    assert_says(
        &err,
        &["`kernel.pid_max`", "not a network sysctl", "host-wide"],
    );
    assert_at(&err, pos(&text, "kernel.pid_max"));
}

#[test]
fn host_global_read_only_sysctl() {
    let text = format!(
        "{HEAD}sysctls:\n  server:\n    net.netfilter.nf_conntrack_max: 10\nsteps:\n{LISTEN}expect:\n{EXPECT_LISTEN_OK}"
    );
    let err = refuse_one(&text);
    assert_says(
        &err,
        &[
            "`net.netfilter.nf_conntrack_max`",
            "host-global",
            "read-only",
        ],
    );
    assert_at(&err, pos(&text, "net.netfilter.nf_conntrack_max"));
}

#[test]
fn removed_sysctl_says_when() {
    let text = format!(
        "{HEAD}sysctls:\n  client:\n    net.ipv4.tcp_tw_recycle: 1\nsteps:\n{LISTEN}expect:\n{EXPECT_LISTEN_OK}"
    );
    let err = refuse_one(&text);
    assert_says(&err, &["`net.ipv4.tcp_tw_recycle`", "4.12"]);
    assert_at(&err, pos(&text, "net.ipv4.tcp_tw_recycle"));
}

#[test]
fn each_bad_sysctl_is_reported_at_its_key_and_good_ones_are_not() {
    let text = format!(
        "{HEAD}sysctls:\n  client:\n    net.ipv4.tcp_no_such_thing: 1\n    kernel.pid_max: 100000\n    net.ipv4.tcp_fin_timeout: 5\n    net.netfilter.nf_conntrack_max: 10\nsteps:\n{LISTEN}expect:\n{EXPECT_LISTEN_OK}"
    );
    let (errors, _) = refuse(&text);
    assert_eq!(errors.len(), 3, "{}", CaseErrors(errors.clone()));
    assert_at(
        find(&errors, "tcp_no_such_thing"),
        pos(&text, "net.ipv4.tcp_no_such_thing"),
    );
    assert_at(
        find(&errors, "kernel.pid_max"),
        pos(&text, "kernel.pid_max"),
    );
    assert_at(
        find(&errors, "nf_conntrack_max"),
        pos(&text, "net.netfilter.nf_conntrack_max"),
    );
    assert!(!errors.iter().any(|e| e.message.contains("tcp_fin_timeout")));
}

#[test]
fn duplicate_sysctl_key() {
    let text = format!(
        "{HEAD}sysctls:\n  client:\n    net.ipv4.tcp_fin_timeout: 5\n    net.ipv4.tcp_fin_timeout: 6\nsteps:\n{LISTEN}expect:\n{EXPECT_LISTEN_OK}"
    );
    let err = refuse_one(&text);
    assert_says(&err, &["duplicate", "net.ipv4.tcp_fin_timeout"]);
    assert_at(&err, pos_nth(&text, "net.ipv4.tcp_fin_timeout", 1));
}

// ---------------------------------------------------------------------------------------------
// Impossible values.

const REPEAT_ZERO: &str = "  - repeat:\n      times: 0\n      steps:\n        - connect: {from: client, to: server, port: 8080}\n";

#[test]
fn repeat_zero_times() {
    let text = case(&format!("{LISTEN}{REPEAT_ZERO}"), EXPECT_LISTEN_OK);
    let err = refuse_one(&text);
    assert_says(&err, &["times >= 1"]);
    assert_at(&err, pos(&text, "0\n"));
}

#[test]
fn empty_between() {
    let text = case(LISTEN, "  - result: listen\n    ok: {between: [5, 1]}\n");
    let err = refuse_one(&text);
    assert_says(&err, &["between [5, 1] is empty"]);
    assert_at(&err, pos(&text, "{between"));
}

#[test]
fn between_with_one_bound() {
    let text = case(LISTEN, "  - result: listen\n    ok: {between: [1]}\n");
    let err = refuse_one(&text);
    assert_says(&err, &["length"]);
    assert_eq!(err.line, pos(&text, "between").0, "{err}");
}

#[test]
fn comparison_with_two_operators() {
    let text = case(
        LISTEN,
        "  - result: listen\n    ok: {at_least: 1, at_most: 2}\n",
    );
    let err = refuse_one(&text);
    assert_says(&err, &["one operator", "`at_most`"]);
    assert_at(&err, pos(&text, "{at_least"));
}

#[test]
fn comparison_with_unknown_operator() {
    let text = case(LISTEN, "  - result: listen\n    ok: {more_than: 1}\n");
    let err = refuse_one(&text);
    assert_says(&err, &["`more_than`", "at_least"]);
    assert_at(&err, pos(&text, "more_than"));
}

#[test]
fn sleep_without_unit() {
    let text = case(&format!("{LISTEN}  - sleep: 5\n"), EXPECT_LISTEN_OK);
    let err = refuse_one(&text);
    assert_says(&err, &["`5` has no unit", "5ms", "5s"]);
    assert_at(&err, pos(&text, "5\n"));
}

#[test]
fn quoted_sleep_without_unit() {
    let text = case(&format!("{LISTEN}  - sleep: \"5\"\n"), EXPECT_LISTEN_OK);
    let err = refuse_one(&text);
    assert_says(&err, &["no unit"]);
    assert_at(&err, pos(&text, "\"5\""));
}

#[test]
fn sleep_with_unknown_unit() {
    let text = case(&format!("{LISTEN}  - sleep: 5h\n"), EXPECT_LISTEN_OK);
    let err = refuse_one(&text);
    assert_says(&err, &["unknown unit `h`"]);
    assert_at(&err, pos(&text, "5h"));
}

#[test]
fn timeout_without_unit() {
    let text = case(
        &format!("{LISTEN}  - connect: {{from: client, to: server, port: 8080, timeout: 3}}\n"),
        EXPECT_LISTEN_OK,
    );
    let err = refuse_one(&text);
    assert_says(&err, &["`3` has no unit"]);
    assert_at(&err, pos(&text, "3}"));
}

#[test]
fn connect_to_address_outside_the_harness_ranges() {
    let text = case(
        &format!("{LISTEN}  - connect: {{from: client, to: 10.0.0.1, port: 8080}}\n"),
        EXPECT_LISTEN_OK,
    );
    let err = refuse_one(&text);
    assert_says(&err, &["10.0.0.1", "198.18.0.0/15", "fd00::/8"]);
    assert_at(&err, pos(&text, "10.0.0.1"));
}

#[test]
fn connect_to_ipv6_address_outside_the_harness_ranges() {
    let text = format!(
        "{HEAD}families: [ipv6]\nsteps:\n{LISTEN}  - connect: {{from: client, to: \"2001:db8::1\", port: 8080}}\nexpect:\n{EXPECT_LISTEN_OK}"
    );
    let err = refuse_one(&text);
    assert_says(&err, &["2001:db8::1", "outside"]);
    assert_at(&err, pos(&text, "\"2001:db8::1\""));
}

#[test]
fn listen_on_address_outside_the_harness_ranges() {
    let text = case(
        "  - listen: {on: server, addr: 10.0.0.1, port: 8080}\n",
        EXPECT_LISTEN_OK,
    );
    let err = refuse_one(&text);
    assert_says(&err, &["10.0.0.1", "outside"]);
    assert_at(&err, pos(&text, "10.0.0.1"));
}

#[test]
fn ipv4_literal_in_a_dual_stack_case() {
    let text = format!(
        "{HEAD}families: [ipv4, ipv6]\nsteps:\n{LISTEN}  - connect: {{from: client, to: 198.18.0.2, port: 8080}}\nexpect:\n{EXPECT_LISTEN_OK}"
    );
    let err = refuse_one(&text);
    assert_says(&err, &["198.18.0.2", "also runs over ipv6"]);
    assert_at(&err, pos(&text, "198.18.0.2"));
}

#[test]
fn empty_families() {
    let text = format!("{HEAD}families: []\nsteps:\n{LISTEN}expect:\n{EXPECT_LISTEN_OK}");
    let err = refuse_one(&text);
    assert_says(&err, &["families is empty"]);
    assert_at(&err, pos(&text, "[]"));
}

#[test]
fn sample_label_end_is_reserved() {
    let text = case(
        &format!("{LISTEN}  - sample: {{label: end}}\n"),
        EXPECT_LISTEN_OK,
    );
    let err = refuse_one(&text);
    assert_says(&err, &["`end` is taken"]);
    assert_eq!(err.line, pos(&text, "sample").0, "{err}");
}

#[test]
fn bind_address_no_port_with_fixed_local_port() {
    let text = case(
        &format!(
            "{LISTEN}  - connect: {{from: client, to: server, port: 8080, local_port: 40000, bind_address_no_port: true}}\n"
        ),
        EXPECT_LISTEN_OK,
    );
    let err = refuse_one(&text);
    assert_says(&err, &["bind_address_no_port", "local_port"]);
    assert_at(&err, pos(&text, "connect"));
}

// ---------------------------------------------------------------------------------------------
// Expectations.

#[test]
fn unknown_result_label_lists_the_labels() {
    let text = case(
        &format!("{LISTEN}{CONNECT}"),
        "  - result: connetc\n    ok: 1\n",
    );
    let err = refuse_one(&text);
    assert_says(&err, &["`connetc`", "labels: connect, listen"]);
    assert_at(&err, pos(&text, "connetc"));
}

#[test]
fn unknown_errno_names() {
    let text = case(
        &format!("{LISTEN}{CONNECT}"),
        "  - result: connect\n    errors:\n      EFOO: 1\n  - result: connect\n    first_error: EBAR\n  - result: connect\n    all: EBAZ\n",
    );
    let (errors, _) = refuse(&text);
    assert_eq!(errors.len(), 3, "{}", CaseErrors(errors.clone()));
    for name in ["EFOO", "EBAR", "EBAZ"] {
        let err = find(&errors, &format!("`{name}` is not an outcome"));
        assert_says(err, &["EADDRNOTAVAIL"]);
        assert_at(err, pos(&text, name));
    }
}

#[test]
fn known_errno_names_are_accepted() {
    let repo = Repo::new();
    let text = case(
        &format!("{LISTEN}{CONNECT}"),
        "  - result: connect\n    errors:\n      ECONNREFUSED: 0\n      TIMEOUT: 0\n    first_error: none\n",
    );
    let case = repo
        .load("cases/x.yaml", &text)
        .unwrap_or_else(|e| panic!("{e}"));
    assert_eq!(case.expectations.len(), 3);
}

#[test]
fn unknown_tcp_state() {
    let text = case(
        LISTEN,
        "  - sockets: server\n    state: TIME_WAITING\n    count: 1\n",
    );
    let err = refuse_one(&text);
    assert_says(&err, &["`TIME_WAITING` is not a TCP state", "TIME_WAIT"]);
    assert_at(&err, pos(&text, "TIME_WAITING"));
}

#[test]
fn sockets_without_count() {
    let text = case(LISTEN, "  - sockets: server\n    state: LISTEN\n");
    let err = refuse_one(&text);
    assert_says(&err, &["needs `count:`"]);
    assert_at(&err, pos(&text, "sockets"));
}

#[test]
fn sockets_in_unknown_namespace() {
    let text = case(LISTEN, "  - sockets: nowhere\n    count: 0\n");
    let err = refuse_one(&text);
    assert_says(&err, &["`nowhere`"]);
    assert_at(&err, pos(&text, "nowhere"));
}

#[test]
fn count_in_a_result_expectation() {
    let text = case(LISTEN, "  - result: listen\n    ok: 1\n    count: 1\n");
    let err = refuse_one(&text);
    assert_says(
        &err,
        &["`count` does not belong in a `result:` expectation"],
    );
    // Today at the expectation (see the ignored test below).
    assert_at(&err, pos(&text, "result: listen"));
}

#[test]
#[ignore = "imprecise position: a key that does not fit the expectation kind is reported at the start of the expectation, not at the stray key"]
fn stray_expectation_key_points_at_the_key() {
    let text = case(LISTEN, "  - result: listen\n    ok: 1\n    count: 1\n");
    let err = refuse_one(&text);
    assert_eq!(err.line, pos(&text, "count").0, "{err}");
}

#[test]
fn several_stray_keys_are_each_reported() {
    let text = case(
        LISTEN,
        "  - counter: Tcp.OutRsts\n    ns: client\n    delta: 0\n    state: LISTEN\n    ok: 1\n",
    );
    let (errors, _) = refuse(&text);
    assert_eq!(errors.len(), 2, "{}", CaseErrors(errors.clone()));
    find(&errors, "`state` does not belong in a `counter:`");
    find(&errors, "`ok` does not belong in a `counter:`");
}

#[test]
fn result_and_sockets_in_one_expectation() {
    let text = case(
        LISTEN,
        "  - result: listen\n    sockets: server\n    count: 1\n",
    );
    let err = refuse_one(&text);
    assert_says(&err, &["exactly one of `result:`"]);
    assert_at(&err, pos(&text, "result"));
}

#[test]
fn expectation_that_checks_nothing() {
    let text = case(LISTEN, "  - why: because\n");
    let err = refuse_one(&text);
    assert_says(&err, &["exactly one of `result:`"]);
    assert_at(&err, pos(&text, "why"));
}

#[test]
fn result_without_a_check() {
    let text = case(LISTEN, "  - result: listen\n");
    let err = refuse_one(&text);
    assert_says(&err, &["say what to check"]);
    assert_at(&err, pos(&text, "result"));
}

#[test]
fn counter_without_ns() {
    let text = case(LISTEN, "  - counter: Tcp.OutRsts\n    delta: 0\n");
    let err = refuse_one(&text);
    assert_says(&err, &["needs `ns:`"]);
    assert_at(&err, pos(&text, "counter"));
}

#[test]
fn counter_without_delta() {
    let text = case(LISTEN, "  - counter: Tcp.OutRsts\n    ns: client\n");
    let err = refuse_one(&text);
    assert_says(&err, &["needs `delta:`"]);
    assert_at(&err, pos(&text, "counter"));
}

#[test]
fn counter_name_without_group() {
    let text = case(
        LISTEN,
        "  - counter: OutRsts\n    ns: client\n    delta: 0\n",
    );
    let err = refuse_one(&text);
    assert_says(&err, &["`OutRsts` is not a counter name", "Group.Name"]);
    assert_at(&err, pos(&text, "OutRsts"));
}

#[test]
fn sample_label_that_does_not_exist() {
    let text = case(
        &format!("{LISTEN}  - sample: {{label: mid}}\n"),
        "  - sockets: server\n    state: LISTEN\n    at: midd\n    count: 1\n",
    );
    let err = refuse_one(&text);
    assert_says(&err, &["no sample is labelled `midd`", "end"]);
    assert_at(&err, pos(&text, "midd"));
}

#[test]
fn existing_sample_label_is_accepted() {
    let repo = Repo::new();
    let text = case(
        &format!("{LISTEN}  - sample: {{label: mid}}\n"),
        "  - sockets: server\n    state: LISTEN\n    at: mid\n    count: 1\n  - sockets: server\n    at: end\n    count: 1\n",
    );
    let case = repo
        .load("cases/x.yaml", &text)
        .unwrap_or_else(|e| panic!("{e}"));
    assert_eq!(case.expectations.len(), 2);
}

// ---------------------------------------------------------------------------------------------
// Whole-file problems.

#[test]
fn case_without_expect_is_refused() {
    let text = format!("{HEAD}steps:\n{LISTEN}");
    let err = refuse_one(&text);
    assert_says(&err, &["no `expect:` section", "can never fail"]);
    assert_eq!((err.line, err.col), (0, 0));
}

#[test]
fn case_with_empty_expect_list_is_refused() {
    let text = format!("{HEAD}steps:\n{LISTEN}expect: []\n");
    let err = refuse_one(&text);
    assert_says(&err, &["no `expect:` section"]);
}

#[test]
fn case_without_steps_is_refused() {
    let text = format!("{HEAD}steps: []\nexpect:\n{EXPECT_LISTEN_OK}");
    let (errors, _) = refuse(&text);
    find(&errors, "at least one step");
    // The expectation's label cannot exist either.
    assert_at(find(&errors, "no step is labelled"), pos(&text, "listen"));
}

#[test]
fn empty_file() {
    let err = refuse_one("");
    assert_says(&err, &["empty"]);
    assert_eq!((err.line, err.col), (0, 0));
}

#[test]
fn whitespace_only_file() {
    let err = refuse_one("  \n\n\t\n");
    assert_says(&err, &["empty"]);
}

#[test]
fn comment_only_file_is_refused() {
    refuse_one("# nothing here yet\n");
}

#[test]
fn comment_only_file_is_reported_as_empty() {
    let err = refuse_one("# nothing here yet\n");
    assert_says(&err, &["empty"]);
}

#[test]
fn unreadable_file() {
    let repo = Repo::new();
    let path = repo.cases().join("missing.yaml");
    let errors = load_case(&repo.cases(), &path).unwrap_err();
    assert_eq!(errors.0.len(), 1);
    assert_says(&errors.0[0], &["failed to read case file"]);
    assert_eq!(errors.0[0].file, path);
}

// ---------------------------------------------------------------------------------------------
// Many errors in one file.

#[test]
fn several_errors_in_one_file_are_all_reported() {
    let text = case(
        "  - listen: {on: nowhere, port: 8080}\n  - connect: {from: client, to: 10.0.0.1, port: 8080}\n  - close: {conn: other, by: client}\n",
        "  - result: nolabel\n    ok: 1\n  - sockets: server\n    state: BOGUS\n    count: 1\n  - counter: Tcp.OutRsts\n    delta: 0\n",
    );
    let (errors, path) = refuse(&text);
    assert_eq!(errors.len(), 6, "{}", CaseErrors(errors.clone()));
    assert!(errors.iter().all(|e| e.file == path));
    assert_at(find(&errors, "`nowhere`"), pos(&text, "nowhere"));
    assert_at(find(&errors, "10.0.0.1"), pos(&text, "10.0.0.1"));
    assert_eq!(find(&errors, "`other`").line, pos(&text, "other").0);
    assert_at(find(&errors, "`nolabel`"), pos(&text, "nolabel"));
    assert_at(find(&errors, "`BOGUS`"), pos(&text, "BOGUS"));
    assert_at(find(&errors, "needs `ns:`"), pos(&text, "counter"));
    // In source order.
    let lines: Vec<u64> = errors.iter().map(|e| e.line).collect();
    let mut sorted = lines.clone();
    sorted.sort();
    assert_eq!(lines, sorted);
}

#[test]
fn empty_families_does_not_hide_other_errors() {
    let text = format!(
        "{HEAD}families: []\nsteps:\n  - listen: {{on: nowhere, port: 8080}}\nexpect:\n{EXPECT_LISTEN_OK}"
    );
    let (errors, _) = refuse(&text);
    find(&errors, "families is empty");
    find(&errors, "`nowhere`");
}

#[test]
fn sockets_expectation_reports_all_its_problems() {
    let text = case(
        LISTEN,
        "  - sockets: server\n    state: NOPE\n    at: nosample\n",
    );
    let (errors, _) = refuse(&text);
    find(&errors, "`NOPE`");
    find(&errors, "`nosample`");
    find(&errors, "needs `count:`");
}

#[test]
fn a_yaml_error_stops_at_the_first_problem() {
    // Documented limit: once the YAML does not fit the schema nothing more is checked, so the
    // bad namespace on the line before the misspelt step is not reported.
    let text = case(
        "  - listen: {on: nowhere, port: 8080}\n  - colse: {by: client}\n",
        EXPECT_LISTEN_OK,
    );
    let err = refuse_one(&text);
    assert_says(&err, &["`colse`"]);
}

// ---------------------------------------------------------------------------------------------
// Rendering.

/// The caret line's `^` sits under column `col` of the source line shown above it.
#[track_caller]
fn assert_caret_under(rendered: &str, err: &SourceError, expect_under: &str) {
    let lines: Vec<&str> = rendered.lines().collect();
    let gutter = format!("{} | ", err.line);
    let src_idx = lines
        .iter()
        .position(|l| l.starts_with(&gutter))
        .unwrap_or_else(|| panic!("no source line `{gutter}...` in:\n{rendered}"));
    let src = &lines[src_idx][gutter.len()..];
    let caret_line = lines
        .get(src_idx + 1)
        .unwrap_or_else(|| panic!("no caret line in:\n{rendered}"));
    let pad = " ".repeat(err.line.to_string().len());
    let caret = caret_line
        .strip_prefix(&format!("{pad} | "))
        .unwrap_or_else(|| panic!("caret line has no gutter: {caret_line:?}"));
    assert!(caret.ends_with('^'), "{rendered}");
    let caret_col = caret.chars().count(); // 1-based column of the `^`
    assert_eq!(caret_col as u64, err.col, "{rendered}");
    let under: String = src.chars().skip(caret_col - 1).collect();
    assert!(
        under.starts_with(expect_under),
        "caret is under {under:?}, expected {expect_under:?}:\n{rendered}"
    );
}

#[test]
fn display_shows_file_line_col_source_and_caret() {
    let text = case(
        &format!("{LISTEN}  - connect: {{from: nowhere, to: server, port: 8080}}\n"),
        EXPECT_LISTEN_OK,
    );
    let (errors, path) = refuse(&text);
    let err = &errors[0];
    let (line, col) = pos(&text, "nowhere");
    let rendered = err.to_string();
    let first = rendered.lines().next().unwrap();
    assert_eq!(
        first,
        format!("error: {}:{line}:{col}: {}", path.display(), err.message)
    );
    assert!(
        rendered.contains(&format!("{line} |   - connect: {{from: nowhere")),
        "{rendered}"
    );
    assert_caret_under(&rendered, err, "nowhere");
}

#[test]
fn display_caret_counts_characters_not_bytes() {
    let text = case(
        "  - listen: {label: \"žžž\", on: nowhere, port: 8080}\n",
        "  - result: žžž\n    ok: 1\n",
    );
    let err = refuse_one(&text);
    assert_at(&err, pos(&text, "nowhere"));
    assert_caret_under(&err.to_string(), &err, "nowhere");
}

#[test]
fn display_with_two_digit_line_numbers_aligns_the_gutter() {
    let text = case(
        &format!(
            "{LISTEN}  - connect:\n      from: client\n      to: server\n      port: 8080\n      reuse_addr: true\n"
        ),
        EXPECT_LISTEN_OK,
    );
    let err = refuse_one(&text);
    assert!(err.line >= 10, "{err}");
    let rendered = err.to_string();
    assert!(rendered.contains("\n   |\n10 |"), "{rendered}");
    assert_caret_under(&rendered, &err, "reuse_addr");
}

#[test]
fn display_of_a_yaml_error_has_a_caret() {
    let text = format!("{HEAD}steps:\n{LISTEN}expect: [\n");
    let err = refuse_one(&text);
    assert_caret_under(&err.to_string(), &err, "[");
}

#[test]
fn display_of_a_whole_file_error_has_no_position() {
    let (errors, path) = refuse("");
    let rendered = errors[0].to_string();
    assert_eq!(
        rendered,
        format!(
            "error: {}: the file is empty (nothing but blank lines and comments)",
            path.display()
        )
    );
}

#[test]
fn display_of_case_errors_shows_every_error() {
    let text = case(
        "  - listen: {on: nowhere, port: 8080}\n  - connect: {from: elsewhere, to: server, port: 8080}\n",
        EXPECT_LISTEN_OK,
    );
    let (errors, path) = refuse(&text);
    let rendered = CaseErrors(errors).to_string();
    let file = path.display().to_string();
    for needle in ["nowhere", "elsewhere"] {
        let (line, col) = pos(&text, needle);
        assert!(
            rendered.contains(&format!("error: {file}:{line}:{col}: `{needle}`")),
            "{rendered}"
        );
    }
}

// ---------------------------------------------------------------------------------------------
// The suite: one broken file does not hide the others.

#[test]
fn broken_case_does_not_hide_good_ones() {
    let repo = Repo::new();
    repo.write("cases/good.yaml", &case(LISTEN, EXPECT_LISTEN_OK));
    let broken = repo.write(
        "cases/sub/broken.yaml",
        &case("  - listen: {on: nowhere, port: 8080}\n", EXPECT_LISTEN_OK),
    );
    repo.write("cases/notes.txt", "not a case\n");

    let trials = collect(&[repo.cases()]);
    let summary: Vec<(&str, &str)> = trials
        .iter()
        .map(|t| {
            let kind = match &t.kind {
                TrialKind::Run { .. } => "run",
                TrialKind::Broken(_) => "broken",
                TrialKind::Refused { .. } => "refused",
            };
            (t.name.as_str(), kind)
        })
        .collect();
    assert_eq!(summary, [("good", "run"), ("sub/broken", "broken")]);

    let TrialKind::Broken(errors) = &trials[1].kind else {
        unreachable!()
    };
    assert_eq!(errors.0.len(), 1, "{errors}");
    assert_eq!(errors.0[0].file, broken);
    assert_says(&errors.0[0], &["`nowhere`"]);
}

#[test]
fn dual_stack_case_is_one_trial_per_family_next_to_a_broken_one() {
    let repo = Repo::new();
    repo.write(
        "cases/a.yaml",
        &format!("{HEAD}families: [ipv4, ipv6]\nsteps:\n{LISTEN}expect:\n{EXPECT_LISTEN_OK}"),
    );
    repo.write("cases/b.yaml", "");
    let names: Vec<String> = collect(&[repo.cases()])
        .into_iter()
        .map(|t| t.name)
        .collect();
    assert_eq!(names, ["a::ipv4", "a::ipv6", "b"]);
}

// ---------------------------------------------------------------------------------------------
// `when:` conditions (per-kernel expectations).

#[test]
fn when_condition_loads() {
    let repo = Repo::new();
    let text = case(
        &format!("{LISTEN}{CONNECT}"),
        "  - result: listen\n    ok: 1\n    when: kernel >= 6.14 and backend netem\n",
    );
    let case = repo
        .load("cases/x.yaml", &text)
        .unwrap_or_else(|e| panic!("{e}"));
    let when = case.expectations[0].when.as_ref().expect("when kept");
    assert_eq!(when.text, "kernel >= 6.14 and backend netem");
}

#[test]
fn when_with_a_bad_comparison_is_refused_at_its_place() {
    let text = case(
        &format!("{LISTEN}{CONNECT}"),
        "  - result: listen\n    ok: 1\n    when: kernel => 6.14\n",
    );
    let err = refuse_one(&text);
    assert_at(&err, pos(&text, "kernel => 6.14"));
    assert_says(&err, &["`=>` is not a comparison", ">="]);
}

#[test]
fn when_with_an_unknown_feature_lists_the_known_ones() {
    let text = case(
        &format!("{LISTEN}{CONNECT}"),
        "  - result: listen\n    ok: 1\n    when: feature tw_reuse_delay\n",
    );
    let err = refuse_one(&text);
    assert_at(&err, pos(&text, "feature tw_reuse_delay"));
    assert_says(
        &err,
        &["unknown feature `tw_reuse_delay`", "tcp_tw_reuse_delay"],
    );
}

// ---------------------------------------------------------------------------------------------
// Defects found by reading the code (issue 11): each was accepted silently or said the wrong
// thing.

/// The router topology too, for conntrack cases.
fn repo_with_router() -> Repo {
    // Built in.
    Repo::new()
}

#[test]
fn a_misspelt_conntrack_state_is_refused_at_the_state() {
    let text = "name: t\ndescription: d\ntopology: router\nconntrack: [{ns: router}]\nsteps:\n  - listen: {on: server, port: 8080}\nexpect:\n  - conntrack: router\n    state: TIME-WAITT\n    count: 0\n";
    let repo = repo_with_router();
    let errors = repo.load("cases/x.yaml", text).expect_err("refused").0;
    assert_eq!(errors.len(), 1, "{}", CaseErrors(errors.clone()));
    assert_at(&errors[0], pos(text, "TIME-WAITT"));
    assert_says(
        &errors[0],
        &[
            "`TIME-WAITT` is not a conntrack TCP state",
            "TIME_WAIT",
            "FIN_WAIT",
        ],
    );
    // The spellings conntrack prints still load, in any case and with dashes.
    let ok = text.replace("TIME-WAITT", "time-wait");
    repo.load("cases/x.yaml", &ok)
        .unwrap_or_else(|e| panic!("{e}"));
}

#[test]
fn a_rate_too_large_for_the_kernel_is_refused_not_wrapped() {
    for rate in ["99999999999999gbit", "35gbit", "18446744073709551615kbit"] {
        let text = format!(
            "{HEAD}impair:\n  - {{from: client, to: server, rate: {rate}}}\nsteps:\n{LISTEN}expect:\n{EXPECT_LISTEN_OK}"
        );
        let err = refuse_one(&text);
        assert_at(&err, pos(&text, rate));
        assert_says(&err, &[rate, "at most 34gbit"]);
    }
    let text = format!(
        "{HEAD}impair:\n  - {{from: client, to: server, rate: 34gbit}}\nsteps:\n{LISTEN}expect:\n{EXPECT_LISTEN_OK}"
    );
    Repo::new()
        .load("cases/x.yaml", &text)
        .unwrap_or_else(|e| panic!("{e}"));
}

#[test]
fn an_address_of_a_family_the_case_does_not_run_says_so() {
    let text = case(
        &format!("{LISTEN}  - connect: {{from: client, to: \"fd00::2\", port: 8080}}\n"),
        EXPECT_LISTEN_OK,
    );
    let err = refuse_one(&text);
    // The span starts at the quote of a quoted scalar.
    assert_at(&err, pos(&text, "\"fd00::2"));
    assert_says(
        &err,
        &["fd00::2 is an ipv6 address but the case runs over ipv4 only"],
    );
    assert!(!err.message.contains("also runs"), "{err}");
    // Over both families a literal still cannot serve both: that is what "also" means.
    let text = format!(
        "name: t\ndescription: d\ntopology: pair\nfamilies: [ipv4, ipv6]\nsteps:\n{LISTEN}  - connect: {{from: client, to: \"fd00::2\", port: 8080}}\nexpect:\n{EXPECT_LISTEN_OK}"
    );
    let err = refuse_one(&text);
    assert_says(
        &err,
        &["fd00::2 is an ipv6 address but the case also runs over ipv4"],
    );
}

#[test]
fn a_directory_without_case_files_is_a_failing_trial_not_silence() {
    let repo = Repo::new();
    let empty = repo.root().join("cases/typo");
    std::fs::create_dir_all(&empty).unwrap();
    let trials = collect(std::slice::from_ref(&empty));
    assert_eq!(trials.len(), 1);
    let TrialKind::Broken(errors) = &trials[0].kind else {
        panic!("an empty directory gave a trial that is not a failure");
    };
    assert!(
        errors
            .to_string()
            .contains("no case files (*.yaml, *.yml) under"),
        "{errors}"
    );
}

#[test]
fn first_error_ok_is_refused_because_it_could_never_hold() {
    let text = case(
        &format!("{LISTEN}{CONNECT}"),
        "  - result: connect\n    first_error: ok\n",
    );
    let err = refuse_one(&text);
    assert_at(&err, pos(&text, "ok\n"));
    assert_says(
        &err,
        &["`first_error: ok` can never hold", "first_error: none"],
    );
}

// ---------------------------------------------------------------------------------------------
// Workloads.

const WORKLOAD: &str =
    "  - workload: {from: client, to: server, port: 8080, rate: 100, duration: 2s}\n";

#[test]
fn workload_loads_with_its_expectations() {
    let repo = Repo::new();
    let text = case(
        WORKLOAD,
        "  - workload: workload\n    ok: {at_least: 1}\n  - workload: workload\n    series: time_wait@client\n    window: 1s..\n    max: 200\n  - workload: workload\n    first_error: EADDRNOTAVAIL\n    at_s: 1\n",
    );
    let case = repo
        .load("cases/x.yaml", &text)
        .unwrap_or_else(|e| panic!("{e}"));
    assert_eq!(case.expectations.len(), 3);
    assert!(case.has_workload());
}

#[test]
fn workload_needs_a_pace() {
    let text = case(
        "  - workload: {from: client, to: server, port: 8080, duration: 2s}\n",
        "  - workload: workload\n    ok: 1\n",
    );
    let err = refuse_one(&text);
    assert_says(&err, &["`rate: N`", "`concurrency: N`"]);
}

#[test]
fn workload_rate_and_concurrency_exclude_each_other() {
    let text = case(
        "  - workload: {from: client, to: server, port: 8080, rate: 10, concurrency: 2, count: 5}\n",
        "  - workload: workload\n    ok: 1\n",
    );
    let err = refuse_one(&text);
    assert_at(&err, pos(&text, "2, count"));
    assert_says(&err, &["open loop", "closed loop"]);
}

#[test]
fn workload_series_name_is_checked_at_its_place() {
    let text = case(
        WORKLOAD,
        "  - workload: workload\n    series: tw@client\n    max: 1\n",
    );
    let err = refuse_one(&text);
    assert_at(&err, pos(&text, "tw@client"));
    assert_says(&err, &["not a workload series", "time_wait@NS"]);
}

#[test]
fn workload_series_namespace_must_exist() {
    let text = case(
        WORKLOAD,
        "  - workload: workload\n    series: time_wait@nowhere\n    max: 1\n",
    );
    let err = refuse_one(&text);
    assert_says(&err, &["nowhere"]);
}

#[test]
fn workload_series_needs_exactly_one_summary() {
    let text = case(
        WORKLOAD,
        "  - workload: workload\n    series: rate\n    max: 1\n    min: 0\n",
    );
    let err = refuse_one(&text);
    assert_says(&err, &["exactly one of `every`"]);
}

#[test]
fn workload_window_is_checked() {
    let text = case(
        WORKLOAD,
        "  - workload: workload\n    series: rate\n    window: 3s..1s\n    every: 1\n",
    );
    let err = refuse_one(&text);
    assert_at(&err, pos(&text, "3s..1s"));
    assert_says(&err, &["empty"]);
}

#[test]
fn workload_label_must_exist() {
    let text = case(WORKLOAD, "  - workload: churn\n    ok: 1\n");
    let err = refuse_one(&text);
    assert_says(&err, &["no workload step is labelled `churn`", "workload"]);
}

#[test]
fn workload_cannot_be_repeated() {
    let text = case(
        &format!("  - repeat:\n      times: 2\n      steps:\n    {WORKLOAD}"),
        "  - workload: workload\n    ok: 1\n",
    );
    let err = refuse_one(&text);
    assert_says(&err, &["cannot go inside `repeat`"]);
}

#[test]
fn at_s_needs_a_first_error() {
    let text = case(WORKLOAD, "  - workload: workload\n    ok: 1\n    at_s: 3\n");
    let err = refuse_one(&text);
    assert_says(&err, &["`at_s` goes with `first_error"]);
}

#[test]
fn series_keys_do_not_belong_to_results() {
    let text = case(LISTEN, "  - result: listen\n    ok: 1\n    every: 1\n");
    let err = refuse_one(&text);
    assert_says(
        &err,
        &["`every` does not belong in a `result:` expectation"],
    );
}

// ---------------------------------------------------------------------------------------------
// Socket steps: bind, accept, sockopt, options, addresses.

const BIND: &str = "  - bind: {on: client, port: 0, name: s1}\n";

#[test]
fn a_misspelt_socket_option_lists_the_options() {
    let text = case(
        "  - bind: {on: client, options: {keepalives: true}}\n",
        "  - result: bind\n    ok: 1\n",
    );
    let err = refuse_one(&text);
    assert_says(
        &err,
        &[
            "`keepalives` is not a socket option",
            "keepalive,",
            "local_port_range",
        ],
    );
    assert_eq!(err.line, pos(&text, "keepalives").0, "{err}");
}

#[test]
fn a_socket_option_value_out_of_range_says_the_range() {
    let text = case(
        "  - bind: {on: client, options: {keepcnt: 500}}\n",
        "  - result: bind\n    ok: 1\n",
    );
    let err = refuse_one(&text);
    assert_says(
        &err,
        &["`keepcnt` takes a whole number from 1 to 127, not 500"],
    );
    assert_eq!(err.line, pos(&text, "keepcnt").0, "{err}");
}

#[test]
fn connect_with_a_bound_socket_takes_no_bind_keys() {
    let text = case(
        &format!(
            "{LISTEN}{BIND}  - connect: {{socket: s1, to: server, port: 8080, local_port: 4000}}\n"
        ),
        EXPECT_LISTEN_OK,
    );
    let err = refuse_one(&text);
    assert_says(&err, &["`local_port` belongs to the `bind` step"]);
}

#[test]
fn connect_names_its_socket_or_its_namespace() {
    let text = case(
        &format!("{LISTEN}  - connect: {{to: server, port: 8080}}\n"),
        EXPECT_LISTEN_OK,
    );
    assert_says(&refuse_one(&text), &["needs `from:`", "or `socket:`"]);
    let text = case(
        &format!("{LISTEN}  - connect: {{socket: nope, to: server, port: 8080}}\n"),
        EXPECT_LISTEN_OK,
    );
    let err = refuse_one(&text);
    assert_says(&err, &["no earlier `bind` step is named `nope`"]);
    assert_at(&err, pos(&text, "nope"));
}

#[test]
fn accept_needs_a_connect_that_left_the_accept() {
    let text = case(
        &format!("{LISTEN}{CONNECT}  - accept: {{}}\n"),
        EXPECT_LISTEN_OK,
    );
    assert_says(&refuse_one(&text), &["write `accept: false` there"]);
}

#[test]
fn sockopt_works_on_exactly_one_socket() {
    let text = case(
        &format!(
            "{LISTEN}{CONNECT}  - sockopt: {{conn: conn, by: client, listener: main, get: nodelay}}\n"
        ),
        EXPECT_LISTEN_OK,
    );
    assert_says(&refuse_one(&text), &["exactly one socket"]);
    let text = case(
        &format!("{LISTEN}{CONNECT}  - sockopt: {{conn: conn, get: nodelay}}\n"),
        EXPECT_LISTEN_OK,
    );
    assert_says(&refuse_one(&text), &["`conn:` needs `by:`"]);
    let text = case(
        &format!("{LISTEN}  - sockopt: {{listener: main}}\n"),
        EXPECT_LISTEN_OK,
    );
    assert_says(&refuse_one(&text), &["needs `set:`", "or `get:`"]);
}

#[test]
fn loopback_is_allowed_and_outside_addresses_are_not() {
    let repo = Repo::new();
    let ok = case(
        "  - listen: {on: client, addr: loopback, port: 80}\n  - connect: {from: client, to: \"127.0.0.1\", port: 80}\n  - connect: {from: client, to: \"::ffff:198.18.0.2\", family: mapped, port: 80, name: m}\n",
        EXPECT_LISTEN_OK,
    );
    repo.load("cases/x.yaml", &ok)
        .unwrap_or_else(|e| panic!("{e}"));
    let text = case(
        "  - connect: {from: client, to: \"::ffff:8.8.8.8\", family: mapped, port: 80}\n",
        "  - result: connect\n    ok: 1\n",
    );
    let err = refuse_one(&text);
    assert_says(&err, &["outside the harness's ranges", "loopback"]);
}

#[test]
fn value_belongs_to_results() {
    let text = case(LISTEN, "  - sockets: server\n    count: 1\n    value: 1\n");
    let err = refuse_one(&text);
    assert_says(
        &err,
        &["`value` does not belong in a `sockets:` expectation"],
    );
}

// ---------------------------------------------------------------------------------------------
// What every matching socket shows: timer, queues, tcp_info, options.

/// A `sockets:` expectation on the server's listener with these extra lines.
fn listener_expect(lines: &str) -> String {
    case(
        LISTEN,
        &format!("  - sockets: server\n    state: LISTEN\n{lines}"),
    )
}

#[test]
fn row_checks_need_no_count_and_lower_one_check_each() {
    let repo = Repo::new();
    let text = listener_expect(
        "    timer: off\n    send_q: 128\n    recv_q: 0\n    retrans: 0\n    expires_ms: 0\n    info: {retransmits: 0, rto_ms: {at_least: 200}}\n    options: [sack]\n    no_options: [ecn]\n",
    );
    let case = repo
        .load("cases/x.yaml", &text)
        .unwrap_or_else(|e| panic!("{e}"));
    assert_eq!(case.expectations.len(), 9);
    let rto = case
        .expectations
        .iter()
        .find(|e| e.check.to_string().contains("info.rto_ms"))
        .expect("an info.rto_ms check");
    assert_eq!((rto.line, rto.col), pos(&text, "{at_least: 200}"));
}

#[test]
fn unknown_timer_lists_the_timers() {
    let text = listener_expect("    timer: retransmit\n");
    let err = refuse_one(&text);
    assert_says(
        &err,
        &[
            "`retransmit` is not a socket timer",
            "off, on, keepalive, timewait, persist",
        ],
    );
    assert_at(&err, pos(&text, "retransmit"));
}

#[test]
fn unknown_tcp_info_field_is_refused_at_its_name() {
    let text = listener_expect("    info: {retransmits: 0, rto: 200}\n");
    let err = refuse_one(&text);
    assert_says(
        &err,
        &["`rto` is not a tcp_info field", "rto_ms", "unacked"],
    );
    assert_at(&err, pos(&text, "rto:"));
}

#[test]
fn empty_info_map_is_refused() {
    let text = listener_expect("    info: {}\n");
    let err = refuse_one(&text);
    assert_says(&err, &["`info:` is empty"]);
}

#[test]
fn tcp_info_value_must_be_a_comparison() {
    let text = listener_expect("    info: {rto_ms: fast}\n");
    let err = refuse_one(&text);
    assert_says(&err, &["\"fast\"", "{at_least: N}"]);
    assert_at(&err, pos(&text, "rto_ms"));
}

#[test]
fn expires_ms_must_be_a_comparison() {
    let text = listener_expect("    expires_ms: soon\n");
    let err = refuse_one(&text);
    assert_says(&err, &["\"soon\"", "{at_least: N}"]);
    assert_at(&err, pos(&text, "expires_ms"));
}

#[test]
fn unknown_option_lists_the_options() {
    let text = listener_expect("    options: [timestamps, tsopt]\n");
    let err = refuse_one(&text);
    assert_says(
        &err,
        &[
            "`tsopt` is not a negotiated TCP option",
            "timestamps, sack, wscale",
        ],
    );
    assert_at(&err, pos(&text, "tsopt"));
}

#[test]
fn empty_option_list_is_refused() {
    let text = listener_expect("    no_options: []\n");
    let err = refuse_one(&text);
    assert_says(&err, &["`no_options:` is empty"]);
    assert_at(&err, pos(&text, "[]"));
}

#[test]
fn an_option_both_required_and_refused_can_never_hold() {
    let text = listener_expect("    options: [sack]\n    no_options: [ecn, sack]\n");
    let err = refuse_one(&text);
    assert_says(&err, &["`sack` is in both `options:` and `no_options:`"]);
    assert_at(&err, pos(&text, "[ecn, sack]"));
}

#[test]
fn row_keys_do_not_belong_to_other_expectations() {
    let text = case(
        LISTEN,
        "  - counter: Tcp.OutRsts\n    ns: server\n    delta: 0\n    recv_q: 0\n",
    );
    let err = refuse_one(&text);
    assert_says(
        &err,
        &["`recv_q` does not belong in a `counter:` expectation"],
    );
    let text = case(LISTEN, "  - result: listen\n    ok: 1\n    timer: on\n");
    let err = refuse_one(&text);
    assert_says(
        &err,
        &["`timer` does not belong in a `result:` expectation"],
    );
}

#[test]
fn sockets_with_nothing_to_check_names_the_row_checks() {
    let text = listener_expect("");
    let err = refuse_one(&text);
    assert_says(&err, &["needs `count:`", "`timer`", "`info`", "`options`"]);
}

// ---------------------------------------------------------------------------------------------
// Packet fields on `packets:` and the richer `inject`.

fn packets_case(keys: &str) -> String {
    case(
        &format!("{LISTEN}{CONNECT}"),
        &format!("  - packets: FIN\n    from: client\n{keys}"),
    )
}

#[test]
fn packets_flags_must_be_tcpdump_letters() {
    let text = packets_case("    flags: \"FX.\"\n    count: 1\n");
    let err = refuse_one(&text);
    assert_at(&err, pos(&text, "\"FX.\""));
    assert_says(&err, &["`X`", "not a TCP flag letter", "S F R P U E W"]);
}

#[test]
fn packets_src_port_must_be_a_port_range() {
    let text = packets_case("    src_port: \"9..1\"\n    count: 1\n");
    let err = refuse_one(&text);
    assert_says(&err, &["empty", "1..9"]);
}

#[test]
fn packets_conn_must_name_a_connection() {
    let text = packets_case("    conn: nosuch\n    count: 1\n");
    let err = refuse_one(&text);
    assert_at(&err, pos(&text, "nosuch"));
    assert_says(&err, &["no earlier `connect` step is named `nosuch`"]);
}

#[test]
fn packets_seq_ack_len_win_mss_sent_gap_take_comparisons() {
    for key in ["seq", "ack", "len", "win", "mss", "sent_ms", "gap_ms"] {
        let text = packets_case(&format!("    {key}: {{about: 1}}\n    count: 2\n"));
        let err = refuse_one(&text);
        assert_says(&err, &["about"]);
    }
}

#[test]
fn packets_options_are_named_option_kinds() {
    let text = packets_case("    options: [mss, timestamp]\n    count: 1\n");
    let err = refuse_one(&text);
    assert_at(&err, pos(&text, "timestamp]"));
    assert_says(&err, &["timestamp", "timestamps"]);
    let text = packets_case("    options: []\n    count: 1\n");
    assert_says(&refuse_one(&text), &["asks for nothing"]);
    let text = packets_case("    options: [mss]\n    no_options: [mss]\n    count: 1\n");
    assert_says(&refuse_one(&text), &["both required", "refused"]);
}

#[test]
fn packets_tsecr_is_echoes_or_echoes_earlier() {
    let text = packets_case("    tsecr: 5\n    count: 1\n");
    let err = refuse_one(&text);
    assert_says(&err, &["echoes"]);
}

#[test]
fn packets_since_must_name_a_step() {
    let text = packets_case("    since: nosuch\n    sent_ms: {at_most: 5}\n    count: 1\n");
    let err = refuse_one(&text);
    assert_at(&err, pos(&text, "nosuch"));
    assert_says(&err, &["no step is labelled `nosuch`"]);
}

#[test]
fn packet_field_checks_need_a_count_that_cannot_be_zero() {
    let text = packets_case("    seq: 1\n    count: {at_most: 2}\n");
    let err = refuse_one(&text);
    assert_at(&err, pos(&text, "{at_most: 2}"));
    assert_says(&err, &["empty", "at_least: 1"]);
    let text = packets_case("    gap_ms: {at_least: 200}\n    count: {at_least: 1}\n");
    let err = refuse_one(&text);
    assert_at(&err, pos(&text, "{at_least: 200}"));
    assert_says(&err, &["fewer than two", "at_least: 2"]);
}

#[test]
fn packet_field_keys_belong_to_packets_only() {
    let text = case(
        &format!("{LISTEN}{CONNECT}"),
        "  - sockets: client\n    win: 5\n    count: 1\n",
    );
    assert_says(
        &refuse_one(&text),
        &["`win` does not belong in a `sockets:`"],
    );
}

#[test]
fn inject_relative_numbers_name_a_base() {
    let text = case(
        &format!(
            "{LISTEN}{CONNECT}  - inject: {{by: server, flags: [ack], seq: \"rcv_next+1\"}}\n"
        ),
        EXPECT_LISTEN_OK,
    );
    let err = refuse_one(&text);
    assert_says(&err, &["rcv_next+1", "rcv_nxt, snd_nxt"]);
    let text = case(
        &format!("{LISTEN}{CONNECT}  - inject: {{by: server, flags: [ack], ack: \"snd_nxt+x\"}}\n"),
        EXPECT_LISTEN_OK,
    );
    assert_says(&refuse_one(&text), &["not an offset"]);
    let text = case(
        &format!("{LISTEN}{CONNECT}  - inject: {{by: server, flags: [ack], seq: -1}}\n"),
        EXPECT_LISTEN_OK,
    );
    assert_says(&refuse_one(&text), &["negative"]);
}

#[test]
fn inject_timestamps_name_own_or_peer() {
    let text = case(
        &format!(
            "{LISTEN}{CONNECT}  - inject: {{by: server, flags: [ack], options: {{timestamps: {{tsval: rcv_nxt}}}}}}\n"
        ),
        EXPECT_LISTEN_OK,
    );
    assert_says(&refuse_one(&text), &["own, peer"]);
    let text = case(
        &format!(
            "{LISTEN}{CONNECT}  - inject: {{by: server, flags: [ack], options: {{sack: true}}}}\n"
        ),
        EXPECT_LISTEN_OK,
    );
    assert_says(&refuse_one(&text), &["sack"]);
}

#[test]
fn inject_payload_fits_one_frame() {
    let text = case(
        &format!("{LISTEN}{CONNECT}  - inject: {{by: server, flags: [ack], payload: 1500}}\n"),
        EXPECT_LISTEN_OK,
    );
    let err = refuse_one(&text);
    assert_at(&err, pos(&text, "1500"));
    assert_says(&err, &["at most 1400 bytes"]);
}

#[test]
fn a_sample_after_an_unknown_step_says_so() {
    let text = case(
        &format!("{LISTEN}  - sample: {{label: s, after: nope, at: 1s}}\n"),
        EXPECT_LISTEN_OK,
    );
    let err = refuse_one(&text);
    assert_says(&err, &["no earlier step is labelled `nope`"]);
    assert_at(&err, pos(&text, "nope"));
    let text = case(
        &format!("{LISTEN}  - sample: {{label: s, after: listen}}\n"),
        EXPECT_LISTEN_OK,
    );
    assert_says(&refuse_one(&text), &["give `at` too"]);
}

// ---------------------------------------------------------------------------------------------
// Rollout workloads: `profile: roles:` names namespaces of the topology.

#[test]
fn a_profile_role_that_is_not_a_namespace_is_refused_at_the_role() {
    let text = format!(
        "{HEAD}profile: {{roles: [client, router]}}\nsteps:\n{LISTEN}expect:\n{EXPECT_LISTEN_OK}"
    );
    let err = refuse_one(&text);
    assert_at(&err, pos(&text, "router"));
    assert_says(
        &err,
        &[
            "`router` is not a namespace of topology `pair`",
            "client, server",
        ],
    );
}

#[test]
fn a_profile_without_roles_is_refused() {
    let text = format!("{HEAD}profile: {{roles: []}}\nsteps:\n{LISTEN}expect:\n{EXPECT_LISTEN_OK}");
    let err = refuse_one(&text);
    assert_says(&err, &["`profile: roles:` is empty", "client, server"]);
}

#[test]
fn a_profile_s_roles_reach_the_case() {
    let repo = Repo::new();
    let text =
        format!("{HEAD}profile: {{roles: [client]}}\nsteps:\n{LISTEN}expect:\n{EXPECT_LISTEN_OK}");
    let case = repo
        .load("cases/x.yaml", &text)
        .unwrap_or_else(|e| panic!("{e}"));
    assert_eq!(case.profile_roles, Some(vec!["client".to_string()]));
}

// ---------------------------------------------------------------------------------------------
// The harness's variables and binaries (issue 17).

const EXEC_BIN: &str = "name: t\ndescription: d\ntopology: pair\nsteps:\n  - exec: {label: srv, on: server, argv: [\"{bin.echo-server}\", \"--port\", \"{port}\"]}\nexpect:\n  - result: srv\n    ok: 1\n";

#[test]
fn a_binary_nobody_gave_is_refused_at_its_placeholder() {
    let repo = Repo::new();
    let errors = repo.load("cases/x.yaml", EXEC_BIN).unwrap_err();
    let err = find(&errors.0, "echo-server");
    assert_says(
        err,
        &[
            "no binary `echo-server` was given",
            "CARGO_BIN_EXE_echo-server",
            "binaries given: none",
        ],
    );
    assert_at(err, pos(EXEC_BIN, "\"{bin.echo-server}\""));
    assert_says(find(&errors.0, "{port}"), &["no `vars:` entry `port`"]);
}

#[test]
fn the_harness_gives_binaries_and_variables() {
    let repo = Repo::new();
    let path = repo.write("cases/x.yaml", EXEC_BIN);
    let given = twlab::case::LoadOptions {
        vars: vec![("port".into(), "9000".into())],
        bins: vec![("echo-server".into(), PathBuf::from("/opt/echo-server"))],
    };
    let case = twlab::case::load_case_with(&repo.cases(), &path, &given).expect("loads");
    assert!(
        case.vars
            .contains(&("bin.echo-server".into(), "/opt/echo-server".into())),
        "{:?}",
        case.vars
    );
    assert!(case.vars.contains(&("port".into(), "9000".into())));
}
