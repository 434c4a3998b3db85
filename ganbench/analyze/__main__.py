"""python -m ganbench.analyze DIR [DIR ...] [--out DIR] [--budget K] [--bootstrap N] [--top FRAC] [--wandb PROJECT]
                           [--rerun-best N]

Bad input (a missing path, no result.json, no run with a finite score, a bad option) ends with one line
``ganbench: error: ...`` on stderr and exit code 2.
"""

from __future__ import annotations

import argparse
import sys

from ganbench.analyze import analyze
from ganbench.analyze.report import summary_line
from ganbench.errors import ConfigError


class _Parser(argparse.ArgumentParser):
    def error(self, message: str):  # argparse's usage + message -> the project's one-line error
        raise ConfigError(message)


def parser() -> argparse.ArgumentParser:
    p = _Parser(prog="python -m ganbench.analyze",
                description="Analyze sweeps: tables, Kurach/Lucic-style statistics, figures and report.md.")
    p.add_argument("paths", nargs="+", metavar="DIR", help="directories of runs (searched recursively) or "
                   "result.json files")
    p.add_argument("--out", help="output directory (default: <first DIR>/analysis)")
    p.add_argument("--budget", type=int, help="k settings for the pairwise comparison (default: min(10, the "
                   "fewest settings of any cell))")
    p.add_argument("--bootstrap", type=int, default=1000, help="bootstrap resamples (default: 1000)")
    p.add_argument("--top", type=float, default=0.05, help="fraction of the best runs in the box plots "
                   "(default: 0.05)")
    p.add_argument("--wandb", metavar="PROJECT", help="also log the tables and figures to this W&B project "
                   "(WANDB_MODE honoured; offline when not logged in)")
    p.add_argument("--rerun-best", type=int, metavar="N", help="also write rerun_best.sh: the best setting of "
                   "every cell re-run with N seeds (Lucic et al. 2018 use 50)")
    return p


def main(argv: list[str] | None = None) -> int:
    try:
        args = parser().parse_args(argv)
        study = analyze(args.paths, out=args.out, budget=args.budget, n_boot=args.bootstrap, top=args.top,
                        wandb_project=args.wandb, rerun_seeds=args.rerun_best)
    except ConfigError as exc:
        print(f"ganbench: error: {exc}", file=sys.stderr)
        return 2
    print(summary_line(study, study.out))
    return 0


if __name__ == "__main__":
    sys.exit(main())
