//! Reasoning effort: names clients send, levels each checkpoint renders.
//!
//! Owns [`Checkpoint`], [`Effort`], [`EffortName`] and the byte-exact prefix
//! paragraphs. Effort is a prompt prefix inserted right after BOS, in thinking
//! mode only (model-spec.md §9.3, §9.5):
//!
//! | checkpoint | `Low` | `High` | `Max` | default |
//! |---|---|---|---|---|
//! | April (`encoding_dsv4.py`) | no prefix | no prefix | [`APRIL_MAX_PREFIX`] | `High` |
//! | 0731 | no prefix | [`APRIL_MAX_PREFIX`] | [`V0731_MAX_PREFIX`] | `Low` |
//!
//! Mapping of OpenAI/Anthropic effort names ([`Checkpoint::level`]):
//!
//! | name | April | 0731 |
//! |---|---|---|
//! | `none` | thinking off | thinking off |
//! | `minimal`, `low` | `High` | `Low` |
//! | `medium` | `High` | `High` |
//! | `high` | `High` | `High` |
//! | `xhigh`, `max` | `Max` | `Max` |
//!
//! April renders only "high" and "max" (DeepSeek's API folds low/medium into
//! high and xhigh into max). For 0731, `medium` maps up to `High` as vLLM does,
//! because a client asking for more than "low" should get more reasoning.

use std::str::FromStr;

use crate::error::RenderError;

/// The April "max" paragraph (official `REASONING_EFFORT_MAX`), also 0731's "high".
pub const APRIL_MAX_PREFIX: &str = "Reasoning Effort: Absolute maximum with no shortcuts permitted.\n\
You MUST be very thorough in your thinking and comprehensively decompose the problem to resolve the root cause, rigorously stress-testing your logic against all potential paths, edge cases, and adversarial scenarios.\n\
Explicitly write out your entire deliberation process, documenting every intermediate step, considered alternative, and rejected hypothesis to ensure absolutely no assumption is left unchecked.\n\n";

/// The 0731 "max" paragraph (model-spec.md §9.5; note the U+2014 em dash).
pub const V0731_MAX_PREFIX: &str = "Reasoning Effort: Beyond maximum \u{2014} exhaustive, relentless, and uncompromising.\n\
You MUST reason with the utmost depth and rigor, leaving absolutely nothing to chance: exhaustively decompose the problem into its most fundamental components, trace every causal chain to its root, and resolve the underlying cause rather than any surface symptom.\n\
Do not stop reasoning until you have independently verified the solution from multiple angles and are certain that no assumption remains unchecked and no error remains undiscovered.\n\n";

/// Which DeepSeek V4 Flash release the prompt is for.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash, Default)]
pub enum Checkpoint {
    /// The April 2026 release (official `encoding_dsv4.py`).
    #[default]
    April,
    /// The 0731 revision (new effort table, default effort low).
    V0731,
}

/// A rendered effort level (thinking mode only).
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash)]
pub enum Effort {
    /// 0731 default; renders like `High` on April.
    Low,
    /// April default.
    High,
    /// The strongest prefix of the checkpoint.
    Max,
}

/// An effort name as clients send it (`reasoning_effort`, Anthropic `effort`).
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash)]
pub enum EffortName {
    /// Thinking off.
    None,
    /// `minimal`.
    Minimal,
    /// `low`.
    Low,
    /// `medium`.
    Medium,
    /// `high`.
    High,
    /// `xhigh`.
    XHigh,
    /// `max`.
    Max,
}

impl FromStr for EffortName {
    type Err = RenderError;

    fn from_str(s: &str) -> Result<Self, Self::Err> {
        Ok(match s.trim().to_ascii_lowercase().as_str() {
            "none" | "off" => Self::None,
            "minimal" => Self::Minimal,
            "low" => Self::Low,
            "medium" => Self::Medium,
            "high" => Self::High,
            "xhigh" => Self::XHigh,
            "max" => Self::Max,
            _ => return Err(RenderError::UnknownEffort(s.to_owned())),
        })
    }
}

impl FromStr for Checkpoint {
    type Err = String;

    fn from_str(s: &str) -> Result<Self, Self::Err> {
        match s.trim().to_ascii_lowercase().as_str() {
            "april" | "v4" | "2604" => Ok(Self::April),
            "0731" | "v0731" => Ok(Self::V0731),
            other => Err(format!("unknown checkpoint {other:?}; use april or 0731")),
        }
    }
}

impl Checkpoint {
    /// The effort used when the request names none.
    pub fn default_effort(self) -> Effort {
        match self {
            Self::April => Effort::High,
            Self::V0731 => Effort::Low,
        }
    }

    /// The level an effort name renders as; `None` means thinking off.
    pub fn level(self, name: EffortName) -> Option<Effort> {
        Some(match (self, name) {
            (_, EffortName::None) => return None,
            (_, EffortName::XHigh | EffortName::Max) => Effort::Max,
            (Self::April, _) => Effort::High,
            (Self::V0731, EffortName::Minimal | EffortName::Low) => Effort::Low,
            (Self::V0731, EffortName::Medium | EffortName::High) => Effort::High,
        })
    }

    /// The prefix inserted after BOS in thinking mode for `effort`.
    pub fn effort_prefix(self, effort: Effort) -> &'static str {
        match (self, effort) {
            (Self::April, Effort::Low | Effort::High) | (Self::V0731, Effort::Low) => "",
            (Self::April, Effort::Max) | (Self::V0731, Effort::High) => APRIL_MAX_PREFIX,
            (Self::V0731, Effort::Max) => V0731_MAX_PREFIX,
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn tables() {
        use Checkpoint::*;
        assert_eq!(April.level(EffortName::None), None);
        assert_eq!(April.level(EffortName::Low), Some(Effort::High));
        assert_eq!(April.level(EffortName::XHigh), Some(Effort::Max));
        assert_eq!(V0731.level(EffortName::Minimal), Some(Effort::Low));
        assert_eq!(V0731.level(EffortName::Medium), Some(Effort::High));
        assert_eq!(V0731.level(EffortName::Max), Some(Effort::Max));
        assert_eq!(April.effort_prefix(April.default_effort()), "");
        assert_eq!(V0731.effort_prefix(V0731.default_effort()), "");
        assert_eq!(
            V0731.effort_prefix(Effort::High),
            April.effort_prefix(Effort::Max)
        );
        assert!(V0731_MAX_PREFIX.starts_with("Reasoning Effort: Beyond maximum — exhaustive"));
        assert!(V0731_MAX_PREFIX.ends_with("no error remains undiscovered.\n\n"));
        assert_eq!("XHigh".parse::<EffortName>().ok(), Some(EffortName::XHigh));
        assert!("extreme".parse::<EffortName>().is_err());
    }
}
