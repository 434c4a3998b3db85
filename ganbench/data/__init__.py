"""Datamodules. Every dataset is a ``GANDataModule``: images in [-1, 1] as (C, H, W), toy data as (2,)."""
