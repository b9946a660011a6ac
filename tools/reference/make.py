"""Generate dsv4's reference fixtures (tests/fixtures/reference/). Run through run.sh.

For each tiny model: pick the first seed whose every file variant has clean top-k margins, write
the GGUF files, read each back, dequantize every tensor with gguf-py, load the f32 weights into HF
transformers' DeepseekV4ForCausalLM and record its outputs. See README.md for the file format.
"""

import argparse
import hashlib
import json
import math
import os
import pathlib
import platform
import shutil
import sys
import tempfile
import time

import numpy as np
import torch
import transformers
import gguf

from dsv4ref import gguf_out as G
from dsv4ref import model as M
from dsv4ref import official as O
from dsv4ref import tokenizer as T

MIN_MARGIN = 1e-4
BASE_SEED = 20261123
MAX_TRIES = 50

TINY = dict(vocab_size=512, hidden_size=64, moe_intermediate_size=32,
            layer_types=[M.SWA, M.CSA, M.HCA, M.CSA], mlp_layer_types=["hash_moe", "hash_moe", "moe", "moe"],
            num_attention_heads=4, head_dim=80, rope_dim=16, q_lora_rank=32, num_experts_per_tok=2,
            n_routed_experts=8, sliding_window=16, o_groups=2, o_lora_rank=32, index_n_heads=16,
            index_head_dim=32, index_topk=8)
TINY256 = dict(vocab_size=512, hidden_size=256, moe_intermediate_size=256,
               layer_types=[M.CSA, M.HCA], mlp_layer_types=["hash_moe", "moe"],
               num_attention_heads=2, head_dim=128, rope_dim=64, q_lora_rank=64, num_experts_per_tok=2,
               n_routed_experts=4, sliding_window=16, o_groups=2, o_lora_rank=64, index_n_heads=8,
               index_head_dim=64, index_topk=4)

MODELS = {
    "tiny": {"spec": TINY, "seq_len": 400, "files": ["F32", "BF16", "F16", "Q8_0"], "full_file": "F32",
             "splits": [3, 17, 127, 128, 129, 255, 257, 383, 384], "chunks": [[3], [64], [5, 7, 16, 100]],
             "qat": True, "convert": True},
    "tiny256": {"spec": TINY256, "seq_len": 160, "files": ["Q2MIX", "Q4MIX"], "full_file": None,
                "splits": [129], "chunks": [], "qat": False, "convert": False},
}
# positions whose logits are stored for every HF variant (window, ratio-4 and ratio-128 edges)
CHECKPOINTS = [0, 1, 2, 3, 4, 15, 16, 17, 63, 64, 126, 127, 128, 129, 159, 254, 255, 256, 257, 382, 383,
               384, 399]


def sha256(path) -> str:
    return hashlib.sha256(pathlib.Path(path).read_bytes()).hexdigest()


def save(path: pathlib.Path, arr) -> None:
    path.parent.mkdir(parents=True, exist_ok=True)
    np.save(path, np.ascontiguousarray(arr))


def expert_sigma(name: str, shape: tuple) -> float:
    # the scales init_values uses for these tensors (model.py)
    fan_in = shape[-1]
    return (3.2 if ("gate" in name or "up" in name) else 0.35) / math.sqrt(fan_in)


def gguf_tensors(state: dict, mix: str, seed: int, model_name: str) -> dict:
    """HF state -> {gguf name: (encoded array, type)} for one file kind."""
    out = {}
    for name, arr in G.hf_to_gguf_tensors(state).items():
        qt = G.tensor_type(mix, name)
        if qt in (G.QT.IQ2_XXS, G.QT.Q2_K, G.QT.Q4_K):
            raw = G.random_quant_tensor(qt, arr.shape, expert_sigma(name, arr.shape), f"{model_name}:{seed}:{name}")
            out[name] = (raw, qt)
        else:
            out[name] = (G.encode(arr, qt), qt)
    return out


def forward_record(model, cfg, tokens):
    rec = M.Recorder(model)
    logits = M.full_forward(model, tokens)
    S = len(tokens)
    isets, imarg = M.indexer_sets(rec, cfg, S)
    rsets, rmarg = M.router_sets(rec, cfg)
    res = {"logits": logits, "index_sets": isets, "index_margins": imarg, "router_sets": rsets,
           "router_margins": rmarg, "clamp": rec.clamp,
           "hc": torch.stack([rec.hc_in] + [rec.hc_out[i] for i in range(cfg.num_hidden_layers)]).numpy(),
           "hc_mid": torch.stack([rec.hc_mid[i] for i in range(cfg.num_hidden_layers)]).numpy()}
    rec.close()
    return res


def margin_detail(res) -> str:
    return f"indexer {res['index_margins']} router {res['router_margins']}"


