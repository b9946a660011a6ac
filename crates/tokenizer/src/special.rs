//! The special (added) tokens the DeepSeek V4 chat format and output parser use.
//!
//! Owns [`SpecialToken`]: the closed set of control tokens dsv4 emits by name,
//! with their exact strings. Ids are resolved by string when a vocabulary is
//! loaded ([`crate::Tokenizer::special_id`]); the ids of the real DeepSeek V4
//! vocabulary (`tokenizer.json` sha256 `8f9f37ca…`, checked by a test) are listed
//! in [`SpecialToken::v4_id`] for documentation.
//!
//! Policy: these strings are produced **only** by the renderer, as
//! [`crate::Segment::Special`]. Plain text is never scanned for them, so text a
//! user types (`<｜User｜>`, `｜DSML｜`, `<think>` …) stays ordinary BPE pieces.
//! Note the full-width bar U+FF5C `｜` and U+2581 `▁` inside the strings.

/// A control token of the DeepSeek V4 vocabulary, by role.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash)]
pub enum SpecialToken {
    /// `<｜begin▁of▁sentence｜>` (BOS), id 0. The renderer writes it; the
    /// tokenizer never adds it.
    Bos,
    /// `<｜end▁of▁sentence｜>` (EOS, also the pad token), id 1. Generation stops on it.
    Eos,
    /// `<｜User｜>`, id 128803.
    User,
    /// `<｜Assistant｜>`, id 128804.
    Assistant,
    /// `<｜latest_reminder｜>`, id 128828.
    LatestReminder,
    /// `<think>`, id 128821.
    ThinkStart,
    /// `</think>`, id 128822.
    ThinkEnd,
    /// `｜DSML｜`, id 128825: the only special token inside DSML tool-call markup.
    Dsml,
    /// `<｜action｜>` (task), id 128829.
    TaskAction,
    /// `<｜query｜>` (task), id 128830.
    TaskQuery,
    /// `<｜authority｜>` (task), id 128831.
    TaskAuthority,
    /// `<｜domain｜>` (task), id 128832.
    TaskDomain,
    /// `<｜title｜>` (task), id 128836.
    TaskTitle,
    /// `<｜read_url｜>` (task), id 128845.
    TaskReadUrl,
    /// `<｜fim▁hole｜>`, id 128800.
    FimHole,
    /// `<｜fim▁begin｜>`, id 128801.
    FimBegin,
    /// `<｜fim▁end｜>`, id 128802.
    FimEnd,
    /// `<｜place▁holder▁no▁799｜>`, id 128799: the DSpark noise token of the 0731
    /// checkpoint. Never part of a prompt or of visible output.
    DsparkNoise,
}

impl SpecialToken {
    /// Every variant, in declaration order.
    pub const ALL: [SpecialToken; 18] = [
        Self::Bos,
        Self::Eos,
        Self::User,
        Self::Assistant,
        Self::LatestReminder,
        Self::ThinkStart,
        Self::ThinkEnd,
        Self::Dsml,
        Self::TaskAction,
        Self::TaskQuery,
        Self::TaskAuthority,
        Self::TaskDomain,
        Self::TaskTitle,
        Self::TaskReadUrl,
        Self::FimHole,
        Self::FimBegin,
        Self::FimEnd,
        Self::DsparkNoise,
    ];

    /// The token's exact text.
    pub const fn content(self) -> &'static str {
        match self {
            Self::Bos => "<｜begin▁of▁sentence｜>",
            Self::Eos => "<｜end▁of▁sentence｜>",
            Self::User => "<｜User｜>",
            Self::Assistant => "<｜Assistant｜>",
            Self::LatestReminder => "<｜latest_reminder｜>",
            Self::ThinkStart => "<think>",
            Self::ThinkEnd => "</think>",
            Self::Dsml => "｜DSML｜",
            Self::TaskAction => "<｜action｜>",
            Self::TaskQuery => "<｜query｜>",
            Self::TaskAuthority => "<｜authority｜>",
            Self::TaskDomain => "<｜domain｜>",
            Self::TaskTitle => "<｜title｜>",
            Self::TaskReadUrl => "<｜read_url｜>",
            Self::FimHole => "<｜fim▁hole｜>",
            Self::FimBegin => "<｜fim▁begin｜>",
            Self::FimEnd => "<｜fim▁end｜>",
            Self::DsparkNoise => "<｜place▁holder▁no▁799｜>",
        }
    }

    /// The id in the DeepSeek V4 vocabulary (the one [`crate::Tokenizer::builtin`]
    /// loads). Other vocabularies may differ; use
    /// [`crate::Tokenizer::special_id`] at run time.
    pub const fn v4_id(self) -> u32 {
        match self {
            Self::Bos => 0,
            Self::Eos => 1,
            Self::User => 128_803,
            Self::Assistant => 128_804,
            Self::LatestReminder => 128_828,
            Self::ThinkStart => 128_821,
            Self::ThinkEnd => 128_822,
            Self::Dsml => 128_825,
            Self::TaskAction => 128_829,
            Self::TaskQuery => 128_830,
            Self::TaskAuthority => 128_831,
            Self::TaskDomain => 128_832,
            Self::TaskTitle => 128_836,
            Self::TaskReadUrl => 128_845,
            Self::FimHole => 128_800,
            Self::FimBegin => 128_801,
            Self::FimEnd => 128_802,
            Self::DsparkNoise => 128_799,
        }
    }

    /// Position in [`Self::ALL`].
    pub(crate) const fn index(self) -> usize {
        self as usize
    }
}
