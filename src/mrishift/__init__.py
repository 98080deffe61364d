"""mrishift: which U-Net layers to fine-tune when a brain-MRI segmentation network meets a new scanner."""

__version__ = "0.1.0"
