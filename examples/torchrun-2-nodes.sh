#!/usr/bin/env bash
# Train one recipe on two machines with torchrun: run this script on both, NODE_RANK=0 on the first, 1 on the second.
#   MASTER_ADDR=10.0.0.1 NODE_RANK=0 ./examples/torchrun-2-nodes.sh configs/demo.yaml    # on 10.0.0.1
#   MASTER_ADDR=10.0.0.1 NODE_RANK=1 ./examples/torchrun-2-nodes.sh configs/demo.yaml    # on the other machine
# Each node starts one process per GPU; yolocustom joins torchrun's group (NCCL on cuda:LOCAL_RANK, gloo for
# device: cpu), splits train.batch across all ranks and writes the run folder from global rank 0 only.
# --max-restarts: after a worker dies, torchrun restarts the group and train resumes the run's own last.pt.
set -euo pipefail

RECIPE=${1:?usage: $0 RECIPE.yaml}
: "${MASTER_ADDR:?set MASTER_ADDR to the address of node 0}"
: "${NODE_RANK:?set NODE_RANK to 0 on the first node, 1 on the second}"
MASTER_PORT=${MASTER_PORT:-29500}
GPUS_PER_NODE=${GPUS_PER_NODE:-$(nvidia-smi -L 2>/dev/null | wc -l)}

exec torchrun \
  --nnodes 2 \
  --node-rank "$NODE_RANK" \
  --nproc-per-node "$GPUS_PER_NODE" \
  --master-addr "$MASTER_ADDR" \
  --master-port "$MASTER_PORT" \
  --max-restarts 3 \
  -m yolocustom train "$RECIPE"
