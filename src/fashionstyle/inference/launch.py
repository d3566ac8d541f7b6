"""Prediction on many devices and nodes, on the engine training uses (Lightning Fabric).

    ranks = launch_ranks("gpu", devices=4, num_nodes=2, strategy="ddp")
    ranks.rank, ranks.world, ranks.device      # this process's place and device

One device and no launcher: this process alone, no process group. Otherwise
Fabric starts the local ranks itself (`--devices N`), or joins the ones torchrun
or SLURM started, exactly as `fashionstyle train` does. (core/ranks.py keeps the
torch-free questions: which rank is this, is a launch needed.)
"""
from __future__ import annotations

from dataclasses import dataclass

from fashionstyle.core.errors import FashionStyleError
from fashionstyle.core.ranks import needs_launch

__all__ = ["Ranks", "launch_ranks"]


@dataclass
class Ranks:
    rank: int = 0
    world: int = 1
    device: str = "auto"


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
