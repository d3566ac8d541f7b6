"""Where this process stands among distributed ranks, from the launcher's variables alone (no torch,
no Lightning: the light floor).

    is_secondary_process()          # True on every rank but the global rank 0: it reports, it writes
    needs_launch(devices, nodes)    # whether ranks must be started or joined (inference.launch does it)
"""
from __future__ import annotations

import os

LAUNCHER_VARIABLES = ("WORLD_SIZE", "SLURM_NTASKS", "LOCAL_WORLD_SIZE")
ACCELERATORS = ("auto", "cpu", "gpu", "cuda", "mps")
STRATEGIES = ("ddp", "auto")  # ranks started as processes: what prediction needs

__all__ = ["ACCELERATORS", "STRATEGIES", "is_secondary_process", "needs_launch"]


def is_secondary_process() -> bool:
    """True in every distributed process but the global rank 0 (from the launcher's variables:
    torchrun's and Lightning's RANK / LOCAL_RANK / NODE_RANK, SLURM's SLURM_PROCID)."""
    rank = int(os.environ.get("RANK", os.environ.get("SLURM_PROCID", os.environ.get("LOCAL_RANK", "0"))))
    return rank != 0 or int(os.environ.get("NODE_RANK", "0")) != 0 and "RANK" not in os.environ


def needs_launch(devices: int, num_nodes: int) -> bool:
    """Whether more than this one process takes part: several devices or nodes asked for, or a
    launcher (torchrun, SLURM) that started several."""
    launched = any(int(os.environ.get(v, "1") or 1) > 1 for v in LAUNCHER_VARIABLES)
    return devices > 1 or num_nodes > 1 or launched
