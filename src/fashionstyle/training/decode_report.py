"""`train --decode gpu`: the files the GPU decoder refused, counted over the run and said at its end.

    trainer = L.Trainer(callbacks=[DecodeReport()])   # loop.make_trainer adds it for decode="gpu"
"""
from __future__ import annotations

import sys

import lightning as L

from fashionstyle.data.images.device_decode import shared_decoder


class DecodeReport(L.Callback):
    """Starts the device's shared decoder count with the fit; prints its summary line (stderr) at the
    end, or when the fit stops on an error, once."""

    def __init__(self) -> None:
        self.said = False

    def on_fit_start(self, trainer: L.Trainer, module: L.LightningModule) -> None:
        shared_decoder(module.device).reset()
        self.said = False

    def on_fit_end(self, trainer: L.Trainer, module: L.LightningModule) -> None:
        self.say(module)

    def on_exception(self, trainer: L.Trainer, module: L.LightningModule, exception: BaseException) -> None:
        self.say(module)

    def say(self, module: L.LightningModule) -> None:
        summary = shared_decoder(module.device).summary()
        if summary and not self.said:
            print(f"warning: {summary}", file=sys.stderr, flush=True)
        self.said = True
