//! The page: the results as JSON inside the document, drawn by the script in the browser, so
//! that one renderer serves `run`, `claims`, `rollout` and a merged matrix alike, and a
//! report a CI job kept can be opened anywhere without a server.

use serde::Serialize;

use crate::runner::results::RunResults;

const STYLE: &str = include_str!("report.css");
const SCRIPT: &str = include_str!("report.js");

/// One kernel's results, with a heading (the kernel column's name in a matrix).
#[derive(Serialize)]
pub struct Section<'a> {
    pub kernel: String,
    pub results: &'a RunResults,
    /// Where this kernel's own files are, relative to the report (pcaps, its report.txt).
    #[serde(skip_serializing_if = "Option::is_none")]
    pub link: Option<String>,
}

#[derive(Serialize)]
struct Data<'a> {
    title: &'a str,
    twlab: &'static str,
    sections: &'a [Section<'a>],
    /// Where failed trials' pcaps are (`TWLAB_ARTIFACTS` or target/twlab), from the report.
    artifacts: String,
}

/// JSON inside a `<script>` element ends at the first `</script`; `<!--` would start a
/// comment state. Escaping every `<` as `\u003c` keeps the JSON the same value.
fn script_safe(json: &str) -> String {
    json.replace('<', "\\u003c")
}

fn text_escape(text: &str) -> String {
    text.replace('&', "&amp;")
        .replace('<', "&lt;")
        .replace('>', "&gt;")
}

/// The whole document.
pub fn render(title: &str, sections: &[Section], artifacts: &str) -> String {
    let data = Data {
        title,
        twlab: env!("CARGO_PKG_VERSION"),
        sections,
        artifacts: artifacts.to_string(),
    };
    let json = serde_json::to_string(&data).unwrap_or_else(|e| {
        // Serializing plain data cannot fail but for a map with non-string keys; say so in
        // the page rather than write a broken one.
        format!("{{\"error\": {:?}}}", e.to_string())
    });
    format!(
        "<!DOCTYPE html>\n<html lang=\"en\">\n<head>\n<meta charset=\"utf-8\">\n\
         <meta name=\"viewport\" content=\"width=device-width, initial-scale=1\">\n\
         <title>{}</title>\n<style>\n{STYLE}</style>\n</head>\n<body>\n\
         <noscript>This report draws itself with a script; the same results are in the JSON \
         below and in <code>twlab run --json</code>.</noscript>\n\
         <div id=\"app\"></div>\n\
         <script type=\"application/json\" id=\"twlab-data\">{}</script>\n\
         <script>\n{SCRIPT}</script>\n</body>\n</html>\n",
        text_escape(title),
        script_safe(&json),
    )
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn json_cannot_end_the_script_element() {
        let s = script_safe(r#"{"a":"</script><!--"}"#);
        assert!(!s.contains("</script"));
        assert!(!s.contains("<!--"));
        let v: serde_json::Value = serde_json::from_str(&s).unwrap();
        assert_eq!(v["a"], "</script><!--");
    }
}
