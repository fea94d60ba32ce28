"""A random-weight BigGAN-deep (hub layout: config.json + pytorch_model.bin) whose images are
structured noise rather than NaN or flat colour, so export benchmarks encode realistic PNGs.
Both `intervene bench export --model DIR` and `pt_export_bench.py --model DIR` load it, so the two
sides run the same weights.

Default PyTorch init; every spectral-norm vector pair (weight_u, weight_v) set to the exact top
singular vectors of weight_orig (what power iteration converges to; random vectors give σ ≈ 0
and outputs that overflow); the final batch norm's scale 1 and shift 0 (the package leaves them
uninitialised); batch-norm tables from batch statistics (layer by layer), the same
for every truncation.

Usage: python tools/reference/make_bench_biggan.py OUT_DIR [--res 128|256|512] [--seed 0]
Requirements: torch, pytorch-pretrained-biggan==0.1.1.
"""
import argparse
import os

import torch
from pytorch_pretrained_biggan import BigGAN, BigGANConfig

L128 = [(False, 16, 16), (True, 16, 16), (False, 16, 16), (True, 16, 8), (False, 8, 8), (True, 8, 4), (False, 4, 4),
        (True, 4, 2), (False, 2, 2), (True, 2, 1)]
L256 = [(False, 16, 16), (True, 16, 16), (False, 16, 16), (True, 16, 8), (False, 8, 8), (True, 8, 8), (False, 8, 8),
        (True, 8, 4), (False, 4, 4), (True, 4, 2), (False, 2, 2), (True, 2, 1)]


def main():
    ap = argparse.ArgumentParser()
    ap.add_argument("out")
    ap.add_argument("--res", type=int, default=128)
    ap.add_argument("--seed", type=int, default=0)
    a = ap.parse_args()
    torch.manual_seed(a.seed)
    layers = {128: L128, 256: L256, 512: L256 + [(False, 1, 1), (True, 1, 1)]}[a.res]
    cfg = BigGANConfig(output_dim=a.res, z_dim=128, class_embed_dim=128, channel_width=128, num_classes=1000,
                       layers=layers, attention_layer_position=8, eps=1e-4, n_stats=51)
    m = BigGAN(cfg).eval()
    with torch.no_grad():
        for mod in m.modules():
            if hasattr(mod, "weight_orig"):
                w = mod.weight_orig.reshape(mod.weight_orig.shape[0], -1)
                u, _, vh = torch.linalg.svd(w, full_matrices=False)
                mod.weight_u.copy_(u[:, 0])
                mod.weight_v.copy_(vh[0])
        # Batch-norm tables from batch statistics, layer by layer in forward order (each layer is
        # calibrated on the output of the already calibrated ones), the same row for every truncation.
        z = torch.randn(4, 128).clamp(-2, 2)
        y = torch.eye(1000)[torch.randint(0, 1000, (4,))]
        bns = [mod for mod in m.modules() if hasattr(mod, "running_means")]
        for bn in bns:
            bn.running_means.zero_()
            bn.running_vars.fill_(1.0)
            if getattr(bn, "weight", None) is not None:  # the final, unconditional BN: uninitialised memory
                bn.weight.fill_(1.0)
                bn.bias.zero_()
        for bn in bns:
            seen = {}
            h = bn.register_forward_pre_hook(lambda mod, inp: seen.update(x=inp[0]))  # returns None: inputs unchanged
            m(z, y, 1.0)
            h.remove()
            x = seen["x"]
            bn.running_means.copy_(x.mean(dim=(0, 2, 3)).expand_as(bn.running_means))
            bn.running_vars.copy_(x.var(dim=(0, 2, 3)).expand_as(bn.running_vars))
        x = m(z, y, 1.0)
    assert torch.isfinite(x).all(), "non-finite output"
    os.makedirs(a.out, exist_ok=True)
    torch.save(m.state_dict(), os.path.join(a.out, "pytorch_model.bin"))
    with open(os.path.join(a.out, "config.json"), "w") as f:
        f.write(cfg.to_json_string())
    print(f"wrote {a.out}: output std {x.std():.3f}, range [{x.min():.3f}, {x.max():.3f}]")


if __name__ == "__main__":
    main()
