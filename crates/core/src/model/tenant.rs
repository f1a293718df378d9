//! Tenant and principal identifiers: Entra ID object IDs are GUIDs.

use std::fmt;

/// A GUID in canonical form (lower-case, hyphenated 8-4-4-4-12).
#[derive(Clone, Debug, PartialEq, Eq, Hash, PartialOrd, Ord)]
pub struct Guid(String);

impl Guid {
    /// Parses `xxxxxxxx-xxxx-xxxx-xxxx-xxxxxxxxxxxx` (either case). Braces and other
    /// notations are refused: they would project to different RBAC names.
    pub fn parse(s: &str) -> Option<Guid> {
        const GROUPS: [usize; 5] = [8, 4, 4, 4, 12];
        let parts: Vec<&str> = s.split('-').collect();
        if parts.len() != GROUPS.len() {
            return None;
        }
        let well_formed =
            parts.iter().zip(GROUPS).all(|(p, len)| p.len() == len && p.bytes().all(|b| b.is_ascii_hexdigit()));
        well_formed.then(|| Guid(s.to_ascii_lowercase()))
    }

    /// The canonical form.
    pub fn as_str(&self) -> &str {
        &self.0
    }
}

impl fmt::Display for Guid {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(&self.0)
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn accepts_canonical_guids_in_either_case() {
        let g = Guid::parse("FBCDD0F3-dc82-4cee-BCDE-7301d24e9bf6").expect("valid");
        assert_eq!(g.as_str(), "fbcdd0f3-dc82-4cee-bcde-7301d24e9bf6");
    }

    #[test]
    fn rejects_everything_else() {
        for bad in [
            "",
            "contoso",
            "fbcdd0f3dc824ceebcde7301d24e9bf6",
            "{fbcdd0f3-dc82-4cee-bcde-7301d24e9bf6}",
            "fbcdd0f3-dc82-4cee-bcde-7301d24e9bf",
            "fbcdd0f3-dc82-4cee-bcde-7301d24e9bf6-",
            "gbcdd0f3-dc82-4cee-bcde-7301d24e9bf6",
            "fbcdd0f3-dc82-4cee-bcde7-301d24e9bf6",
        ] {
            assert_eq!(Guid::parse(bad), None, "{bad:?}");
        }
    }
}
