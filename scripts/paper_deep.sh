#!/usr/bin/env bash
# The two paper-scale deep runs of docs/deep.md, exactly as run (one torch thread each; outputs outside git).
#   scripts/paper_deep.sh fc     MNIST_DIR OUT   # Frankle & Carbin's LeNet-300-100 check, 3 families
#   scripts/paper_deep.sh fig11  MNIST_DIR OUT   # Figure 11: LeNet-5 on N = 25k..40k, 13 levels
# Extra arguments are passed on (e.g. --seeds 1,2 --device cuda for more seeds on a GPU).
# Levels run in order across the grid; a killed run resumes where it stopped when started again.
set -euo pipefail
what=${1:?fc or fig11}; mnist=${2:?MNIST dir}; out=${3:?output dir}; shift 3
py=${PYTHON:-python}
mkdir -p "$out"
case "$what" in
  fc)
    exec "$py" -m ticketlab imp --model lenet300 --data "mnist:$mnist" --n-train all --rounds 12 \
      --rate 0.2 --output-rate 0.1 --rewind init --control none,reinit,random_mask --init kaiming_normal \
      --optimizer adam --lr 1.2e-3 --batch-size 60 --epochs 10 --eval-every 100 --seeds 0,1 \
      --store "$out" --threads 1 "$@" ;;
  fig11)
    exec "$py" -m ticketlab imp --model lenet5 --data "mnist:$mnist" --n-train 25000,30000,35000,40000 \
      --rounds 12 --rate 0.2 --rewind init --control none --init kaiming_normal \
      --optimizer adam --lr 1e-3 --batch-size 128 --epochs 4 --seeds 0,1,2 \
      --store "$out" --threads 1 "$@" ;;
  *) echo "usage: $0 fc|fig11 MNIST_DIR OUT [extra ticketlab imp options]" >&2; exit 2 ;;
esac
