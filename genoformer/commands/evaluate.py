"""``genoformer evaluate``: held-out bits/base and accuracy of a pretrained model next to a Markov baseline."""

from __future__ import annotations

from pathlib import Path

from genoformer.atomic import check_not_an_input, write_json
from genoformer.errors import ConfigError

MASK_PASSES = 8


def register(subparsers) -> None:
    """Add the ``evaluate`` parser."""
    parser = subparsers.add_parser(
        "evaluate",
        help="held-out bits/base of a pretrained model vs the best order-k Markov model",
        description="Span-mask the windows of the held-out splits of a token dataset as in training, and report "
        "the model's bits per hidden base (k-mer predictions marginalized to the base), masked-token accuracy "
        "and base accuracy, next to an order-k Markov model fit on the train split (order 0..--max-markov-order "
        "and smoothing chosen on the val split) scored on the same bases; each also over the novel hidden bases "
        "only, those no 31-mer also found in the train split covers (either strand), so repeat copies the model "
        "may have memorised are left out. Each window is masked --mask-passes times (figures: means over every "
        "pass's hidden bases), and the model's and the chains' bits/base and the model's difference to each chain "
        "get 95% bootstrap intervals that resample whole split intervals (blocks or sequences), or windows where "
        "the scored windows come from too few of them. Writes JSON.",
    )
    parser.add_argument("--checkpoint", required=True, metavar="RUN",
                        help="run directory from `genoformer pretrain` (latest weights) or one of its "
                        "checkpoints/step-N folders")
    parser.add_argument("--data", required=True, metavar="DIR",
                        help="token dataset folder with the same k and stride as the model's training data")
    parser.add_argument("--out", required=True, metavar="metrics.json", help="JSON file to write (atomically)")
    parser.add_argument("--splits", nargs="+", default=["val", "test"], choices=["train", "val", "test"],
                        help="splits to score (default: val test)")
    parser.add_argument("--window", type=int, default=None, metavar="TOKENS",
                        help="window length in tokens (default: the run's training window, else the dataset's); "
                        "windows are cut inside the dataset's split intervals")
    parser.add_argument("--max-windows", type=int, default=None, metavar="N",
                        help="score at most N windows per split, spread evenly over it (default: all)")
    parser.add_argument("--batch-size", type=int, default=8, help="windows per forward pass (default 8)")
    parser.add_argument("--seed", type=int, default=0, help="seed of the evaluation masks (default 0)")
    parser.add_argument("--mask-passes", type=int, default=MASK_PASSES, metavar="P",
                        help=f"mask every window P times, each with its own seeded draw, and score all the hidden "
                        f"bases of all passes (default {MASK_PASSES}; 1 = one mask per window, the figures of "
                        "evaluate before passes existed)")
    parser.add_argument("--max-markov-order", type=int, default=10,
                        help="highest Markov order tried (default 10; memory grows as 4**order)")
    parser.add_argument("--device", default="auto", choices=["auto", "cpu", "cuda"],
                        help="where to run the model (default auto: CUDA when available)")
    parser.set_defaults(func=run)


def run(args) -> None:
    """Evaluate and write the JSON."""
    # torch is imported only when this command runs
    from genoformer.train.checkpoint import LATEST_FILES
    from genoformer.train.evaluate import evaluate_run

    for name in ("window", "max_windows", "batch_size", "mask_passes"):
        value = getattr(args, name)
        if value is not None and value < 1:
            raise ConfigError(f"--{name.replace('_', '-')} must be at least 1, got {value}")
    if not 0 <= args.max_markov_order <= 12:
        raise ConfigError(f"--max-markov-order must be 0 to 12, got {args.max_markov_order}")
    check_not_an_input(args.out, [Path(args.checkpoint) / name for name in LATEST_FILES] + [
        Path(args.data) / "manifest.json"], "metrics JSON")
    result = evaluate_run(args.checkpoint, args.data, splits=tuple(args.splits), window=args.window,
                          max_windows=args.max_windows,
                          batch_size=args.batch_size, seed=args.seed, passes=args.mask_passes,
                          max_markov_order=args.max_markov_order,
                          device=args.device)
    write_json(args.out, result)
