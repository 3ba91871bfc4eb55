#!/bin/bash
# Multi-node DDP training under SLURM (example): 2 nodes x 4 GPUs, one task per GPU.
# Lightning reads SLURM_* variables; trainer.devices/num_nodes must match the allocation.
#   sbatch scripts/slurm_train.sh model=snap_nn data=mlearn data.element=Ni
#SBATCH --job-name=mliap_torch
#SBATCH --nodes=2
#SBATCH --ntasks-per-node=4
#SBATCH --gpus-per-node=4
#SBATCH --cpus-per-task=8
#SBATCH --time=04:00:00
set -euo pipefail
cd "${SLURM_SUBMIT_DIR:-.}"
RUN_DIR="outputs/slurm/${SLURM_JOB_ID:-local}"
srun .venv/bin/python train.py trainer=ddp_slurm trainer.devices="${SLURM_NTASKS_PER_NODE:-4}" \
    trainer.num_nodes="${SLURM_JOB_NUM_NODES:-2}" hydra.run.dir="$RUN_DIR" "$@"
