"""The full-size experiment of the gradient-normalization chapter: CIFAR-100, ResNet-20.

Trains one model per (method, seed) with ``torch.optim.SGD`` (momentum 0.9, weight decay 5e-4,
cosine learning rate) wrapped by ``gradynamics.gradnorm.TransformedOptimizer``, with the
standard CIFAR augmentation (4-pixel padding and random crop, horizontal flip), and writes the
test accuracies, the largest global multiplier and the per-epoch gradient statistics (the data
of the paper's Figure 1) to ``_build/bench/gradnorm.json`` (or ``--out``). CI runs only
``--quick`` (``tests/test_benchmarks.py``).

The run of the chapter (needs ``torchvision`` and a copy of CIFAR-100 that
``torchvision.datasets.CIFAR100(root, download=True)`` made earlier under ``--data-root``; a GPU)::

    python benchmarks/bench_gradnorm.py --data-root ~/data --epochs 200 --seeds 0 1 2 \\
        --methods SGD GC ZNorm GAN-D

The same code on random tensors of CIFAR's shape (no torchvision, no data)::

    python benchmarks/bench_gradnorm.py --random-data --epochs 1 --width 4

and ``--quick`` is that at a tiny size (16 random images, ResNet-20 of width 1, two steps per
method; most of its few seconds go to importing torch), writing
``_build/bench/quick/gradnorm.json``.
"""

from __future__ import annotations

import argparse
import json
import os
import sys
import time
from pathlib import Path

import torch

import gradynamics as gd
from gradynamics import datasets as gds
from gradynamics import gradnorm as gn
from gradynamics import models as gm

METHODS = {
    "SGD": gn.sgd,
    "GC": gn.gradient_centralization,
    "GC-layer": lambda: gn.gradient_centralization("layer"),
    "ZNorm": gn.znorm,
    **{f"GAN-{v}": (lambda v=v: gn.gan(v)) for v in "ABCD"},
}

ROOT = Path(__file__).resolve().parents[1]
VGG16_STAGES = ((64, 64), (128, 128), (256,) * 3, (512,) * 3, (512,) * 3)


def random_cifar(n_train: int, n_test: int, seed: int, device: torch.device) -> gds.ImageData:
    """Random images of CIFAR-100's shape, normalised like CIFAR-100 (for smoke tests)."""
    generator = torch.Generator().manual_seed(seed)

    def images(n: int) -> torch.Tensor:
        pixels = torch.rand(n, 3, 32, 32, generator=generator)
        return gds.normalize_images(pixels, gds.CIFAR100_MEAN, gds.CIFAR100_STD).to(device)

    def labels(n: int) -> torch.Tensor:
        return torch.randint(100, (n,), generator=generator).to(device)

    return gds.ImageData(images(n_train), labels(n_train), images(n_test), labels(n_test), 100)


