"""Greedy-generation reference chain for the engine test.

Loads the committed tiny F32 GGUF (dequantized by gguf-py into HF transformers'
DeepseekV4ForCausalLM, exactly like make.py does), takes a prompt from the
committed token sequence and generates greedily by repeated full forwards
(use_cache=False, so HF's cache plays no part). Every step's top-1/top-2 logit
margin must be >= 1e-4 so the chain is unambiguous; otherwise the next prompt
offset is tried. Writes tests/fixtures/reference/tiny/f32/greedy_chain.json.

Run through run.sh (it sets up the venv); standalone:
  .venv/bin/python greedy.py --fixtures ../../tests/fixtures/reference
"""
import argparse
import json
import pathlib

import numpy as np
import torch

from dsv4ref import gguf_out as G
from dsv4ref import model as M

PROMPT_LEN = 24
GEN = 40
MIN_MARGIN = 1e-4


def main():
    ap = argparse.ArgumentParser()
    ap.add_argument("--fixtures", required=True)
    args = ap.parse_args()
    root = pathlib.Path(args.fixtures)
    manifest = json.loads((root / "manifest.json").read_text())
    spec = manifest["models"]["tiny"]["spec"]
    cfg = M.make_config(spec)
    hf = M.build_model(cfg)
    _meta, tens = G.read_gguf(root / "tiny" / "tiny-f32.gguf")
    M.load_numpy_state(hf, G.gguf_to_hf_state({k: v[0] for k, v in tens.items()}))
    tokens = np.load(root / "tiny" / "tokens.npy").astype(np.int64)
    for start in range(0, 64):
        seq = [0] + tokens[1 + start:PROMPT_LEN + start].tolist()
        margins = []
        for _ in range(GEN):
            with torch.no_grad():
                logits = hf(torch.tensor([seq]), use_cache=False).logits[0, -1].float()
            top = torch.topk(logits, 2)
            margins.append(float(top.values[0] - top.values[1]))
            seq.append(int(top.indices[0]))
        if min(margins) >= MIN_MARGIN:
            out = {"prompt": seq[:PROMPT_LEN], "generated": seq[PROMPT_LEN:], "min_margin": min(margins),
                   "source": "tools/reference/greedy.py: greedy, full forward per step, tiny-f32.gguf, QAT off"}
            (root / "tiny" / "f32" / "greedy_chain.json").write_text(json.dumps(out, indent=1) + "\n")
            print(f"greedy chain: prompt offset {start}, min margin {min(margins):.3g}")
            return
        print(f"prompt offset {start}: min margin {min(margins):.3g} < {MIN_MARGIN}, trying the next")
    raise SystemExit("no prompt offset gives an unambiguous greedy chain")


if __name__ == "__main__":
    main()
