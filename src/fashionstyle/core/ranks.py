"""Prediction on many devices and nodes, on the engine training uses (Lightning Fabric).

    ranks = launch_ranks("gpu", devices=4, num_nodes=2, strategy="ddp")
    ranks.rank, ranks.world, ranks.device      # this process's place and device

One device and no launcher: this process alone, no process group. Otherwise
Fabric starts the local ranks itself (`--devices N`), or joins the ones torchrun
or SLURM started, exactly as `fashionstyle train` does.
"""
from __future__ import annotations

import os
from dataclasses import dataclass

from fashionstyle.core.errors import FashionStyleError

LAUNCHER_VARIABLES = ("WORLD_SIZE", "SLURM_NTASKS", "LOCAL_WORLD_SIZE")
ACCELERATORS = ("auto", "cpu", "gpu", "cuda", "mps")
STRATEGIES = ("ddp", "auto")  # ranks started as processes: what prediction needs

__all__ = ["Ranks", "launch_ranks", "is_secondary_process", "needs_launch"]


@dataclass
class Ranks:
    rank: int = 0
    world: int = 1
    device: str = "auto"


def is_secondary_process() -> bool:
    """True in every distributed process but the global rank 0 (from the launcher's variables:
    torchrun's and Lightning's RANK / LOCAL_RANK / NODE_RANK, SLURM's SLURM_PROCID)."""
    rank = int(os.environ.get("RANK", os.environ.get("SLURM_PROCID", os.environ.get("LOCAL_RANK", "0"))))
    return rank != 0 or int(os.environ.get("NODE_RANK", "0")) != 0 and "RANK" not in os.environ


def needs_launch(devices: int, num_nodes: int) -> bool:
    launched = any(int(os.environ.get(v, "1") or 1) > 1 for v in LAUNCHER_VARIABLES)
    return devices > 1 or num_nodes > 1 or launched


def launch_ranks(accelerator: str, devices: int, num_nodes: int, strategy: str) -> Ranks:
    """This process's rank, the number of ranks and its device; starts the local ranks when needed."""
    if not needs_launch(devices, num_nodes):
        return Ranks(device=_single_device(accelerator))
    from lightning.fabric import Fabric

    try:
        fabric = Fabric(accelerator=accelerator, devices=devices, num_nodes=num_nodes, strategy=strategy)
    except Exception as err:  # Lightning's MisconfigurationException, ValueError, RuntimeError
        raise FashionStyleError(f"cannot start {devices} x {accelerator} on {num_nodes} node(s) with strategy "
                                f"{strategy!r}: {err}") from None
    fabric.launch()
    return Ranks(fabric.global_rank, fabric.world_size, str(fabric.device))


def _single_device(accelerator: str) -> str:
    """The device of a one-process job; a GPU asked for and missing is an error, not a CPU run."""
    if accelerator == "cpu":
        return "cpu"
    if accelerator in ("gpu", "cuda", "mps"):
        try:
            import torch
        except ImportError:  # the torch-free install: the runtime picks its own device
            return "auto"
        found = torch.cuda.is_available() if accelerator != "mps" else torch.backends.mps.is_available()
        if not found:
            raise FashionStyleError(f"--accelerator {accelerator}: no such device on this machine; "
                                    "use --accelerator auto or cpu")
        return "cuda" if accelerator != "mps" else "mps"
    return "auto"
