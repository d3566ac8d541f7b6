"""The model: network (timm backbone, pooling, FC-1024, FC-n), weights (offline ImageNet
checkpoints) and losses (weighted BCE, focal, ASL). Imports core and data.
"""
