//! Who may use the server: which web origins may drive it from a browser.
//!
//! Browsers attach an `Origin` header to cross-origin requests and to every WebSocket
//! upgrade; other clients (gRPC services, the SDKs, curl) send none. A request without an
//! `Origin`, or from the page's own origin, is not a cross-origin request and passes. A
//! cross-origin one passes only when its origin is on the `--cors-origins` list, and that is
//! enforced by the server itself, not only by the browser's CORS check: a plain form POST or a
//! WebSocket is sent without any preflight, so without this any web page a user opens could
//! make their browser run transcriptions on a server inside their network.
//!
//! Credentials (cookies) are never allowed cross-origin: hearken authenticates with bearer
//! keys in a header, which CORS allows without them.

use std::fmt;

/// The web origins allowed to call cross-origin (`--cors-origins`).
#[derive(Clone, Default, PartialEq, Eq)]
pub struct Origins {
    /// Exact origins (`scheme://host[:port]`, lowercase).
    allowed: Vec<String>,
    /// `*`: any origin (never with credentials).
    any: bool,
}

impl fmt::Debug for Origins {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        if self.any {
            f.write_str("Origins(*)")
        } else {
            f.debug_tuple("Origins").field(&self.allowed).finish()
        }
    }
}

impl Origins {
    /// No cross-origin caller: the default.
    pub fn none() -> Self {
        Self::default()
    }

    /// Any origin (`*`): for a server that holds nothing a web page should not reach.
    pub fn any() -> Self {
        Self {
            allowed: Vec::new(),
            any: true,
        }
    }

    /// Parses `--cors-origins`: empty for none, `*` for any, else a comma-separated list of
    /// origins such as `https://app.example.com,http://localhost:5173`.
    pub fn parse(list: &str) -> Result<Self, String> {
        let mut origins = Self::none();
        for item in list.split(',').map(str::trim).filter(|s| !s.is_empty()) {
            if item == "*" {
                origins.any = true;
                continue;
            }
            origins.allowed.push(normalize(item)?);
        }
        Ok(origins)
    }

    /// Whether a request carrying `origin` (its `Origin` header, if any) to `host` (its
    /// `Host` header or `:authority`, when known) may proceed.
    pub fn permits(&self, origin: Option<&str>, host: Option<&str>) -> bool {
        let Some(origin) = origin else {
            return true; // not a browser's cross-origin request
        };
        if let (Some(authority), Some(host)) = (authority_of(origin), host)
            && authority.eq_ignore_ascii_case(host)
        {
            return true; // the page the server itself serves
        }
        self.allows_cross_origin(origin)
    }

    /// Whether `origin` is on the list (the CORS answer for a preflight).
    pub fn allows_cross_origin(&self, origin: &str) -> bool {
        if origin == "null" {
            // Sandboxed frames and file:// pages: no identity to allow.
            return false;
        }
        self.any
            || self
                .allowed
                .iter()
                .any(|allowed| allowed.eq_ignore_ascii_case(origin.trim_end_matches('/')))
    }
}

/// `scheme://host[:port]` without a path, lowercase; anything else is a configuration error.
fn normalize(origin: &str) -> Result<String, String> {
    let trimmed = origin.trim_end_matches('/');
    let valid = trimmed.split_once("://").is_some_and(|(scheme, rest)| {
        matches!(scheme, "http" | "https") && !rest.is_empty() && !rest.contains('/')
    });
    if valid {
        Ok(trimmed.to_ascii_lowercase())
    } else {
        Err(format!(
            "`{origin}` is not an origin: write scheme://host[:port], e.g. https://app.example.com"
        ))
    }
}

/// The `host[:port]` of an origin.
fn authority_of(origin: &str) -> Option<&str> {
    origin.split_once("://").map(|(_, rest)| rest)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn requests_without_an_origin_or_from_the_same_origin_always_pass() {
        let none = Origins::none();
        assert!(none.permits(None, Some("hearken:8000")));
        assert!(none.permits(Some("http://hearken:8000"), Some("hearken:8000")));
        assert!(!none.permits(Some("http://hearken:8001"), Some("hearken:8000")));
        assert!(!none.permits(Some("https://evil.example"), Some("hearken:8000")));
        assert!(!none.permits(Some("https://evil.example"), None));
    }

    #[test]
    fn the_list_allows_exactly_its_origins() {
        let list = Origins::parse(" https://App.example.com/ , http://localhost:5173").unwrap();
        assert!(list.allows_cross_origin("https://app.example.com"));
        assert!(list.allows_cross_origin("http://localhost:5173"));
        assert!(!list.allows_cross_origin("http://app.example.com"));
        assert!(!list.allows_cross_origin("https://app.example.com.evil.example"));
        assert!(!list.allows_cross_origin("null"));
        assert!(list.permits(Some("https://app.example.com"), Some("hearken:8000")));
        let any = Origins::parse("*").unwrap();
        assert!(any.allows_cross_origin("https://anything.example"));
        assert!(!any.allows_cross_origin("null"));
        assert_eq!(Origins::parse("").unwrap(), Origins::none());
    }

    #[test]
    fn what_is_not_an_origin_is_refused_at_start_up() {
        for bad in [
            "app.example.com",
            "https://app.example.com/path",
            "ftp://x",
            "https://",
        ] {
            let err = Origins::parse(bad).unwrap_err();
            assert!(err.contains(bad), "{err}");
        }
    }
}