def min_margin(res) -> float:
    vals = list(res["index_margins"].values()) + list(res["router_margins"].values())
    return min(vals) if vals else math.inf


def candidate(model_name, spec, seed, tok, tmp, convert_ctx):
    """Build every file of one model for `seed`; returns per-file (path, state, record) or the
    reason the seed is rejected."""
    cfg = M.make_config(spec)
    hf = M.build_model(cfg)
    base = M.init_weights(hf, seed)
    meta_vocab = T.gguf_vocab(tok)
    runs = {}
    files = list(MODELS[model_name]["files"])
    for mix in files:
        path = tmp / f"{model_name}-{mix}.gguf"
        G.write_gguf(path, G.metadata(cfg, meta_vocab, f"dsv4-reference-{model_name}"),
                     gguf_tensors(base, mix, seed, model_name))
        runs[mix] = {"path": path}
    if MODELS[model_name]["convert"]:
        ckpt = tmp / f"{model_name}-official"
        O.write_checkpoint(base, cfg, ckpt, lambda p: T.save_hf_files(tok, p))
        path = tmp / f"{model_name}-llamacpp-convert.gguf"
        log = O.run_converter(sys.executable, convert_ctx["lcpp"], ckpt, path, convert_ctx["env"])
        lines = [ln.replace(str(tmp), "<tmp>") for ln in log.splitlines()
                 if ln.startswith("INFO:hf-to-gguf:") and "%|" not in ln]
        runs["CONVERT"] = {"path": path, "log_tail": "\n".join(lines[-25:]), "ckpt": ckpt}
    tokens = make_tokens(cfg, MODELS[model_name]["seq_len"], seed)
    for mix, r in runs.items():
        meta, tens = G.read_gguf(r["path"])
        state = G.gguf_to_hf_state({k: v[0] for k, v in tens.items()})
        M.load_numpy_state(hf, state)
        r["meta"], r["tensor_info"] = meta, {k: (v[1], v[2]) for k, v in tens.items()}
        r["state"] = state
        r["res"] = forward_record(hf, cfg, tokens)
        mm = min_margin(r["res"])
        if mm < MIN_MARGIN:
            return None, f"{mix}: min top-k margin {mm:.3g} < {MIN_MARGIN} ({margin_detail(r['res'])})"
        if mix == "F32" and MODELS[model_name]["qat"]:
            with M.QatPatch(hf):
                r["qat"] = forward_record(hf, cfg, tokens)
            mm = min_margin(r["qat"])
            if mm < MIN_MARGIN:
                return None, f"QAT: min top-k margin {mm:.3g} < {MIN_MARGIN} ({margin_detail(r['qat'])})"
    return {"cfg": cfg, "hf": hf, "base": base, "runs": runs, "tokens": tokens}, None


def make_tokens(cfg, seq_len, seed):
    r = np.random.default_rng(seed)
    t = r.integers(2, cfg.vocab_size, seq_len).astype(np.int32)
    t[0] = T.BOS_ID
    return t


def variants(hf, tokens, full, splits, chunks, qat=False):
    """HF's own cached decode / chunked prefill vs the full forward."""
    S = len(tokens)
    ck = [p for p in CHECKPOINTS if p < S]
    names, stored, deltas = [], [], {}
    jobs = [(f"decode_split{p}", [p, 1]) for p in splits] + [("chunked_" + "_".join(map(str, c)), c) for c in chunks]
    for name, sizes in jobs:
        t0 = time.time()
        if qat:
            with M.QatPatch(hf):
                lg = M.chunked_forward(hf, tokens, sizes)
        else:
            lg = M.chunked_forward(hf, tokens, sizes)
        d = np.abs(lg - full)
        deltas[name] = {"chunk_sizes": sizes, "max_abs_delta_vs_full": float(d.max()),
                        "argmax_agreement": float((lg.argmax(1) == full.argmax(1)).mean()),
                        "seconds": round(time.time() - t0, 2)}
        names.append(name)
        stored.append(lg[ck])
    return names, np.stack(stored).astype(np.float32), ck, deltas


def clamp_summary(clamp):
    return {str(k): v for k, v in clamp.items()}


