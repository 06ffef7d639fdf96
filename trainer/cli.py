"""`hpcrl train`: the online GRPO trainer on the bus."""

from __future__ import annotations

import argparse
import os
import signal
import threading

from bus.cli import add_config_arguments, load_or_exit
from bus.config import ConfigError
from bus.daemon import log_config, on_stop_signal, setup_logging


def train(argv: list[str]) -> int:
    parser = argparse.ArgumentParser(
        prog="hpcrl train",
        description="Train a policy with online GRPO: sample C candidates, get them measured by the benchers "
        "over the bus, update a LoRA adapter on the measured rewards. Resumes from the run dir's last checkpoint.",
    )
    add_config_arguments(parser)
    parser.add_argument("--model", help="local Hugging Face model directory (overrides policy.model_dir)")
    parser.add_argument("--run-dir", help="checkpoints and logs (overrides trainer.run_dir)")
    parser.add_argument("--steps", type=int, help="GRPO updates (overrides trainer.steps)")
    args = parser.parse_args(argv)
    setup_logging(args.log_level)
    hpcrl = load_or_exit(parser, args.config)

    from trainer.config import load_trainer_config

    overrides = {
        "HPCRL_POLICY__MODEL_DIR": args.model,
        "HPCRL_TRAINER__RUN_DIR": args.run_dir,
        "HPCRL_TRAINER__STEPS": None if args.steps is None else str(args.steps),
    }
    env = {**os.environ, **{k: v for k, v in overrides.items() if v is not None}}
    try:
        config = load_trainer_config(args.config, env)
    except ConfigError as error:
        parser.exit(2, f"{parser.prog}: {error}\n")
    log_config(__name__, config)

    from trainer.distributed import Placement, device_of, process_group
    from trainer.loop import Trainer, follow

    # Under torchrun, or srun with several tasks, every rank runs this: rank 0 is the trainer (bus, logs,
    # checkpoints, metrics) and the others follow its commands (trainer/distributed.py).
    placement = Placement.from_environment()
    device = device_of(config.policy.torch_device, placement)
    with process_group(placement, device, config.loop.collective_timeout_s):
        if not placement.is_main:
            # Rank 0 alone decides when to stop (after a step and a checkpoint) and tells the others; srun
            # passes a job's SIGTERM to every rank, and a follower leaving mid-collective would hang rank 0.
            signal.signal(signal.SIGTERM, signal.SIG_IGN)
            return follow(config, placement)

        from bus import metrics as bus_metrics

        try:
            bus_metrics.serve_metrics(config.loop.metrics_port, config.loop.metrics_address)
        except OSError as error:
            parser.exit(
                1,
                f"{parser.prog}: cannot serve metrics on port {config.loop.metrics_port} "
                f"({config.loop.metrics_address}): {error}\n",
            )
        stop = threading.Event()
        on_stop_signal(stop.set)
        try:
            trainer = Trainer(hpcrl, config, stop, placement)
        except FileNotFoundError as error:
            parser.exit(2, f"{parser.prog}: {error}\n")
        return trainer.run()
