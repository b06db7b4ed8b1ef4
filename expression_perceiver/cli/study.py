"""`expression-perceiver study plan|run|report`."""

from __future__ import annotations

import argparse
from pathlib import Path

STUDY_EPILOG = """examples:
  expression-perceiver study plan studies/epd_human_masking.yaml
  expression-perceiver study plan studies/epd_human_masking.yaml --estimate
  expression-perceiver study run studies/epd_human_masking.yaml --jobs 2
  expression-perceiver study run studies/xpresso_human_masking.yaml --executor gpus --cells-per-gpu 2
  expression-perceiver study run studies/xpresso_human_masking.yaml --executor slurm --partition gpu --time-min 720
  expression-perceiver study report docs/results/study_epd_human
"""


STUDY_FILE_HELP = "the study's YAML file (studies/ holds the paper's grids; study/spec.py documents every field)"
OUTPUT_DIR_HELP = "the study's folder (default: the study file's output_dir)"
EXTEND_HELP = (
    "let a study that only adds seeds, table rows, figure curves or mask sizes to the study its folder holds extend "
    "it (any other difference is refused: give that study its own folder)"
)


def add_study_parser(subparsers) -> None:
    parser = subparsers.add_parser(
        "study",
        help="masking studies: plan, run and report grids of settings x mask sizes x seeds",
        epilog=STUDY_EPILOG,
        formatter_class=argparse.RawDescriptionHelpFormatter,
    )
    actions = parser.add_subparsers(dest="study_command", required=True, metavar="action")

    plan = actions.add_parser("plan", help="print the cells and their folders without running anything")
    plan.add_argument("study_file", help=STUDY_FILE_HELP)
    plan.add_argument("--output-dir", help=OUTPUT_DIR_HELP)
    plan.add_argument("--estimate", action="store_true", help="measure a few steps of one cell and project the cost")
    plan.add_argument("--estimate-steps", type=int, default=20, help="training steps the estimate measures")
    plan.add_argument("--jobs", type=int, default=1, help="cells at a time the projection assumes")
    plan.add_argument("--extend", action="store_true", help=EXTEND_HELP)
    plan.set_defaults(run=run_plan)

    run = actions.add_parser("run", help="run every unfinished cell (rerun after any interruption to finish)")
    run.add_argument("study_file", help=STUDY_FILE_HELP)
    run.add_argument("--output-dir", help=OUTPUT_DIR_HELP)
    run.add_argument("--extend", action="store_true", help=EXTEND_HELP)
    run.add_argument(
        "--executor", choices=["local", "gpus", "slurm"], default="local",
        help="where cells run: local (this machine's CPU or GPU, --jobs at a time), gpus (one worker per visible "
        "GPU), slurm (a job array through submitit) (default: %(default)s)",
    )  # fmt: skip
    run.add_argument("--jobs", type=int, default=1, help="local: cells at a time (the CPU cores are shared out)")
    run.add_argument("--cells-per-gpu", type=int, default=1, help="gpus: small cells run side by side on each GPU")
    run.add_argument("--gpus-per-cell", type=int, default=1, help="gpus: GPUs per cell (accelerate launch)")
    slurm = run.add_argument_group("slurm (defaults from the study file's slurm: mapping)")
    slurm.add_argument("--partition", help="SLURM partition to submit to")
    slurm.add_argument("--time-min", type=int, help="time limit of each array task, minutes")
    slurm.add_argument("--gpus-per-task", type=int, help="GPUs per cell; a cell on several runs accelerate launch")
    slurm.add_argument("--cpus-per-task", type=int, help="CPU cores per cell")
    slurm.add_argument("--array-parallelism", type=int, help="array tasks running at once")
    slurm.add_argument("--sbatch", action="append", default=[], help="an extra sbatch line, e.g. --sbatch=--qos=low")
    slurm.add_argument(
        "--slurm-cluster", choices=["local", "debug"], help="run the array here through submitit (no scheduler)"
    )
    run.set_defaults(run=run_run)

    report = actions.add_parser("report", help="Table 1, Figure 1 and study.json from the finished cells")
    report.add_argument("study_dir", help="the study's output folder")
    report.set_defaults(run=run_report)

    compare = actions.add_parser(
        "compare",
        help="two studies' Table 1 rows and Figure 1 points side by side, and whether each setting's effect differs "
        "between them",
    )
    compare.add_argument("study_dir", help="study A's output folder")
    compare.add_argument("other_study_dir", help="study B's output folder (same settings and reference)")
    compare.add_argument("-o", "--output", required=True, help="the comparison as Markdown (.md; JSON written beside)")
    compare.set_defaults(run=run_compare)


