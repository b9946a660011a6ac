//! Constrained decoding: `tool_choice` and `response_format` enforced on the
//! logits, so even a random-weight model returns a well-formed call to the
//! named tool, or JSON valid against the requested schema.
//!
//! Built on the `llguidance` crate (Earley parser + derivative-based lexer,
//! JSON Schema → grammar, masks in tens of microseconds over the 129k-token
//! vocabulary): [`grammar`] writes a Lark grammar for the DSML tool-call block
//! the official encoder renders (tool names, parameter names and
//! `string="true|false"` from each tool's JSON schema, values as raw text or as
//! `%json` against the parameter's schema) or for a JSON document;
//! [`mask::ConstrainedMask`] implements the engine's `LogitMask` with it.
//!
//! Invariants: reasoning is never constrained (the grammar starts after
//! `</think>`, or at the model's own `｜DSML｜` for `tool_choice: auto`); a
//! request with a token budget reserves the tokens needed to close the
//! structure, so the budget ends a well-formed call rather than half of one.
//! Nothing here panics on client schemas: a schema llguidance cannot compile
//! is reported as a 400 for `response_format`, and falls back to "any JSON
//! value" for one tool parameter (a warning is logged).

pub(crate) mod grammar;
pub(crate) mod mask;

use std::sync::Arc;

use dsv4_tokenizer::{SpecialToken, Tokenizer};
use llguidance::api::TopLevelGrammar;
use llguidance::{Matcher, ParserFactory};
use serde_json::Value;
use toktrie::{ApproximateTokEnv, TokEnv, TokRxInfo, TokTrie};

use crate::errors::ApiError;
pub(crate) use grammar::{ToolMode, ToolSpec};
use mask::{ConstrainedMask, Trigger};

/// What to enforce.
#[derive(Debug, Clone, PartialEq)]
pub(crate) enum Constraint {
    /// A DSML tool-call block.
    Tools {
        /// The tools the model may call.
        tools: Vec<ToolSpec>,
        /// auto (constrain a block once the model opens one), required or named.
        mode: ToolMode,
        /// Several `invoke`s per block.
        parallel: bool,
    },
    /// A JSON document: any object (`json_object`) or one matching a schema.
    Json {
        /// The JSON schema, or `None` for any object.
        schema: Option<Value>,
    },
}

/// Special token ids and single-token strings the masks use.
#[derive(Debug, Clone)]
pub(crate) struct Vocab {
    pub(crate) eos: u32,
    pub(crate) think_end: u32,
    pub(crate) dsml: u32,
    pub(crate) n_vocab: usize,
    /// Tokens that move a structure towards its end, by role.
    pub(crate) closers: mask::Closers,
}

/// Shared per-model state: the llguidance token trie and parser factory.
pub(crate) struct Constraints {
    factory: ParserFactory,
    vocab: Arc<Vocab>,
    tokenizer: Arc<Tokenizer>,
}

impl std::fmt::Debug for Constraints {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("Constraints")
            .field("vocab", &self.vocab.n_vocab)
            .finish_non_exhaustive()
    }
}

/// The llguidance view of the vocabulary: special tokens are written as
/// `0xFF [id]` (toktrie's marker) so grammars name them `<[id]>` and no text
/// lexeme can produce them.
fn token_words(tok: &Tokenizer) -> Vec<Vec<u8>> {
    (0..tok.vocab_size() as u32)
        .map(|id| {
            if tok.is_special(id) {
                let mut w = vec![TokTrie::SPECIAL_TOKEN_MARKER];
                w.extend_from_slice(format!("[{id}]").as_bytes());
                w
            } else {
                tok.token_bytes(id).unwrap_or_default().to_vec()
            }
        })
        .collect()
}

impl Constraints {
    /// Builds the trie and factory for a tokenizer (about half a second for
    /// the 129k-token V4 vocabulary; done once when the model is ready).
    pub(crate) fn new(tokenizer: Arc<Tokenizer>) -> Result<Constraints, String> {
        let eos = tokenizer.special_id(SpecialToken::Eos);
        let words = token_words(&tokenizer);
        let info = TokRxInfo::new(words.len() as u32, eos);
        let trie = TokTrie::from(&info, &words);
        let env: TokEnv = Arc::new(ApproximateTokEnv::new(trie));
        let mut factory =
            ParserFactory::new_simple(&env).map_err(|e| format!("llguidance: {e}"))?;
        factory.quiet();
        let vocab = Vocab {
            eos,
            think_end: tokenizer.special_id(SpecialToken::ThinkEnd),
            dsml: tokenizer.special_id(SpecialToken::Dsml),
            n_vocab: tokenizer.vocab_size(),
            closers: mask::Closers::new(&tokenizer, eos),
        };
        Ok(Constraints {
            factory,
            vocab: Arc::new(vocab),
            tokenizer,
        })
    }

    /// Compiles a grammar into a fresh matcher.
    fn matcher(&self, lark: String) -> Result<Matcher, String> {
        let parser = self.factory.create_parser(TopLevelGrammar::from_lark(lark));
        let matcher = Matcher::new(parser);
        match matcher.get_error() {
            Some(e) => Err(e),
            None => Ok(matcher),
        }
    }

    /// The mask for a request. `thinking`: the prompt ends inside `<think>`.
    /// `max_tokens`: the request's budget (a closing reserve is kept).
    pub(crate) fn mask(
        &self,
        constraint: &Constraint,
        thinking: bool,
        max_tokens: Option<usize>,
    ) -> Result<ConstrainedMask, ApiError> {
        let refuse = |e: String| {
            ApiError::invalid_param(
                "response_format",
                format!("the requested structure cannot be enforced: {e}"),
            )
        };
        let (matcher, trigger, reserve) = match constraint {
            Constraint::Tools {
                tools,
                mode,
                parallel,
            } => {
                let lazy = *mode == ToolMode::Auto;
                let build = |check: &dyn Fn(&Value) -> bool| {
                    grammar::tool_grammar(tools, mode, *parallel, lazy, check, self.vocab.dsml)
                };
                // Compile optimistically; if a parameter schema is refused,
                // rebuild with that parameter relaxed to any JSON value.
                let matcher = match self.matcher(build(&|_| true)) {
                    Ok(m) => m,
                    Err(_) => self
                        .matcher(build(&|s| self.check_json(s)))
                        .map_err(refuse)?,
                };
                let trigger = if lazy {
                    Trigger::OnDsml
                } else {
                    Trigger::AfterThink
                };
                (matcher, trigger, grammar::tool_reserve(tools, mode))
            }
            Constraint::Json { schema } => {
                let matcher = self
                    .matcher(grammar::json_grammar(schema.as_ref()))
                    .map_err(refuse)?;
                (matcher, Trigger::AfterThink, grammar::JSON_RESERVE)
            }
        };
        let mask = ConstrainedMask::new(
            matcher,
            Arc::clone(&self.vocab),
            Arc::clone(&self.tokenizer),
            trigger,
            thinking,
            max_tokens,
            reserve,
        );
        Ok(match constraint {
            Constraint::Json { .. } => mask.json_mode(),
            Constraint::Tools { .. } => mask,
        })
    }

    /// Whether llguidance accepts `schema` (as used for one tool parameter).
    fn check_json(&self, schema: &Value) -> bool {
        self.matcher(grammar::json_grammar(Some(schema))).is_ok()
    }
}

#[cfg(test)]
mod tests;
