"""One rank of the data-parallel test: ``python ddp_worker.py DATA.npz OUT_DIR PARAMS_JSON``.

Run with the environment torchrun sets (RANK, WORLD_SIZE, MASTER_ADDR, MASTER_PORT).
"""

import json
import os
import sys

import numpy as np
from safetensors.torch import save_file

from objrec.methods.cnn import CNNClassifier

data = np.load(sys.argv[1])
est = CNNClassifier("simple_cnn", **json.loads(sys.argv[3])).fit(data["X"], data["y"])
save_file(
    est.model_.state_dict(), os.path.join(sys.argv[2], f"rank{os.environ['RANK']}.safetensors")
)