def save_run(out: pathlib.Path, res, cfg, with_hc: bool, tol, tag, same_logits_as=None) -> dict:
    csa = sorted(res["index_sets"])
    L = cfg.num_hidden_layers
    if same_logits_as is None:
        save(out / "logits.npy", res["logits"].astype(np.float32))
    if csa:
        save(out / "indexer_topk.npy", np.stack([res["index_sets"][l] for l in csa]).astype(np.int32))
    save(out / "router_experts.npy", np.stack([res["router_sets"][l][0] for l in range(L)]).astype(np.int32))
    save(out / "router_weights.npy", np.stack([res["router_sets"][l][1] for l in range(L)]).astype(np.float32))
    if with_hc:
        save(out / "hc_states.npy", res["hc"].astype(np.float32))
        ck = [p for p in CHECKPOINTS if p < res["hc_mid"].shape[1]]
        save(out / "hc_mid.npy", res["hc_mid"][:, ck].astype(np.float32))
    return {"variant": tag, "csa_layers": csa, "logits_file": "logits.npy" if same_logits_as is None else same_logits_as,
            "indexer_min_margin": {str(k): v for k, v in res["index_margins"].items()},
            "router_min_margin": {str(k): v for k, v in res["router_margins"].items()},
            "clamp_counts": clamp_summary(res["clamp"]), "logit_tolerance_abs": tol,
            "logits_std": float(res["logits"].std())}


def type_table(tensor_info):
    return {k: {"type": v[0], "ggml_shape": v[1]} for k, v in sorted(tensor_info.items())}


def json_meta(meta):
    out = {}
    for k, v in meta.items():
        if k in ("tokenizer.ggml.tokens", "tokenizer.ggml.merges", "tokenizer.ggml.token_type"):
            out[k] = f"<array of {len(v)}>"
        elif k == "tokenizer.chat_template":
            out[k] = f"<string of {len(v)} chars>"
        else:
            out[k] = v
    return out


def main():
    ap = argparse.ArgumentParser()
    ap.add_argument("--out", default="tests/fixtures/reference")
    ap.add_argument("--cache", default=".cache/reference")
    ap.add_argument("--skip-convert", action="store_true")
    args = ap.parse_args()
    t_start = time.time()
    torch.set_num_threads(max(1, os.cpu_count() or 1))
    root = pathlib.Path(args.out)
    if root.exists():
        shutil.rmtree(root)
    root.mkdir(parents=True)
    tok = T.build(512)
    tokdir = root / "tokenizer"
    tokdir.mkdir()
    T.save_hf_files(tok, tokdir)
    convert_ctx = None
    if not args.skip_convert:
        convert_ctx = {"lcpp": O.fetch_sdist(pathlib.Path(args.cache), sys.executable), "env": dict(os.environ)}
    else:
        for m in MODELS.values():
            m["convert"] = False
    manifest = {
        "generator": "tools/reference/make.py", "min_top_k_margin": MIN_MARGIN,
        "versions": {"python": platform.python_version(), "torch": torch.__version__,
                     "transformers": transformers.__version__, "gguf": gguf.__version__ if hasattr(gguf, "__version__") else "0.19.0",
                     "numpy": np.__version__, "llama_cpp_converter": "llama-cpp-python 0.3.36 sdist (llama.cpp 0c1e57098)"},
        "models": {},
    }
    for model_name, mdef in MODELS.items():
        t0 = time.time()
        rejected = []
        with tempfile.TemporaryDirectory() as td:
            tmp = pathlib.Path(td)
            for k in range(MAX_TRIES):
                seed = BASE_SEED + k
                cand, why = candidate(model_name, mdef["spec"], seed, tok, tmp, convert_ctx)
                if cand:
                    break
                rejected.append({"seed": seed, "reason": why})
                print(f"[{model_name}] seed {seed} rejected: {why}", flush=True)
            else:
                raise SystemExit(f"{model_name}: no clean seed in {MAX_TRIES} tries")
            print(f"[{model_name}] seed {seed} accepted", flush=True)
            mout = root / model_name
            mout.mkdir()
            cfg, hf, tokens = cand["cfg"], cand["hf"], cand["tokens"]
            save(mout / "tokens.npy", tokens.astype(np.int32))
            entry = {"spec": mdef["spec"], "seq_len": len(tokens), "seed": seed, "rejected_seeds": rejected,
                     "hf_config": {k: v for k, v in cfg.to_dict().items() if not k.startswith("_")},
                     "rope": M.check_rope_constants(cfg), "files": {}}
            for mix, r in cand["runs"].items():
                is_conv = mix == "CONVERT"
                fdir = (root / "llamacpp-convert") if is_conv else (mout / mix.lower())
                gname = f"{model_name}-{mix.lower()}.gguf" if not is_conv else f"{model_name}-llamacpp-convert.gguf"
                gpath = (root / "llamacpp-convert" / gname) if is_conv else (mout / gname)
                gpath.parent.mkdir(parents=True, exist_ok=True)
                shutil.copy(r["path"], gpath)
                full_set = mix == mdef["full_file"]
                same = None
                if mix == "BF16":
                    # the base weights are bf16-representable, so BF16 dequantizes to the F32 weights
                    # exactly and the logits are bit-identical: store them once
                    if not np.array_equal(r["res"]["logits"], cand["runs"]["F32"]["res"]["logits"]):
                        raise AssertionError("BF16 logits differ from F32 logits")
                    same = "../f32/logits.npy"
                info = save_run(fdir, r["res"], cfg, full_set, 1e-4, mix, same)
                M.load_numpy_state(hf, r["state"])
                splits = mdef["splits"] if full_set else mdef["splits"][-1:]
                chunks = mdef["chunks"] if full_set else []
                names, stored, ck, deltas = variants(hf, tokens, r["res"]["logits"], splits, chunks)
                save(fdir / "variants_logits.npy", stored)
                info.update({"gguf": str(gpath.relative_to(root)), "gguf_sha256": sha256(gpath),
                             "gguf_bytes": gpath.stat().st_size, "variants": names,
                             "checkpoint_positions": ck, "hf_variant_deltas": deltas,
                             "tensor_types": type_table(r["tensor_info"]), "metadata": json_meta(r["meta"])})
                if "qat" in r:
                    qdir = mout / "qat"
                    qinfo = save_run(qdir, r["qat"], cfg, False, 1e-4, "F32+QAT")
                    hf_names, qstored, _, qd = variants(hf, tokens, r["qat"]["logits"], [3, 129], [[64]], qat=True)
                    save(qdir / "variants_logits.npy", qstored)
                    qinfo.update({"variants": hf_names, "checkpoint_positions": ck, "hf_variant_deltas": qd,
                                  "max_abs_delta_vs_plain_f32": float(np.abs(r["qat"]["logits"] - r["res"]["logits"]).max()),
                                  "argmax_agreement_vs_plain_f32": float((r["qat"]["logits"].argmax(1) == r["res"]["logits"].argmax(1)).mean())})
                    entry["qat"] = qinfo
                if is_conv:
                    info["converter_log_tail"] = r["log_tail"]
                    info["cross_check_vs_our_F32_writer"] = cross_check(cand["runs"]["F32"], r)
                    manifest["llamacpp-convert"] = info
                else:
                    entry["files"][mix] = info
            entry["seconds"] = round(time.time() - t0, 1)
            manifest["models"][model_name] = entry
    total = sum(p.stat().st_size for p in root.rglob("*") if p.is_file())
    manifest["generation_seconds"] = round(time.time() - t_start, 1)
    manifest["fixture_bytes_excluding_manifest"] = total
    manifest["files_sha256"] = {str(p.relative_to(root)): sha256(p) for p in sorted(root.rglob("*")) if p.is_file()}
    (root / "manifest.json").write_text(json.dumps(manifest, indent=1, default=_json_default) + "\n")
    print(f"done in {manifest['generation_seconds']} s, {total / 1e6:.2f} MB")


