"""ganbench: train and compare GANs from Hydra config groups with PyTorch Lightning."""

__version__ = "0.1.0"
