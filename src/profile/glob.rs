//! Globs in sysctl keys (`net.ipv4.conf.*.rp_filter`), as systemd-sysctl expands them: a
//! pattern matches a key component by component, `*` any run of characters within a
//! component, `?` one character, `[...]` one of a set (`[!...]` none of it).

/// Whether `key` has a glob character, so that it names several keys.
pub fn is_glob(key: &str) -> bool {
    key.contains(['*', '?', '['])
}

/// Whether dotted `key` matches dotted `pattern`, component by component.
pub fn matches(pattern: &str, key: &str) -> bool {
    let (p, k): (Vec<&str>, Vec<&str>) = (pattern.split('.').collect(), key.split('.').collect());
    p.len() == k.len()
        && p.iter().zip(&k).all(|(p, k)| {
            component(
                &p.chars().collect::<Vec<_>>(),
                &k.chars().collect::<Vec<_>>(),
            )
        })
}

/// The directory under /proc/sys below which every match lies: the components before the
/// first one with a glob (`net.ipv4.conf.*.rp_filter` -> `net/ipv4/conf`).
pub fn fixed_prefix(pattern: &str) -> String {
    pattern
        .split('.')
        .take_while(|c| !is_glob(c))
        .collect::<Vec<_>>()
        .join("/")
}

fn component(p: &[char], k: &[char]) -> bool {
    match p.first() {
        None => k.is_empty(),
        Some('*') => (0..=k.len()).any(|i| component(&p[1..], &k[i..])),
        Some('?') => !k.is_empty() && component(&p[1..], &k[1..]),
        Some('[') => match (p.iter().position(|&c| c == ']'), k.first()) {
            (Some(end), Some(c)) if end > 1 => {
                let set = &p[1..end];
                let (negate, set) = match set.first() {
                    Some('!') | Some('^') => (true, &set[1..]),
                    _ => (false, set),
                };
                set.contains(c) != negate && component(&p[end + 1..], &k[1..])
            }
            // An unclosed `[` is an ordinary character, as in fnmatch.
            _ => k.first() == Some(&'[') && component(&p[1..], &k[1..]),
        },
        Some(c) => k.first() == Some(c) && component(&p[1..], &k[1..]),
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn a_glob_matches_within_one_component() {
        assert!(matches(
            "net.ipv4.conf.*.rp_filter",
            "net.ipv4.conf.all.rp_filter"
        ));
        assert!(matches(
            "net.ipv4.conf.*.rp_filter",
            "net.ipv4.conf.veth-c0.rp_filter"
        ));
        assert!(!matches(
            "net.ipv4.conf.*.rp_filter",
            "net.ipv4.conf.all.arp_filter"
        ));
        assert!(!matches("net.ipv4.*", "net.ipv4.conf.all.rp_filter"));
        assert!(matches(
            "net.ipv?.conf.lo.forwarding",
            "net.ipv6.conf.lo.forwarding"
        ));
        assert!(matches(
            "net.ipv4.conf.[ad]*.rp_filter",
            "net.ipv4.conf.default.rp_filter"
        ));
        assert!(!matches(
            "net.ipv4.conf.[!ad]*.rp_filter",
            "net.ipv4.conf.all.rp_filter"
        ));
        assert!(is_glob("net.ipv4.conf.*.rp_filter") && !is_glob("net.ipv4.tcp_tw_reuse"));
        assert_eq!(fixed_prefix("net.ipv4.conf.*.rp_filter"), "net/ipv4/conf");
    }
}