def cross_check(ours, conv) -> dict:
    """Our writer's F32 file vs llama.cpp's converter output: same tensor names and ggml shapes,
    same tokenizer arrays, and every metadata key the converter writes present with the same
    value in ours (types of tensors differ by design)."""
    a, b = ours["tensor_info"], conv["tensor_info"]
    if set(a) != set(b):
        raise AssertionError(f"tensor names differ: ours-only {sorted(set(a) - set(b))}, converter-only {sorted(set(b) - set(a))}")
    for k in a:
        if a[k][1] != b[k][1]:
            raise AssertionError(f"{k}: ggml shape ours {a[k][1]} vs converter {b[k][1]}")
    skip = {"general.name", "general.type", "general.size_label", "general.file_type",
            "general.quantization_version", "tokenizer.chat_template"}
    missing, differ = [], []
    for k, v in conv["meta"].items():
        if k in skip:
            continue
        if k not in ours["meta"]:
            missing.append(k)
        elif not _same(ours["meta"][k], v):
            differ.append(k)
    if missing or differ:
        raise AssertionError(f"metadata: missing in ours {missing}, differing {differ}")
    extra = sorted(set(ours["meta"]) - set(conv["meta"]))
    return {"tensor_names_and_shapes_equal": True, "n_tensors": len(a),
            "converter_keys_all_present_and_equal": True, "keys_only_in_ours": extra,
            "keys_only_in_converter_output": sorted(k for k in conv["meta"] if k in skip)}


def _same(x, y):
    if isinstance(x, float) or isinstance(y, float):
        return abs(float(x) - float(y)) <= 1e-12 * max(1.0, abs(float(y)))
    if isinstance(x, list) and isinstance(y, list):
        return len(x) == len(y) and all(_same(a, b) for a, b in zip(x, y))
    return x == y


def _json_default(o):
    if isinstance(o, (np.integer,)):
        return int(o)
    if isinstance(o, (np.floating,)):
        return float(o)
    if isinstance(o, np.ndarray):
        return o.tolist()
    if isinstance(o, pathlib.Path):
        return str(o)
    raise TypeError(type(o))


if __name__ == "__main__":
    main()
