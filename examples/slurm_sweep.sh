#!/usr/bin/env bash
# Split a sweep over a Slurm job array: task i of n runs every n-th notebook from position i, so
# the array covers the sweep exactly once; finished notebooks are skipped, so resubmitting the
# array after a failure or a time-out reruns only what did not finish.
#
#   sbatch --array=0-7 examples/slurm_sweep.sh sweeps/paper_table.yaml
#   python -m memnotebooks.report runs/paper_table --output results/paper_table   # when all are done
#
#SBATCH --job-name=memnotebooks-sweep
#SBATCH --gres=gpu:1
#SBATCH --cpus-per-task=8
#SBATCH --mem=64G
#SBATCH --time=24:00:00
#SBATCH --output=runs/slurm-%A_%a.out
set -euo pipefail
sweep_file=${1:?usage: sbatch --array=0-N examples/slurm_sweep.sh SWEEP.yaml}
cd "${SLURM_SUBMIT_DIR:-.}"
source .venv/bin/activate
memnotebooks-sweep "$sweep_file" --kernel memnotebooks \
    --shard "${SLURM_ARRAY_TASK_ID}/${SLURM_ARRAY_TASK_COUNT}"