def build_model(name: str, width: int) -> torch.nn.Module:
    """ResNet-20/56 (He et al.) or VGG-16-BN for 100 classes."""
    if name == "resnet20":
        return gm.cifar_resnet(20, 100, width=width)
    if name == "resnet56":
        return gm.cifar_resnet(56, 100, width=width)
    if name == "vgg16bn":
        return gm.VGGStyle(3, 100, tuple(tuple(w * width // 64 for w in s) for s in VGG16_STAGES))
    raise ValueError(f"model: expected resnet20, resnet56 or vgg16bn, got {name!r}")


def parse_args(argv: list[str] | None = None) -> argparse.Namespace:
    parser = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    parser.add_argument("--data-root", default=os.environ.get("GRADYNAMICS_CIFAR100"),
                        help="directory holding CIFAR-100 (default: $GRADYNAMICS_CIFAR100)")
    parser.add_argument("--random-data", action="store_true",
                        help="random tensors of CIFAR's shape instead of CIFAR-100")
    parser.add_argument("--random-size", type=int, nargs=2, default=(256, 128),
                        metavar=("TRAIN", "TEST"), help="sizes of the random data")
    parser.add_argument("--model", default="resnet20", choices=("resnet20", "resnet56",
                                                                   "vgg16bn"))
    parser.add_argument("--width", type=int, default=16,
                        help="base width (16 for the ResNets; 64 gives VGG-16-BN)")
    parser.add_argument("--methods", nargs="+", default=["SGD", "GC", "ZNorm", "GAN-D"],
                        choices=sorted(METHODS))
    parser.add_argument("--seeds", type=int, nargs="+", default=[0])
    parser.add_argument("--epochs", type=int, default=200)
    parser.add_argument("--batch-size", type=int, default=128)
    parser.add_argument("--lr", type=float, default=0.1)
    parser.add_argument("--weight-decay", type=float, default=5e-4)
    parser.add_argument("--device", default=None, help="torch device (default: gd.get_device())")
    parser.add_argument("--quick", action="store_true",
                        help="smoke test: tiny random data and network, 1 epoch, SGD and GAN-D")
    parser.add_argument("--out", default=None,
                        help="JSON file (default _build/bench/gradnorm.json, or quick/)")
    parser.add_argument("--quiet", action="store_true", help="no per-epoch progress lines")
    return parser.parse_args(argv)


def run(args: argparse.Namespace) -> dict:
    """Run the benchmark described by ``args``; return the results as a dictionary."""
    if args.quick:  # 2 steps per method: the time goes to importing torch, not to training
        args.random_data, args.random_size, args.width = True, (16, 8), 1
        args.epochs, args.batch_size, args.methods, args.seeds = 1, 8, ["SGD", "GAN-D"], [0]
    device = gd.get_device(args.device)
    if args.random_data:
        data = random_cifar(*args.random_size, seed=0, device=device)
    elif args.data_root:
        data = gds.load_cifar100(args.data_root, device=device)
    else:
        raise SystemExit("give --data-root DIR (CIFAR-100 under DIR) or --random-data")
    print(gd.describe_runtime(device, torch.float32), flush=True)
    results = {"topic": "gradnorm", "quick": bool(args.quick), "device": str(device),
               "config": vars(args), "runs": []}
    wall = time.perf_counter()
    for method in args.methods:
        for seed in args.seeds:
            gd.seed_everything(seed)
            model = build_model(args.model, args.width)
            start = time.perf_counter()

            def progress(epoch: int, loss: float, lr: float, method=method, seed=seed) -> None:
                if not args.quiet:
                    print(f"{method} seed {seed} epoch {epoch + 1}/{args.epochs}: "
                          f"train loss {loss:.4f}, lr {lr:.4f}", flush=True)

            accuracy, opt = gn.train_single(
                model, METHODS[method](), data, args.epochs, seed=seed,
                batch_size=args.batch_size, lr=args.lr, weight_decay=args.weight_decay,
                augment=gds.cifar_augment, on_epoch=progress)
            if device.type == "cuda":
                torch.cuda.synchronize()
            rec = opt.recorder
            results["runs"].append({
                "method": method, "seed": seed, "test_accuracy": accuracy,
                "max_gain": float(rec.steps("gains").max()),
                "layer_names": opt.names,
                "global_std_per_epoch": rec.per_epoch("global_std").tolist(),
                "layer_std_per_epoch": rec.per_epoch("layer_std").tolist(),
                "seconds": time.perf_counter() - start,
            })
            print(f"{method} seed {seed}: test accuracy {100 * accuracy:.2f}%", flush=True)
    results["wall_s"] = time.perf_counter() - wall
    print(f"wall time {results['wall_s']:.1f} s", flush=True)
    return results


def main(argv: list[str] | None = None) -> int:
    """Command-line entry point: run, then write the JSON record."""
    args = parse_args(argv)
    if not (args.quick or args.random_data or args.data_root):
        # `make bench` runs every script: without a local CIFAR-100 this one has nothing to run.
        print("SKIPPED: bench_gradnorm needs a local CIFAR-100: pass --data-root DIR or set "
              "GRADYNAMICS_CIFAR100 (or use --random-data)")
        return 0
    results = run(args)
    out = Path(args.out) if args.out else (
        ROOT / "_build" / "bench" / ("quick" if args.quick else "") / "gradnorm.json")
    out.parent.mkdir(parents=True, exist_ok=True)
    out.write_text(json.dumps(results, indent=1))
    print(f"wrote {out}")
    return 0


if __name__ == "__main__":
    sys.exit(main())