def check_counts(args: argparse.Namespace, names: tuple[str, ...]) -> None:
    """Each of these counts (a number of jobs, steps, GPUs or cells) at least 1, before anything is read or run."""
    for name in names:
        value = getattr(args, name, None)
        if value is not None and value < 1:
            raise ValueError(f"--{name.replace('_', '-')} must be at least 1, got {value}")


def run_plan(args: argparse.Namespace) -> int:
    from ..study.plan import estimate, estimate_lines, measure_cell, plan_lines
    from ..study.spec import bind_study_folder, load_study

    check_counts(args, ("jobs", "estimate_steps"))
    study = load_study(args.study_file, args.output_dir, check_data=args.estimate)  # listing cells needs no data
    additions = bind_study_folder(study, args.extend)
    if additions:
        print(f"extends the study in {study.output_dir} (with --extend): {'; '.join(additions)}")
    print("\n".join(plan_lines(study)))
    if args.estimate:
        figures = estimate(study, measure_cell(study, args.estimate_steps), slots=args.jobs)
        print("\n".join(estimate_lines(figures)))
    return 0


def slurm_options(args: argparse.Namespace, defaults: dict):
    from ..study.executors import SlurmOptions

    options = SlurmOptions.from_mapping(defaults)
    flags = {
        "partition": args.partition,
        "time_min": args.time_min,
        "gpus_per_task": args.gpus_per_task,
        "cpus_per_task": args.cpus_per_task,
        "array_parallelism": args.array_parallelism,
    }
    for name, value in flags.items():
        if value is not None:
            setattr(options, name, value)
    options.extra_sbatch = [*options.extra_sbatch, *args.sbatch]
    return options


def run_run(args: argparse.Namespace) -> int:
    import sys

    from ..study.cells import FAILED
    from ..study.executors import study_states
    from ..study.plan import run_study
    from ..study.spec import load_study

    check_counts(args, ("jobs", "cells_per_gpu", "gpus_per_cell", "time_min", "gpus_per_task", "cpus_per_task"))
    check_counts(args, ("array_parallelism",))
    study = load_study(args.study_file, args.output_dir)
    outcome = run_study(
        study,
        executor=args.executor,
        jobs=args.jobs,
        cells_per_gpu=args.cells_per_gpu,
        gpus_per_cell=args.gpus_per_cell,
        slurm=slurm_options(args, study.slurm) if args.executor == "slurm" else None,
        slurm_cluster=args.slurm_cluster,
        extend=args.extend,
    )
    if isinstance(outcome, dict):
        print(f"report: expression-perceiver study report {study.output_dir}")
        if outcome.get("failed"):
            failed = [state for state in study_states(study) if state.state == FAILED]
            first = f" (first: {failed[0].cell.name}: {failed[0].detail})" if failed else ""
            print(
                f"expression-perceiver study: error: {outcome['failed']} of {len(study.cells())} cells failed{first}; "
                "each failed cell's train.log holds its run",
                file=sys.stderr,
            )
            return 1
    return 0


def run_report(args: argparse.Namespace) -> int:
    from ..study.report import report_study

    report_study(args.study_dir)
    return 0


def run_compare(args: argparse.Namespace) -> int:
    from ..study.comparison import write_comparison

    if not args.output.endswith(".md"):
        raise ValueError(f"{args.output}: the comparison is written as Markdown; name it .md")
    write_comparison(args.study_dir, args.other_study_dir, args.output)
    print(f"comparison written to {args.output} (and {Path(args.output).with_suffix('.json')})")
    return 0
