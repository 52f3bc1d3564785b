"""One torchrun process of the two-machine test: ``objrec train ARGS...`` that also saves
this rank's weights before and after training.

    torchrun ... torchrun_worker.py WEIGHTS_DIR train digits --model simple_cnn ...

writes ``WEIGHTS_DIR/rank{RANK}-{start,end}.safetensors`` (the unwrapped network's
``state_dict``) and exits with ``objrec train``'s status. Without torchrun it is the
single-process run (rank 0).
"""

import sys
from pathlib import Path

from safetensors.torch import save_file

import objrec.training.loop as loop
from objrec.cli import main
from objrec.training.distributed import DistInfo

out = Path(sys.argv[1])
rank = DistInfo.from_env().rank
fit = loop.fit


def save(state, when: str) -> None:
    net = getattr(state.model, "module", state.model)  # DDP wraps the network
    weights = {k: v.detach().cpu().contiguous() for k, v in net.state_dict().items()}
    save_file(weights, str(out / f"rank{rank}-{when}.safetensors"))


def recording_fit(state, *args, **kwargs):
    save(state, "start")
    state = fit(state, *args, **kwargs)
    save(state, "end")
    return state


loop.fit = recording_fit  # CNNClassifier.fit looks it up when it runs
sys.exit(main(sys.argv[2:]))
