"""mutual_seg: multimodal MRI tumour segmentation with mutual attention."""
__version__ = "0.1.0"
