"""``genoformer pretrain``: masked-LM pretraining of a Reformer on a token dataset (one process or torchrun)."""

from __future__ import annotations


def register(subparsers) -> None:
    """Add the ``pretrain`` parser."""
    parser = subparsers.add_parser(
        "pretrain",
        help="pretrain a Reformer by masked-LM on a token dataset",
        description="Pretrain a ReformerForMaskedLM with span masking on the train split of a token dataset "
        "(from `genoformer tokenize`), checking validation bits/base as it goes. RUN gets config.json, "
        "model.safetensors and vocab.json (the latest weights), metrics.jsonl, train.log and "
        "checkpoints/step-N/. For several processes or GPUs run it under torchrun: "
        "`torchrun --nproc_per_node N -m genoformer pretrain ...` (DDP; NCCL on GPU, gloo on CPU).",
    )
    parser.add_argument("--data", required=True, metavar="DIR", help="token dataset folder (manifest.json + shards)")
    parser.add_argument("--config", metavar="CFG.yaml",
                        help="training config: sections model, optim, data, run (see config/pretrain/default.yaml); "
                        "every key is optional. Not needed with --resume (the run's own config is used)")
    parser.add_argument("--out", required=True, metavar="RUN", help="run directory to write (or to resume)")
    parser.add_argument("--resume", action="store_true",
                        help="continue RUN from its newest readable checkpoint (bit-exact on CPU); the config, if "
                        "given, must equal the run's")
    parser.add_argument("--set", action="append", default=[], metavar="KEY=VALUE", dest="overrides",
                        help="override one config key, e.g. --set optim.lr=3e-4 --set run.steps=500 (value read "
                        "as YAML; repeatable)")
    parser.set_defaults(func=run)


def run(args) -> None:
    """Load the config (the run's own when resuming without --config) and train."""
    from genoformer.train.checkpoint import saved_config  # torch is imported only when this command runs
    from genoformer.train.config import PretrainConfig, apply_overrides, load_config
    from genoformer.train.loop import pretrain

    if args.resume and args.config is None:
        source = f"{args.out}/checkpoints (saved config)"
        config = PretrainConfig.from_dict(apply_overrides(saved_config(args.out), args.overrides), source)
    else:
        config = load_config(args.config, args.overrides)
    pretrain(args.data, args.out, config, resume=args.resume)
