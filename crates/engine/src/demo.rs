//! The built-in demo model: the `tiny` synthetic preset with the real DeepSeek
//! V4 tokenizer, generated in memory in about a second, so `--demo` shows the
//! whole pipeline without downloading weights. Its weights are random: its
//! output is gibberish by construction, and the engine reports it as synthetic.

use std::sync::Arc;

use dsv4_gguf::GgufFile;
use dsv4_model::synth::{Preset, QuantMix, SynthSpec, VocabMeta, preset_config, to_bytes};
use dsv4_model::{Model, ModelOptions};
use dsv4_tokenizer::{SpecialToken, Tokenizer};

use crate::engine::{Engine, EngineConfig};
use crate::error::Result;

/// The built-in vocabulary as GGUF metadata arrays.
pub fn builtin_vocab(tok: &Tokenizer) -> VocabMeta {
    let v = tok.to_gguf_vocab();
    VocabMeta {
        tokens: v.tokens,
        merges: v.merges,
        token_types: v.token_types,
        bos: tok.special_id(SpecialToken::Bos),
        eos: tok.special_id(SpecialToken::Eos),
    }
}

/// The demo model's GGUF image.
pub fn demo_gguf(tok: &Tokenizer, seed: u64) -> Result<Vec<u8>> {
    let cfg = preset_config(Preset::Tiny, tok.vocab_size(), None, None);
    let mix = QuantMix::parse("q8_0").unwrap_or(QuantMix::uniform(dsv4_gguf::GgmlType::F32));
    let spec = SynthSpec {
        cfg,
        mix,
        seed,
        name: "dsv4-demo-tiny (random weights)".into(),
    };
    Ok(to_bytes(&spec, &builtin_vocab(tok))?)
}

/// Starts an engine on the demo model.
pub fn demo_engine(cfg: EngineConfig) -> Result<Engine> {
    let tok = Tokenizer::builtin()?;
    let bytes = demo_gguf(&tok, 1)?;
    let file = GgufFile::from_bytes(bytes).map_err(|e| crate::EngineError::Model(e.to_string()))?;
    let model = Model::from_file(
        Arc::new(file),
        ModelOptions {
            qat_sim: cfg.qat_sim,
        },
    )?;
    let backend = cfg.cpu_backend()?;
    Engine::start(model, backend, tok, cfg)
}
