//! What a plugin says about itself, as JSON across the ABI.

/// A plugin's identity, returned by its `info` function.
#[derive(Debug, Clone, PartialEq, Eq, serde::Serialize, serde::Deserialize)]
pub struct PluginInfo {
    /// The name a source's `type` uses; lower-case, digits and underscores.
    pub name: String,
    /// The plugin's own version (semver), for `conveyor plugins list`.
    pub version: String,
    #[serde(default)]
    pub description: String,
}
