"""`python -m embedspace_models.training train RECIPE --out DIR [--seed N]` trains one
recipe into an artifact folder; `... evaluate [--models DIR]` prints the evaluation tables of
the artifacts in DIR (default: the committed ones), in-process.
"""

from __future__ import annotations

import argparse
import json
import sys
from pathlib import Path

from .train import RECIPES


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(prog="python -m embedspace_models.training")
    commands = parser.add_subparsers(dest="command", required=True)
    train_cmd = commands.add_parser("train", help="train a recipe into an artifact folder")
    train_cmd.add_argument("recipe", choices=sorted(RECIPES))
    train_cmd.add_argument("--out", type=Path, help="artifact folder (default: ./RECIPE)")
    train_cmd.add_argument("--seed", type=int, default=0)
    train_cmd.add_argument("--tiny", action="store_true", help="a seconds-long run for tests")
    train_cmd.add_argument("--quiet", action="store_true", help="no progress bar")
    eval_cmd = commands.add_parser("evaluate", help="print the evaluation tables")
    eval_cmd.add_argument("--models", type=Path, help="folder holding the artifact folders")
    eval_cmd.add_argument("--seed", type=int, default=None, help="held-out data seed")
    args = parser.parse_args(argv)

    if args.command == "train":
        from .train import train

        out = args.out or Path(args.recipe)
        metrics = train(args.recipe, out, seed=args.seed, progress=not args.quiet, tiny=args.tiny)
        print(json.dumps({"artifact": str(out), "metrics": metrics}, indent=2))
        return 0
    from ..artifacts import ArtifactError
    from ..evaluation import EVAL_SEED, evaluate_artifacts

    try:
        tables = evaluate_artifacts(args.models, seed=EVAL_SEED if args.seed is None else args.seed)
    except ArtifactError as e:
        parser.error(str(e))
    for name, table in tables.items():
        print(f"## {name}\n\n{table.markdown()}\n")
    return 0


if __name__ == "__main__":
    sys.exit(main())
