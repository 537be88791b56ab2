#!/usr/bin/env bash
# Distributed training through torchrun: tools/dist_train.sh CONFIG NUM_PROCESSES [train.py options]
# Environment: NNODES, NODE_RANK, MASTER_ADDR, PORT for several machines. On a machine without
# GPUs the processes train on CPU with gloo (used by the test suite).
set -euo pipefail
if [ $# -lt 2 ]; then echo "usage: $0 CONFIG NUM_PROCESSES [train.py options]" >&2; exit 2; fi
CONFIG=$1
GPUS=$2
HERE=$(cd "$(dirname "$0")" && pwd)
# NVLink multicast (NVLS) stays off unless you set these yourself: on shared multi-GPU hosts a
# program using it can put the host's GPUs out of service.
export NCCL_NVLS_ENABLE=${NCCL_NVLS_ENABLE:-0} TORCH_SYMM_MEM_DISABLE_MULTICAST=${TORCH_SYMM_MEM_DISABLE_MULTICAST:-1} \
    NVSHMEM_DISABLE_NVLS=${NVSHMEM_DISABLE_NVLS:-1}
PYTHONPATH="$HERE/..${PYTHONPATH:+:$PYTHONPATH}" exec "${PYTHON:-python3}" -m torch.distributed.run \
    --nnodes="${NNODES:-1}" --node_rank="${NODE_RANK:-0}" --master_addr="${MASTER_ADDR:-127.0.0.1}" \
    --master_port="${PORT:-29500}" --nproc_per_node="$GPUS" \
    "$HERE/train.py" "$CONFIG" --launcher pytorch "${@:3}"
