"""mutual_seg: multimodal MRI tumour segmentation with mutual attention.

Entry points (``run``, ``predict``, ``report``, ``data.check``, ``data.synthetic``) on top; ``lit``, prediction and
``report`` below them; ``models/``, ``data/``, ``inference``, ``checkpoint`` below those; ``results``, ``runtime/``,
``metrics``, ``losses``, ``masks``, ``modalities``, ``fastpath``, ``config``, ``errors`` at the bottom.
docs/architecture.md draws the data flow and lists each module's job; ``make lint`` checks the layers.
"""
__version__ = "0.1.0"
